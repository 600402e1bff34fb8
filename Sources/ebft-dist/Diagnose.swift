import ArgumentParser
import Foundation
import Learner
import Model
import Rollout
import Trainer

/// `ebft-dist diagnose …`: measurements that answer questions about the method, not speed.
struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Diagnostics of the EBFT objective (one process, no MPI).",
        subcommands: [DiagnoseUpdate.self])
}

/// `ebft-dist diagnose update`: does one EBFT step raise the expected objective?
struct DiagnoseUpdate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update",
        abstract: "Expected EBFT objective on fixed chunks before and after one EBFT step, with standard errors.",
        discussion: """
            The objective is J = α·E[align] − (β/2)·E[div] on raw (unwhitened) features — the \
            quantity whose gradient the EBFT estimator follows (with α = β = 1 and unit features, \
            ‖φ_gt‖² − L_CFM). It is estimated from --eval-seeds independent sampling seeds of \
            n rollouts per chunk; the same seeds are used before and after the step (common random \
            numbers), so the change is a paired mean with a standard error over seeds. The step \
            is the trainer's: rollouts with the run's settings (whitening, β, temperature), RLOO, \
            the learner's backward, clipping and AdamW from a fresh state at each --lr (--direction \
            adam), or a step of the same L2 length along the negative gradient (--direction \
            gradient). With several --train-seeds (independent training batches) it also reports \
            the gradient's signal-to-noise: the mean pairwise dot product of the batch gradients \
            (an unbiased estimate of ‖∇‖²) against their mean squared norm, and the batch size at \
            which the noise would equal the signal (the gradient noise scale).
            """)

    @OptionGroup var config: ConfigOptions
    @Option(help: "Training chunks the step is computed on (and evaluated on).") var chunks = 4
    @Option(help: "Held-out (validation) chunks also evaluated (at most eval-chunks).") var heldOut = 4
    @Option(help: "Sampling seeds of each evaluation.") var evalSeeds = 8
    @Option(help: "Independent training batches (one step each).") var trainSeeds = 2
    @Option(help: "Also estimate the signal-to-noise across different chunks: gradients of this many further batches of --chunks chunks each, all distinct.")
    var disjointBatches = 0
    @Option(help: "Comma-separated learning rates (step sizes).") var lr = "1e-6,1e-5,1e-4"
    @Option(help: "adam (the trainer's first AdamW step) or gradient (the same L2 length along −∇).")
    var direction = "adam"
    @Option(help: "Also write the results as JSON to this file.") var json: String?
    @Flag(help: "Only the gradients and their signal-to-noise figures: no evaluation, no step.") var gradientsOnly = false
    @Option(help: "With --gradients-only: the gradient of ebft (the EBFT loss) or ce (teacher-forced cross-entropy of the chunks, the SFT gradient, for comparison).")
    var objective = "ebft"

    func run() throws {
        let c = try config.resolve()
        let lrs = try lr.split(separator: ",").map { s -> Double in
            guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v > 0, v.isFinite else {
                throw ValidationError("--lr: '\(s)' is not a positive number")
            }
            return v
        }
        guard ["ebft", "ce"].contains(objective) else { throw ValidationError("--objective must be ebft or ce") }
        guard objective == "ebft" || gradientsOnly else { throw ValidationError("--objective ce needs --gradients-only") }
        guard ["adam", "gradient"].contains(direction) else { throw ValidationError("--direction must be adam or gradient") }
        guard chunks > 0, evalSeeds > 1, trainSeeds > 0, heldOut >= 0 else {
            throw ValidationError("--chunks and --train-seeds must be positive, --eval-seeds at least 2")
        }
        let ctx = try RunContext(config: c, loadCritic: true, log: { print($0) })
        guard let critic = ctx.critic else { throw ValidationError("no feature network") }
        // Chunks in the sampler's order: the first --chunks for the step, then the disjoint batches.
        var ids = [Int]()
        let wanted = chunks * (1 + disjointBatches)
        var t = 0
        while ids.count < wanted && t < ctx.chunkSampler.totalSteps(epochs: 1) {
            for i in ctx.chunkSampler.indices(step: t) where !ids.contains(i) && ids.count < wanted { ids.append(i) }
            t += 1
        }
        guard ids.count == wanted else { throw ValidationError("the corpus has fewer than \(wanted) training chunks") }
        let batches = stride(from: 0, to: wanted, by: chunks).map { b in ids[b..<(b + chunks)].map { (id: $0, tokens: ctx.train[$0].tokens) } }
        let trainChunks = batches[0]
        let heldChunks = ctx.validation.prefix(heldOut).enumerated().map { (id: 1_000_000 + $0.offset, tokens: $0.element.tokens) }
        let settings = ctx.rolloutSettings
        var seedRNG = SplitMix64(seed: CounterRNG.derive(c.seed, .validationSampling))
        let seeds = (0..<evalSeeds).map { _ in seedRNG.next() }
        let trainSeedValues = (0..<trainSeeds).map { _ in seedRNG.next() }
        guard ctx.lora == nil else {
            throw ValidationError("diagnose update measures full fine-tuning steps; drop lora-rank")
        }
        let policy = ctx.policy, params = policy.parameters, N = params.count
        let learner = PolicyLearner(model: policy, geometry: ctx.geometry, temperature: Float(c.temperature),
                                    ceCoef: Float(c.ceCoef))
        let adam = AdamWConfig(beta1: c.beta1, beta2: c.beta2, eps: c.adamEps, weightDecay: c.weightDecay)
        print("diagnose update: \(trainChunks.count) training chunks, \(heldChunks.count) held-out, n=\(c.samplesPerChunk), "
              + "K=\(ctx.geometry.K), G=\(c.generateLength), \(evalSeeds) evaluation seeds, \(trainSeeds) training batches; "
              + "rewards: whitening \(c.whitening), α \(c.alignmentCoef), β \(c.diversityCoef), T \(c.temperature), γ \(c.ceCoef); "
              + "direction \(direction)")
        fflush(nil)
        let t0 = Date()
        // Batch gradients: --train-seeds on the step's chunks (other samples), then one per
        // further batch of distinct chunks; batch b, seed r is keyed by trainSeedValues[r] + b.
        func batchGradient(_ chunkSet: [(id: Int, tokens: [Int32])], seed: UInt64) -> [Float] {
            if objective == "ce" {
                learner.grads.zero()
                _ = learner.accumulateCE(chunkSet.map(\.tokens), totalSequences: chunkSet.count)
            } else {
                UpdateCheck.gradient(learner: learner, critic: critic, chunks: chunkSet, settings: settings, seed: seed)
            }
            return Array(UnsafeBufferPointer(start: learner.grads.pointer, count: N))
        }
        let grads = (0..<trainSeeds).map { batchGradient(trainChunks, seed: trainSeedValues[$0]) }
        let batch = Double(chunks * (objective == "ce" ? 1 : c.samplesPerChunk))
        var noise: [String: Double] = ["batch_sequences": batch]
        print("gradient: ‖g‖ per batch " + grads.map { String(format: "%.4g", Self.dot($0, $0).squareRoot()) }.joined(separator: ", ")
              + String(format: " (batches of %.0f sequences)", batch))
        for (k, v) in Self.signalToNoise(grads, batch: batch, what: "the same chunks, other samples") { noise["same_chunks_" + k] = v }
        if disjointBatches > 0 {
            let other = [grads[0]] + batches.enumerated().dropFirst().map { batchGradient($0.element, seed: trainSeedValues[0] &+ UInt64($0.offset)) }
            for (k, v) in Self.signalToNoise(other, batch: batch, what: "different chunks") { noise["other_chunks_" + k] = v }
        }
        fflush(nil)
        if gradientsOnly {
            print(String(format: "(%.0f s)", Date().timeIntervalSince(t0)))
            if let json {
                let data = try JSONSerialization.data(withJSONObject: ["gradient": noise], options: [.prettyPrinted, .sortedKeys])
                try data.write(to: URL(fileURLWithPath: json))
            }
            return
        }
        func measure(_ chunks: [(id: Int, tokens: [Int32])]) -> [UpdateCheck.Measurement] {
            chunks.isEmpty ? [] : UpdateCheck.measure(policy: policy, critic: critic, chunks: chunks, settings: settings, seeds: seeds)
        }
        let beforeTrain = measure(trainChunks), beforeHeld = measure(heldChunks)
        let jT = UpdateCheck.MeanSE(beforeTrain.map(\.objective)), jH = UpdateCheck.MeanSE(beforeHeld.map(\.objective))
        print("J before: training chunks \(jT), held-out \(jH)  (\(String(format: "%.0f", Date().timeIntervalSince(t0))) s)")
        let norms2 = grads.map { Self.dot($0, $0) }
        fflush(nil)

        let theta0 = params.clone()
        var rows: [[String: Any]] = []
        print("")
        print("lr        batch  Δ J (training chunks)      t      Δ J (held-out)           t      Δ align (train)   Δ fm (held-out)")
        for rate in lrs {
            var perSeedT = [[Double]](repeating: [], count: evalSeeds), perSeedH = perSeedT
            for (r, g) in grads.enumerated() {
                params.copy(from: theta0)
                if direction == "adam" {
                    g.withUnsafeBufferPointer { learner.grads.pointer.update(from: $0.baseAddress!, count: N) }
                    _ = UpdateCheck.applyStep(learner: learner, adam: adam, lr: rate, maxGradNorm: c.maxGradNorm)
                } else {
                    let scale = Float(rate * Double(N).squareRoot() / norms2[r].squareRoot())
                    for i in 0..<N { params.pointer[i] -= scale * g[i] }
                }
                let aT = measure(trainChunks), aH = measure(heldChunks)
                let dT = UpdateCheck.change(beforeTrain, aT)
                let dH = heldChunks.isEmpty ? nil : UpdateCheck.change(beforeHeld, aH)
                for m in 0..<evalSeeds {
                    perSeedT[m].append(aT[m].objective - beforeTrain[m].objective)
                    if !heldChunks.isEmpty { perSeedH[m].append(aH[m].objective - beforeHeld[m].objective) }
                }
                print(row(rate, "\(r)", dT.objective, dH?.objective, dT.alignment, dH?.featureMatching))
                rows.append(["lr": rate, "batch": r, "train_dJ": dT.objective.mean, "train_dJ_se": dT.objective.se,
                             "heldout_dJ": dH?.objective.mean ?? Double.nan, "heldout_dJ_se": dH?.objective.se ?? Double.nan,
                             "train_dalign": dT.alignment.mean, "heldout_dfm": dH?.featureMatching.mean ?? Double.nan])
                fflush(nil)
            }
            if grads.count > 1 {
                let mT = UpdateCheck.MeanSE(perSeedT.map { $0.reduce(0, +) / Double($0.count) })
                let mH = heldChunks.isEmpty ? nil : UpdateCheck.MeanSE(perSeedH.map { $0.reduce(0, +) / Double($0.count) })
                print(row(rate, "mean", mT, mH, nil, nil))
            }
        }
        params.copy(from: theta0)
        print(String(format: "(%.0f s)", Date().timeIntervalSince(t0)))
        if let json {
            let out: [String: Any] = ["J_train": jT.mean, "J_train_se": jT.se, "J_heldout": jH.mean, "J_heldout_se": jH.se,
                                      "gradient": noise, "steps": rows, "direction": direction,
                                      "eval_seeds": evalSeeds, "chunks": trainChunks.count, "held_out": heldChunks.count]
            let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
        }
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Double {
        var s = 0.0
        for i in 0..<a.count { s += Double(a[i]) * Double(b[i]) }
        return s
    }

    /// Pairwise statistics of independent batch gradients g_r = ∇ + ξ_r: the mean pairwise dot
    /// product estimates ‖∇‖² without bias, the mean squared norm ‖∇‖² + E‖ξ‖², so the batch size
    /// at which the noise would equal the signal is B·(E‖g‖² − ‖∇‖²)/‖∇‖². Prints a line.
    static func signalToNoise(_ grads: [[Float]], batch: Double, what: String) -> [String: Double] {
        guard grads.count > 1 else { return [:] }
        let norms2 = grads.map { dot($0, $0) }
        var dots = [Double](), cos = [Double]()
        for a in 0..<grads.count {
            for b in (a + 1)..<grads.count {
                let d = dot(grads[a], grads[b])
                dots.append(d)
                cos.append(d / (norms2[a] * norms2[b]).squareRoot())
            }
        }
        let signal = dots.reduce(0, +) / Double(dots.count), meanNorm2 = norms2.reduce(0, +) / Double(norms2.count)
        let meanCos = cos.reduce(0, +) / Double(cos.count)
        let sdCos = cos.count > 1 ? (cos.reduce(0) { $0 + ($1 - meanCos) * ($1 - meanCos) } / Double(cos.count - 1)).squareRoot() : 0
        var out: [String: Double] = ["mean_pairwise_cosine": meanCos, "pairwise_cosine_sd": sdCos,
                                     "signal_norm2": signal, "mean_norm2": meanNorm2]
        // The pairs share batches, so sd/√pairs understates the mean's error somewhat.
        print(String(format: "  pairwise cosines: %d pairs, mean %.4f, sd %.4f, min %.4f, max %.4f", cos.count, meanCos, sdCos,
                     cos.min() ?? .nan, cos.max() ?? .nan))
        if signal > 0 {
            let bNoise = batch * (meanNorm2 - signal) / signal
            out["noise_scale_sequences"] = bNoise
            print(String(format: "signal-to-noise (%d batches, %@): mean pairwise cosine %.4f; ‖∇‖² ≈ %.4g of E‖g‖² = %.4g (%.2f%%); noise equals signal at a batch of ≈ %.0f sequences (these: %.0f)",
                         grads.count, what as NSString, meanCos, signal, meanNorm2, 100 * signal / meanNorm2, bNoise, batch))
        } else {
            print(String(format: "signal-to-noise (%d batches, %@): mean pairwise cosine %.4f ≤ 0: no common direction detectable at batches of %.0f sequences",
                         grads.count, what as NSString, meanCos, batch))
        }
        return out
    }

    func row(_ rate: Double, _ batch: String, _ t: UpdateCheck.MeanSE, _ h: UpdateCheck.MeanSE?,
             _ a: UpdateCheck.MeanSE?, _ fm: UpdateCheck.MeanSE?) -> String {
        func f(_ x: UpdateCheck.MeanSE?) -> String { x.map { "\($0)" }.map { $0.padding(toLength: 24, withPad: " ", startingAt: 0) } ?? String(repeating: " ", count: 24) }
        func tt(_ x: UpdateCheck.MeanSE?) -> String { x.map { String(format: "%6.2f", $0.t) } ?? "      " }
        return String(format: "%-9.3g ", rate) + batch.padding(toLength: 6, withPad: " ", startingAt: 0) + " " + f(t) + " " + tt(t) + " " + f(h) + " " + tt(h) + " "
            + (a.map { String(format: "%+.5f", $0.mean) } ?? "        ").padding(toLength: 17, withPad: " ", startingAt: 0) + " "
            + (fm.map { String(format: "%+.5f", $0.mean) } ?? "")
    }
}
