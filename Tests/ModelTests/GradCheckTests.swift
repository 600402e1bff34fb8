import XCTest
@testable import Model

/// Analytic gradients of `lossAndGradient` against central finite differences of the loss, for
/// every kind of parameter, on a causal batch and on the strided EBFT layout.
final class GradCheckTests: XCTestCase {

    func makeModel(seed: UInt64, tied: Bool = true, config: ModelConfig? = nil) -> Transformer {
        let cfg = config ?? ModelConfig.tiny(tiedEmbeddings: tied)
        let params = ParameterStore(config: cfg)
        params.randomize(seed: seed, std: 0.15)
        // Norm weights away from 1 so their gradients are exercised (biases away from 0).
        var rng = TF.RNG(seed + 1)
        for v in params.layout.views where v.shape.count == 1 {
            for i in 0..<v.count { params.pointer[v.offset + i] = 1 + 0.2 * rng.normal() }
        }
        return Transformer(parameters: params)
    }

    func loss(_ m: Transformer, _ tokens: [Int32], _ layout: AttentionLayout, _ preds: [Prediction]) -> Double {
        FiniteDifferenceCheck.loss(m, tokens, layout, preds)
    }

    /// Checks, per tensor, the entries with the largest analytic gradient plus a few random ones.
    func gradCheck(model m: Transformer, tokens: [Int32], layout: AttentionLayout, preds: [Prediction],
                   file: StaticString = #filePath, line: UInt = #line) {
        let grads = ParameterStore(like: m.parameters)
        let res = m.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, grads: grads)
        XCTAssertEqual(res.loss, loss(m, tokens, layout, preds), accuracy: 1e-4 * abs(res.loss), file: file, line: line)
        let tensors = m.parameters.layout.views.map {
            FiniteDifferenceCheck.Tensor(label: $0.name, values: m.parameters.pointer + $0.offset,
                                         gradient: UnsafeBufferPointer(start: grads.pointer + $0.offset, count: $0.count))
        }
        let worst = FiniteDifferenceCheck.check(tensors, model: m, tokens: tokens, layout: layout, preds: preds,
                                                largest: 3, random: 3, file: file, line: line)
        print("gradcheck worst error / bound: \(worst)")
    }

    func testCausalBatchGradients() {
        let m = makeModel(seed: 7)
        var rng = TF.RNG(8)
        let S = 9, B = 2
        let tokens = rng.tokens(S * B, vocab: m.config.vocabSize)
        var preds: [Prediction] = []
        for b in 0..<B { for t in 0..<S - 1 {
            preds.append(Prediction(row: b * S + t, target: tokens[b * S + t + 1], invTemperature: 1,
                                    weight: Float(0.5 + rng.uniform())))
        } }
        gradCheck(model: m, tokens: tokens, layout: .causal(length: S), preds: preds)
    }

    func testStridedLayoutGradients() {
        let m = makeModel(seed: 17)
        var rng = TF.RNG(18)
        let P = 8, c = 2, s = 2, G = 2
        let (layout, K, anchors) = TF.stridedLayout(P: P, c: c, s: s, G: G)   // K = 3, S = 14
        let tokens = rng.tokens(layout.count, vocab: m.config.vocabSize)
        var preds: [Prediction] = []
        for t in 0..<P - 1 { preds.append(Prediction(row: t, target: tokens[t + 1], weight: 0.3)) }
        for t in 0..<G { for k in 0..<K {
            let row = t == 0 ? anchors[k] - 1 : P + (t - 1) * K + k
            // Advantage-like weights of both signs, temperature 0.7.
            preds.append(Prediction(row: row, target: tokens[P + t * K + k], invTemperature: 1 / 0.7,
                                    weight: Float(rng.uniform() * 2 - 1)))
        } }
        gradCheck(model: m, tokens: tokens, layout: layout, preds: preds)
    }

    func testUntiedHeadAndCheckpointingGradients() {
        let m = makeModel(seed: 27, tied: false)
        m.recomputeActivations = true
        m.logitChunkRows = 3     // several vocabulary chunks
        var rng = TF.RNG(28)
        let S = 7
        let tokens = rng.tokens(S, vocab: m.config.vocabSize)
        let preds = (0..<S - 1).map { Prediction(row: $0, target: tokens[$0 + 1]) }
            + [Prediction(row: 2, target: 5, weight: 2)]   // a row used twice
        gradCheck(model: m, tokens: tokens, layout: .causal(length: S), preds: preds)
    }

    func testGradientsAccumulateAndCheckpointingAgrees() {
        let m = makeModel(seed: 37)
        var rng = TF.RNG(38)
        let (layout, _, _) = TF.stridedLayout(P: 10, c: 2, s: 2, G: 3)
        let tokens = rng.tokens(layout.count * 2, vocab: m.config.vocabSize)
        let preds = (0..<layout.count * 2 - 1).map { Prediction(row: $0, target: tokens[($0 + 5) % tokens.count]) }
        let g1 = ParameterStore(like: m.parameters)
        let r1 = m.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, grads: g1)
        m.recomputeActivations = true
        let g2 = ParameterStore(like: m.parameters)
        _ = m.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, grads: g2)
        let r2 = m.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, grads: g2)
        XCTAssertEqual(r1.loss, r2.loss, accuracy: 1e-9 * abs(r1.loss))
        var worst: Float = 0
        for i in 0..<g1.count { worst = max(worst, abs(2 * g1.pointer[i] - g2.pointer[i])) }
        XCTAssertLessThan(worst, 1e-5 * Float(g1.squaredNorm().squareRoot()) + 1e-6)
    }

    /// The family options' parameters: q/k/v, output and MLP biases (Llama `attention_bias`,
    /// `mlp_bias`) with head_dim 12 ≠ 32/4 and llama3 rope scaling, on a causal batch.
    func testLlamaBiasesHeadDimRopeScalingGradients() {
        var cfg = ModelConfig.tiny(tiedEmbeddings: false)
        cfg.headDim = 12
        cfg.qkvBias = true
        cfg.outputBias = true
        cfg.mlpBias = true
        cfg.ropeScaling = RopeScaling(kind: .llama3, factor: 2, lowFreqFactor: 1, highFreqFactor: 4,
                                      originalMaxPositionEmbeddings: 16)
        XCTAssertNoThrow(try cfg.validate())
        let m = makeModel(seed: 47, config: cfg)
        var rng = TF.RNG(48)
        // One short sequence: few log-probs in the loss keep the finite differences' Float32
        // rounding below the small k-bias gradients (a k bias only acts through RoPE).
        let S = 8
        let tokens = rng.tokens(S, vocab: m.config.vocabSize)
        let preds = (0..<S - 1).map { Prediction(row: $0, target: tokens[$0 + 1]) }
        gradCheck(model: m, tokens: tokens, layout: .causal(length: S), preds: preds)
    }

    /// Qwen3's per-head q/k RMSNorm (and its q/k/v/o biases with `attention_bias`) on the strided
    /// layout, with activation recomputation; and Qwen2's q/k/v biases on a causal batch.
    func testQKNormAndQwenBiasGradients() {
        var q3 = ModelConfig.tiny()
        q3.architecture = .qwen3
        q3.qkNorm = true
        q3.qkvBias = true
        q3.outputBias = true
        let m = makeModel(seed: 57, config: q3)
        m.recomputeActivations = true
        var rng = TF.RNG(58)
        let (layout, _, _) = TF.stridedLayout(P: 8, c: 2, s: 2, G: 2)
        let tokens = rng.tokens(layout.count, vocab: m.config.vocabSize)
        let preds = (0..<layout.count - 1).map { Prediction(row: $0, target: tokens[$0 + 1], weight: Float(rng.uniform())) }
        gradCheck(model: m, tokens: tokens, layout: layout, preds: preds)

        var q2 = ModelConfig.tiny()
        q2.architecture = .qwen2
        q2.qkvBias = true
        let m2 = makeModel(seed: 67, config: q2)
        let t2 = rng.tokens(10, vocab: m2.config.vocabSize)
        gradCheck(model: m2, tokens: t2, layout: .causal(length: 10),
                  preds: (0..<9).map { Prediction(row: $0, target: t2[$0 + 1]) })
    }
}
