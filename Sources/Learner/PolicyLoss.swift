import Model
import Rollout

/// The EBFT objective of one strided sequence as a list of weighted predictions (spec §7.2):
///
///     loss_seq = −(1/(G·K)) Σ_{t,k} A_k · log π_T(z[P+t·K+k] | …)   +   γ · (1/(P−1)) Σ_q −log π_1(x[q+1] | x[0…q])
///
/// scaled by `sequenceWeight` (1 / the number of sequences in the whole optimizer step, over all
/// learners, so that all-reduced gradients are the batch mean). Generated tokens are scored
/// with the logits at the sampling temperature T (their rows follow spec §4.5); the chunk's CE
/// at T = 1.
public enum PolicyLoss {
    public static func predictions(for e: Experience, geometry g: StridedGeometry, temperature: Float,
                                   ceCoef: Float, sequenceWeight w: Float) -> [Prediction] {
        let K = g.K, G = g.G, P = g.P
        precondition(e.chunk.count == P && e.generated.count == G * K && e.advantages.count == K,
                     "experience does not match the geometry")
        let invT: Float = temperature > 0 ? 1 / temperature : 1
        var out = [Prediction]()
        out.reserveCapacity(P - 1 + G * K)
        // The chunk's predictions come first (rows 0..<P−1), also when γ = 0: their log-probs
        // give the CE metric.
        let cw = w * ceCoef / Float(P - 1)
        for q in 0..<(P - 1) { out.append(Prediction(row: q, target: e.chunk[q + 1], invTemperature: 1, weight: cw)) }
        let gw = w / Float(G * K) // loss term weight·(−logp) = −A·logp/(GK)
        for t in 0..<G {
            for k in 0..<K {
                out.append(Prediction(row: g.predictionRow(t: t, k: k), target: e.generated[t * K + k],
                                      invTemperature: invT, weight: gw * e.advantages[k]))
            }
        }
        return out
    }
}

/// Statistics of one learner's share of a step (sums; divide by `sequences` for means).
public struct LearnerStats: Equatable, Sendable {
    public var sequences = 0.0
    /// Σ over sequences of the mean chunk NLL (T = 1).
    public var ceSum = 0.0
    /// Σ over sequences of the RL loss term −(1/(GK)) Σ A·logp.
    public var rlSum = 0.0
    /// Largest |log π_θ(token) − sampling log-prob| over generated tokens (0 when on-policy).
    public var maxLogProbDrift = 0.0
    public var tokens = 0.0
    public init() {}

    public mutating func merge(_ o: LearnerStats) {
        sequences += o.sequences
        ceSum += o.ceSum
        rlSum += o.rlSum
        maxLogProbDrift = max(maxLogProbDrift, o.maxLogProbDrift)
        tokens += o.tokens
    }

    public var packed: [Double] { [sequences, ceSum, rlSum, maxLogProbDrift, tokens] }
    public init(packed p: [Double]) {
        (sequences, ceSum, rlSum, maxLogProbDrift, tokens) = (p[0], p[1], p[2], p[3], p[4])
    }
}

/// Teacher-forced strided forward/backward of experiences, accumulating gradients.
public final class PolicyLearner {
    public let model: Transformer
    /// The gradient of full fine-tuning (nil when the model trains LoRA adapters).
    public let fullGrads: ParameterStore?
    /// The adapters' gradient when the model has LoRA adapters (its base weights are frozen).
    public let loraGrads: LoRAWeights?
    /// The full fine-tuning gradient (precondition: no LoRA).
    public var grads: ParameterStore {
        guard let fullGrads else { preconditionFailure("this learner trains LoRA adapters: use loraGrads") }
        return fullGrads
    }
    /// The trained values' gradient as one flat buffer (the whole model's, or the adapters').
    public var gradient: (pointer: UnsafeMutablePointer<Float>, count: Int) {
        if let loraGrads { return (loraGrads.pointer, loraGrads.count) }
        return (fullGrads!.pointer, fullGrads!.count)
    }
    public let geometry: StridedGeometry
    public let temperature: Float
    public let ceCoef: Float

    public init(model: Transformer, geometry: StridedGeometry, temperature: Float, ceCoef: Float) {
        self.model = model
        if let lora = model.lora {
            loraGrads = LoRAWeights(like: lora)
            fullGrads = nil
        } else {
            loraGrads = nil
            fullGrads = ParameterStore(like: model.parameters)
        }
        self.geometry = geometry
        self.temperature = temperature
        self.ceCoef = ceCoef
    }

    /// One forward/backward into the gradient this learner trains.
    func backward(tokens: [Int32], layout: AttentionLayout, predictions: [Prediction]) -> LossResult {
        if let loraGrads {
            return model.lossAndGradient(tokens: tokens, layout: layout, predictions: predictions, loraGrads: loraGrads)
        }
        return model.lossAndGradient(tokens: tokens, layout: layout, predictions: predictions, grads: grads)
    }

    /// Tokens per forward/backward call: experiences are stacked into micro-batches (they share
    /// one layout), so the matrix products are larger; activation memory grows with this.
    public var maxTokensPerBatch = 4096

    /// Run the samples of a chunk as one shared-prefix sequence (the chunk computed once per
    /// group, `SharedPrefixLearner.swift`); false = one full strided sequence per sample.
    public var sharedPrefix = true

    /// Adds the gradient of each experience's loss (weighted 1/`totalSequences`) into `grads`.
    /// `layerReady(l)` is called as soon as block l's gradients are final (during the last
    /// micro-batch's backward, blocks L−1 … 0); blocks of a learner with no experience are
    /// never reported.
    public func accumulate(_ experiences: [Experience], totalSequences: Int,
                           layerReady: ((Int) -> Void)? = nil) -> LearnerStats {
        if sharedPrefix { return accumulateShared(experiences, totalSequences: totalSequences, layerReady: layerReady) }
        let g = geometry, layout = g.layout(tDone: g.G), S = g.fullLength
        var stats = LearnerStats()
        let w = 1 / Float(totalSequences)
        let perBatch = max(1, maxTokensPerBatch / S)
        var start = 0
        while start < experiences.count {
            let batch = Array(experiences[start..<min(experiences.count, start + perBatch)])
            start += batch.count
            var tokens = [Int32]()
            tokens.reserveCapacity(batch.count * S)
            var preds = [Prediction]()
            var perSequence = 0
            for (b, e) in batch.enumerated() {
                tokens += e.strided
                var p = PolicyLoss.predictions(for: e, geometry: g, temperature: temperature, ceCoef: ceCoef, sequenceWeight: w)
                perSequence = p.count
                for j in p.indices { p[j].row += Int32(b * S) }
                preds += p
            }
            model.layerGradientsReady = start >= experiences.count ? layerReady : nil
            let r = backward(tokens: tokens, layout: layout, predictions: preds)
            model.layerGradientsReady = nil
            let nCE = g.P - 1
            for (b, e) in batch.enumerated() {
                let lp = r.logProbs[(b * perSequence)..<((b + 1) * perSequence)]
                var ce = 0.0, rl = 0.0, drift = 0.0
                for j in 0..<nCE { ce -= Double(lp[lp.startIndex + j]) }
                for j in nCE..<perSequence {
                    let idx = j - nCE, k = idx % g.K
                    let v = Double(lp[lp.startIndex + j])
                    rl -= Double(e.advantages[k]) * v
                    drift = max(drift, abs(v - Double(e.sampleLogProbs[idx])))
                }
                stats.sequences += 1
                stats.ceSum += ce / Double(nCE)
                stats.rlSum += rl / Double(g.G * g.K)
                stats.maxLogProbDrift = max(stats.maxLogProbDrift, drift)
                stats.tokens += Double(S)
            }
        }
        return stats
    }

    /// Supervised fine-tuning (the SFT baseline): mean next-token NLL of each chunk (plain
    /// causal teacher forcing, T = 1), each chunk weighted 1/`totalSequences`.
    public func accumulateCE(_ chunks: [[Int32]], totalSequences: Int, layerReady: ((Int) -> Void)? = nil) -> LearnerStats {
        var stats = LearnerStats()
        guard let P = chunks.first?.count else { return stats }
        let layout = AttentionLayout.causal(length: P)
        let w = 1 / Float(totalSequences) / Float(P - 1)
        let perBatch = max(1, maxTokensPerBatch / P)
        var start = 0
        while start < chunks.count {
            let batch = Array(chunks[start..<min(chunks.count, start + perBatch)])
            start += batch.count
            var preds: [Prediction] = []
            for (b, x) in batch.enumerated() {
                precondition(x.count == P, "chunks must have equal length")
                for q in 0..<(P - 1) { preds.append(Prediction(row: b * P + q, target: x[q + 1], weight: w)) }
            }
            model.layerGradientsReady = start >= chunks.count ? layerReady : nil
            let r = backward(tokens: batch.flatMap { $0 }, layout: layout, predictions: preds)
            model.layerGradientsReady = nil
            for b in 0..<batch.count {
                stats.sequences += 1
                stats.ceSum -= r.logProbs[(b * (P - 1))..<((b + 1) * (P - 1))].reduce(0.0) { $0 + Double($1) } / Double(P - 1)
                stats.tokens += Double(P)
            }
        }
        return stats
    }

    /// Policy gradient on whole completions (the RLVR baseline): sequence i is `prompts[i]`
    /// followed by `completions[i]`; its loss is −A_i/(`totalSequences`·`tokenScale`) Σ_t
    /// log π_T(completion token t | prompt, earlier completion tokens), plain causal attention.
    /// Sequences are sorted by length into micro-batches, right-padded (padding is never
    /// predicted and, being later, never attended to).
    public func accumulateCompletions(prompts: [[Int32]], completions: [[Int32]], advantages: [Float],
                                      totalSequences: Int, tokenScale: Int, pad: Int32,
                                      layerReady: ((Int) -> Void)? = nil) -> LearnerStats {
        precondition(prompts.count == completions.count && prompts.count == advantages.count)
        var stats = LearnerStats()
        let order = prompts.indices.filter { !completions[$0].isEmpty }
            .sorted { (prompts[$0].count + completions[$0].count, $0) < (prompts[$1].count + completions[$1].count, $1) }
        guard !order.isEmpty else { return stats }
        let invT: Float = temperature > 0 ? 1 / temperature : 1
        let w = 1 / Float(totalSequences) / Float(tokenScale)
        var start = 0
        while start < order.count {
            // Grow the batch while the padded size fits (at least one sequence).
            var end = start + 1
            while end < order.count {
                let len = prompts[order[end]].count + completions[order[end]].count
                if len * (end - start + 1) > maxTokensPerBatch { break }
                end += 1
            }
            let batch = Array(order[start..<end])
            start = end
            let S = batch.map { prompts[$0].count + completions[$0].count }.max()!
            var tokens = [Int32](), preds = [Prediction]()
            tokens.reserveCapacity(batch.count * S)
            for (b, i) in batch.enumerated() {
                let seq = prompts[i] + completions[i]
                tokens += seq + [Int32](repeating: pad, count: S - seq.count)
                for t in 0..<completions[i].count {
                    let row = b * S + prompts[i].count - 1 + t
                    preds.append(Prediction(row: row, target: completions[i][t], invTemperature: invT, weight: w * advantages[i]))
                }
            }
            // lossAndGradient minimises Σ weight·(−log p): weight = A·w is the loss above.
            model.layerGradientsReady = start >= order.count ? layerReady : nil
            let r = backward(tokens: tokens, layout: .causal(length: S), predictions: preds)
            model.layerGradientsReady = nil
            var k = 0
            for i in batch {
                var lp = 0.0
                for _ in 0..<completions[i].count { lp += Double(r.logProbs[k]); k += 1 }
                stats.sequences += 1
                stats.rlSum -= Double(advantages[i]) * lp / Double(tokenScale)
                stats.tokens += Double(prompts[i].count + completions[i].count)
            }
        }
        return stats
    }
}
