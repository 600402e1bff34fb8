import XCTest
@testable import Learner
@testable import Model
@testable import Rollout
@testable import Trainer

/// Issue 11: the EBFT estimator against the exact objective of a tiny model whose block
/// completions can all be enumerated (V = 11, G = 2: 121 completions per block).
final class UpdateCheckTests: XCTestCase {
    let V = 11
    let temperature: Float = 0.8

    struct Fixture {
        let params: ParameterStore
        let policy: Transformer
        let critic: FeatureNetwork
        let geometry: StridedGeometry
        let chunks: [[Int32]]
    }

    func fixture(pooling: Pooling = .lastToken) throws -> Fixture {
        let params = ParameterStore(config: .tiny(dim: 16, layers: 2, heads: 2, kvHeads: 1, ffnDim: 24, vocabSize: V))
        params.randomize(seed: 5, std: 0.3)
        let critic = FeatureNetwork(model: Transformer(parameters: params.clone()), pooling: pooling)
        let g = try StridedGeometry(P: 12, c: 4, G: 2, s: 2)  // K = 4
        var rng = SplitMix64(seed: 17)
        let chunks = (0..<2).map { _ in (0..<12).map { _ in Int32(rng.nextInt(below: V)) } }
        return Fixture(params: params, policy: Transformer(parameters: params), critic: critic, geometry: g, chunks: chunks)
    }

    func settings(_ f: Fixture, beta: Double, whitening: Bool, samples: Int = 4) -> RolloutSettings {
        RolloutSettings(geometry: f.geometry, samples: samples, sampling: SamplingOptions(temperature: temperature, seed: 0),
                        rewards: RewardOptions(alpha: 1, beta: beta, whitening: whitening), pooling: f.critic.pooling)
    }

    func exact(_ f: Fixture, beta: Double) -> Double {
        UpdateCheck.exactObjective(policy: f.policy, critic: f.critic, chunks: f.chunks, geometry: f.geometry,
                                   temperature: temperature, alpha: 1, beta: beta)
    }

    /// `chunks` repeated `copies` times under distinct ids (the sampler keys its draws by id),
    /// so one call samples copies × n independent rollouts of each chunk.
    func keyed(_ f: Fixture, copies: Int) -> [(id: Int, tokens: [Int32])] {
        (0..<copies).flatMap { c in f.chunks.enumerated().map { (id: c * f.chunks.count + $0.offset, tokens: $0.element) } }
    }

    /// The sampled raw-feature estimate agrees with the enumerated value within its standard
    /// error (the estimator the `diagnose update` command uses is unbiased for J).
    func testSampledObjectiveMatchesExactObjective() throws {
        let f = try fixture()
        for beta in [0.0, 1.0] {
            let want = exact(f, beta: beta)
            let m = UpdateCheck.measure(policy: f.policy, critic: f.critic, chunks: keyed(f, copies: 4),
                                        settings: settings(f, beta: beta, whitening: false), seeds: (0..<40).map { UInt64(100 + $0) })
            let est = UpdateCheck.MeanSE(m.map(\.objective))
            print("beta \(beta): exact J \(want), sampled \(est)")
            XCTAssertGreaterThan(est.se, 0)
            XCTAssertLessThan(abs(est.mean - want), 4 * est.se, "beta \(beta): sampled \(est) vs exact \(want)")
        }
    }

    /// Deliverable 2: the REINFORCE gradient (rollouts, RLOO advantages, the learner's backward)
    /// averaged over many samples equals −(1/G)·∇J̄ along random directions, where the
    /// directional derivative of the exact J̄ comes from central finite differences. Both
    /// poolings: with mean pooling the features are not unit norm, so alignment (a cosine) and
    /// diversity (a dot product) differ in kind.
    func testEstimatorGradientMatchesFiniteDifferences() throws {
        for pooling in Pooling.allCases { try checkEstimatorGradient(pooling: pooling) }
    }

    func checkEstimatorGradient(pooling: Pooling) throws {
        let f = try fixture(pooling: pooling)
        let beta = 1.0
        let learner = PolicyLearner(model: f.policy, geometry: f.geometry, temperature: temperature, ceCoef: 0)
        let count = f.params.count
        var rng = SplitMix64(seed: 77)
        let directions: [[Float]] = (0..<4).map { _ in
            var u = (0..<count).map { _ in Float(rng.nextNormal()) }
            let n = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for i in u.indices { u[i] /= n }
            return u
        }
        // Directional derivatives of the sampled gradient, one value per batch.
        var projections = [[Double]](repeating: [], count: directions.count)
        let s = settings(f, beta: beta, whitening: false)
        for seed in 0..<2000 {
            UpdateCheck.gradient(learner: learner, critic: f.critic, chunks: keyed(f, copies: 2), settings: s,
                                 seed: UInt64(1000 + seed))
            let g = Array(UnsafeBufferPointer(start: learner.grads.pointer, count: count))
            for (d, u) in directions.enumerated() {
                // −G·(ĝ·u) estimates ∇J̄·u
                projections[d].append(-Double(f.geometry.G) * zip(g, u).reduce(0.0) { $0 + Double($1.0) * Double($1.1) })
            }
        }
        let base = f.params.clone()
        // Central differences of the exact J̄ (float32 forwards): the same value to 4 digits at
        // ε = 0.003, 0.01 and 0.03 for these directions.
        let eps: Float = 0.01
        var informative = 0
        for (d, u) in directions.enumerated() {
            func shifted(_ a: Float) -> Double {
                let p = f.params.pointer
                for i in 0..<count { p[i] = base.pointer[i] + a * u[i] }
                return exact(f, beta: beta)
            }
            let fd = (shifted(eps) - shifted(-eps)) / Double(2 * eps)
            f.params.copy(from: base)
            let est = UpdateCheck.MeanSE(projections[d])
            print("\(pooling) direction \(d): finite difference \(fd), REINFORCE \(est)")
            // Agreement within the estimate's noise (4 SE) plus the finite difference's own error.
            XCTAssertLessThan(abs(est.mean - fd), 4 * est.se + 0.01 * abs(fd), "\(pooling) direction \(d): \(est) vs \(fd)")
            // Where the derivative stands out of the noise, the signs must agree.
            if abs(fd) > 4 * est.se {
                informative += 1
                XCTAssertEqual(fd.sign, est.mean.sign, "direction \(d)")
            }
        }
        XCTAssertGreaterThanOrEqual(informative, 2, "too few directions with a derivative above the noise to test anything")
    }

    /// Deliverable 1: one EBFT step (AdamW from a fresh state, small learning rate) on a batch
    /// raises the exact expected objective, and the paired sampled estimate sees the rise.
    func testOneStepRaisesExpectedObjective() throws {
        let f = try fixture()
        let beta = 1.0
        let learner = PolicyLearner(model: f.policy, geometry: f.geometry, temperature: temperature, ceCoef: 0)
        let base = f.params.clone()
        for whitening in [false, true] {
            f.params.copy(from: base)
            let before = exact(f, beta: beta)
            let evalSettings = settings(f, beta: beta, whitening: false)
            let seeds = (0..<24).map { UInt64(500 + $0) }
            let mBefore = UpdateCheck.measure(policy: f.policy, critic: f.critic, chunks: keyed(f, copies: 2),
                                              settings: evalSettings, seeds: seeds)
            UpdateCheck.gradient(learner: learner, critic: f.critic, chunks: keyed(f, copies: 16),
                                 settings: settings(f, beta: beta, whitening: whitening), seed: 9)
            let r = UpdateCheck.applyStep(learner: learner, adam: AdamWConfig(), lr: 3e-3, maxGradNorm: 1)
            XCTAssertTrue(r.applied)
            let after = exact(f, beta: beta)
            let mAfter = UpdateCheck.measure(policy: f.policy, critic: f.critic, chunks: keyed(f, copies: 2),
                                             settings: evalSettings, seeds: seeds)
            let d = UpdateCheck.change(mBefore, mAfter).objective
            print("whitening \(whitening): exact J \(before) → \(after) (Δ \(after - before)); sampled Δ \(d)")
            XCTAssertGreaterThan(after, before, "whitening \(whitening): the step lowered the expected objective")
            XCTAssertGreaterThan(d.mean, 2 * d.se, "whitening \(whitening): the paired estimate should see the rise")
            XCTAssertLessThan(abs(d.mean - (after - before)), 4 * d.se, "whitening \(whitening)")
        }
        f.params.copy(from: base)
    }
}
