import Foundation
import Learner
import Model
import Rollout

/// Does an EBFT step raise the EBFT objective? (issue 11)
///
/// The objective whose gradient the EBFT estimator follows, per (chunk, block) and with raw
/// (unwhitened) features, is
///
///     J = α·E[align] − (β/2)·E[div] = α·E[2·cos(φ(ŷ), φ_gt)] − β·‖E φ(ŷ)‖²
///
/// (`E[div_i] = 2‖μ‖²`; the REINFORCE term `E[div_i ∇log p(ŷ_i)]` is `∇‖μ‖²`, so the reward
/// `−β·div_i` climbs `−β‖μ‖²`, half of what a naive reading of the mean reward suggests). With
/// α = β = 1 and unit features this is the feature-matching proxy `‖φ_gt‖² − L_CFM` (spec §2.2).
/// The loss's gradient in expectation is `−(1/G)·∇J̄`, J̄ the mean of J over chunks and blocks.
///
/// This type estimates J̄ on fixed chunks from fresh samples (paired across weights by common
/// random numbers: the sampler's draws are keyed by seed, chunk, sample, block and token), takes
/// one real EBFT step (sampling, rewards as configured — whitening included — RLOO, the
/// learner's backward, clip, AdamW from a fresh state) and estimates the change, with standard
/// errors over evaluation seeds. For vocabularies small enough to enumerate every block
/// completion it also computes J̄ exactly (for tests).
public enum UpdateCheck {
    /// What one evaluation seed measured on a set of chunks (means over chunks, blocks, samples;
    /// raw features).
    public struct Measurement: Equatable, Sendable {
        /// `α·align − (β/2)·div`: the objective the estimator climbs.
        public var objective: Double
        /// `2·cos(φ(ŷ), φ_gt)`.
        public var alignment: Double
        /// `align − div/2`: the feature-matching proxy (`‖φ_gt‖² − L_CFM` for unit features).
        public var featureMatching: Double
    }

    /// Mean and standard error of a list of values (SE = sample sd / √count; 0 for one value).
    public struct MeanSE: Equatable, Sendable, CustomStringConvertible {
        public var mean: Double
        public var se: Double
        public var count: Int
        public init(_ xs: [Double]) {
            count = xs.count
            mean = xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count)
            if xs.count > 1 {
                let m = mean
                let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
                se = (v / Double(xs.count)).squareRoot()
            } else {
                se = 0
            }
        }
        /// mean / se (±∞ when se = 0 and mean ≠ 0).
        public var t: Double { se > 0 ? mean / se : (mean == 0 ? 0 : mean.sign == .minus ? -.infinity : .infinity) }
        public var description: String { String(format: "%+.5f ± %.5f", mean, se) }
    }

    /// Raw-feature measurements of `policy`'s fresh rollouts on `chunks`, one per seed.
    public static func measure(policy: Transformer, critic: FeatureNetwork, chunks: [(id: Int, tokens: [Int32])],
                               settings: RolloutSettings, seeds: [UInt64]) -> [Measurement] {
        var raw = settings
        raw.rewards.whitening = false
        let alpha = settings.rewards.alpha, beta = settings.rewards.beta
        return seeds.map { seed in
            raw.sampling.seed = seed
            let s = RolloutWorker(policy: policy, critic: critic, settings: raw).run(chunks: chunks, policyVersion: -1).stats
            return Measurement(objective: alpha * s.alignmentPass1 - beta / 2 * s.diversityPass1,
                               alignment: s.alignmentPass1, featureMatching: s.featureMatchingPass1)
        }
    }

    /// Paired differences after − before, per quantity.
    public static func change(_ before: [Measurement], _ after: [Measurement]) -> (objective: MeanSE, alignment: MeanSE, featureMatching: MeanSE) {
        precondition(before.count == after.count, "paired measurements need the same seeds")
        let p = zip(after, before)
        return (MeanSE(p.map { $0.objective - $1.objective }), MeanSE(p.map { $0.alignment - $1.alignment }),
                MeanSE(p.map { $0.featureMatching - $1.featureMatching }))
    }

    /// The gradient of one EBFT step's loss (as the learners compute it: rollouts with `seed`,
    /// rewards as configured, RLOO, teacher-forced backward) on `chunks`, accumulated into
    /// `learner.grads` (zeroed first). Returns the learner's statistics.
    @discardableResult
    public static func gradient(learner: PolicyLearner, critic: FeatureNetwork, chunks: [(id: Int, tokens: [Int32])],
                                settings: RolloutSettings, seed: UInt64) -> LearnerStats {
        var s = settings
        s.sampling.seed = seed
        let out = RolloutWorker(policy: learner.model, critic: critic, settings: s).run(chunks: chunks, policyVersion: 0)
        learner.grads.zero()
        return learner.accumulate(out.experiences, totalSequences: out.experiences.count)
    }

    /// One optimizer step from a fresh AdamW state at a constant learning rate `lr` on the
    /// gradient in `learner.grads` (which it consumes), applied to the learner's model in place.
    public static func applyStep(learner: PolicyLearner, adam: AdamWConfig, lr: Double, maxGradNorm: Double) -> PolicyOptimizer.Result {
        let params = learner.model.parameters
        var opt = PolicyOptimizer(parameterCount: params.count, adam: adam, schedule: .constant(peak: lr),
                                  maxGradNorm: maxGradNorm)
        return opt.step(params: params, grads: learner.grads)
    }

    // MARK: exact objective (tiny vocabularies)

    /// J̄ computed exactly by enumerating all `V^G` completions of every block (raw features):
    /// `mean over chunks, blocks of [α·Σ_y p(y)·2cos(φ(y), φ_gt) − β‖Σ_y p(y) φ(y)‖²]`, with
    /// `p = π_T` (the sampling distribution at `temperature`, no top-p). Only for `V^G ≤ 65536`.
    public static func exactObjective(policy: Transformer, critic: FeatureNetwork, chunks: [[Int32]],
                                      geometry g: StridedGeometry, temperature: Float, alpha: Double, beta: Double) -> Double {
        let V = policy.config.vocabSize, G = g.G, K = g.K, D = critic.width
        var count = 1
        for _ in 0..<G { count *= V; precondition(count <= 65536, "V^G = \(V)^\(G) is too many completions to enumerate") }
        let invT: Float = temperature > 0 ? 1 / temperature : 1
        let layout = g.layout(tDone: G)
        var total = 0.0
        // Completion y (index in 0..<V^G, digit t = token t) is placed in every block at once.
        func completion(_ y: Int) -> [Int32] {
            var r = y, toks = [Int32](repeating: 0, count: G)
            for t in 0..<G { toks[t] = Int32(r % V); r /= V }
            return toks
        }
        let batch = 64
        for chunk in chunks {
            var logp = [Double](repeating: 0, count: count * K)       // [y][k]
            var feats = [Float](repeating: 0, count: count * K * D)  // [y][k][D]
            var gt = [Float]()
            var start = 0
            while start < count {
                let ys = Array(start..<min(count, start + batch))
                var tokens = [[Int32]]()
                for y in ys {
                    let c = completion(y)
                    var gen = [Int32](repeating: 0, count: G * K)
                    for t in 0..<G { for k in 0..<K { gen[t * K + k] = c[t] } }
                    tokens.append(gen)
                }
                let rollouts = ChunkRollouts(chunkID: 0, tokens: tokens,
                                             logProbs: tokens.map { [Float](repeating: 0, count: $0.count) })
                let f = critic.features(chunk: chunk, rollouts: rollouts, geometry: g)
                if gt.isEmpty { gt = f.groundTruth }
                feats.replaceSubrange((start * K * D)..<((start + ys.count) * K * D), with: f.generated)
                for (b, y) in ys.enumerated() {
                    var preds = [Prediction]()
                    for t in 0..<G {
                        for k in 0..<K {
                            preds.append(Prediction(row: g.predictionRow(t: t, k: k), target: tokens[b][t * K + k],
                                                    invTemperature: invT, weight: 0))
                        }
                    }
                    let lp = policy.logProbs(tokens: chunk + tokens[b], layout: layout, predictions: preds)
                    for t in 0..<G { for k in 0..<K { logp[y * K + k] += Double(lp[t * K + k]) } }
                }
                start += ys.count
            }
            for k in 0..<K {
                var mu = [Double](repeating: 0, count: D)
                var align = 0.0, mass = 0.0
                let gk = Array(gt[(k * D)..<((k + 1) * D)])
                let gg = gk.reduce(0.0) { $0 + Double($1) * Double($1) }
                for y in 0..<count {
                    let p = exp(logp[y * K + k])
                    mass += p
                    let base = (y * K + k) * D
                    var fg = 0.0, ff = 0.0
                    for d in 0..<D {
                        let v = Double(feats[base + d])
                        fg += v * Double(gk[d]); ff += v * v
                        mu[d] += p * v
                    }
                    align += p * 2 * fg / max((ff * gg).squareRoot(), 1e-8)
                }
                let mm = mu.reduce(0) { $0 + $1 * $1 }
                // mass is 1 up to rounding; normalise anyway
                total += alpha * align / mass - beta * mm / (mass * mass)
            }
        }
        return total / Double(chunks.count * K)
    }
}
