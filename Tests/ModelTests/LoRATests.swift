import XCTest
@testable import Model

/// LoRA adapters (`LoRA.swift`): finite-difference checks of dA and dB for every family option,
/// the chain rule through the merged weight, B = 0 and adapters-off equal to the base model, and
/// KV-cached decoding with adapters against the full forward.
final class LoRATests: XCTestCase {

    /// A random base model (norm weights away from 1) with random adapters (A and B ≠ 0).
    func makeModel(seed: UInt64, config: ModelConfig = .tiny(), lora lc: LoRAConfig = LoRAConfig(rank: 3, alpha: 6),
                   loraStd: Float = 0.15) -> Transformer {
        let params = ParameterStore(config: config)
        params.randomize(seed: seed, std: 0.15)
        var rng = TF.RNG(seed + 1)
        for v in params.layout.views where v.shape.count == 1 {
            for i in 0..<v.count { params.pointer[v.offset + i] = 1 + 0.2 * rng.normal() }
        }
        let m = Transformer(parameters: params)
        let lora = LoRAWeights(config: lc, model: config)
        lora.randomize(seed: seed + 2, std: loraStd)
        m.lora = lora
        return m
    }

    func loss(_ m: Transformer, _ tokens: [Int32], _ layout: AttentionLayout, _ preds: [Prediction]) -> Double {
        FiniteDifferenceCheck.loss(m, tokens, layout, preds)
    }

    /// dA and dB of every adapter against central differences (the entries with the largest
    /// analytic gradient plus random ones), with GradCheckTests' bound: 1 % of the tensor's
    /// largest gradient plus the finite difference's own Float32 rounding, an ulp per log-prob in
    /// each of the two evaluations (2·ε₃₂·Σ|w·log p| / h).
    func gradCheck(model m: Transformer, tokens: [Int32], layout: AttentionLayout, preds: [Prediction],
                   file: StaticString = #filePath, line: UInt = #line) {
        let lora = m.lora!
        let grads = LoRAWeights(like: lora)
        let res = m.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, loraGrads: grads)
        XCTAssertEqual(res.loss, loss(m, tokens, layout, preds), accuracy: 1e-4 * abs(res.loss), file: file, line: line)
        var tensors: [FiniteDifferenceCheck.Tensor] = []
        for ad in lora.adapters {
            for (name, off, n) in [("A", ad.a, lora.config.rank * ad.inDim), ("B", ad.b, lora.config.rank * ad.outDim)] {
                tensors.append(.init(label: "layer \(ad.layer) \(ad.target.hfName).\(name)", values: lora.pointer + off,
                                     gradient: UnsafeBufferPointer(start: grads.pointer + off, count: n)))
            }
        }
        let worst = FiniteDifferenceCheck.check(tensors, model: m, tokens: tokens, layout: layout, preds: preds,
                                                largest: 2, random: 2, file: file, line: line)
        print("LoRA gradcheck worst error / bound: \(worst)")
    }

    func testCausalGradients() {
        let m = makeModel(seed: 7)
        var rng = TF.RNG(8)
        let S = 9, B = 2
        let tokens = rng.tokens(S * B, vocab: m.config.vocabSize)
        var preds: [Prediction] = []
        for b in 0..<B { for t in 0..<S - 1 {
            preds.append(Prediction(row: b * S + t, target: tokens[b * S + t + 1], weight: Float(0.5 + rng.uniform())))
        } }
        gradCheck(model: m, tokens: tokens, layout: .causal(length: S), preds: preds)
    }

    /// The strided EBFT layout, untied head, activation recomputation and only some targets.
    func testStridedLayoutSomeTargetsGradients() {
        let m = makeModel(seed: 17, config: .tiny(tiedEmbeddings: false),
                          lora: LoRAConfig(rank: 2, alpha: 3, targets: [.q, .v, .down]))
        m.recomputeActivations = true
        XCTAssertEqual(m.lora!.adapters.count, 2 * 3)
        var rng = TF.RNG(18)
        let (layout, K, anchors) = TF.stridedLayout(P: 8, c: 2, s: 2, G: 2)
        let tokens = rng.tokens(layout.count, vocab: m.config.vocabSize)
        var preds: [Prediction] = []
        for t in 0..<7 { preds.append(Prediction(row: t, target: tokens[t + 1], weight: 0.3)) }
        for t in 0..<2 { for k in 0..<K {
            let row = t == 0 ? anchors[k] - 1 : 8 + (t - 1) * K + k
            preds.append(Prediction(row: row, target: tokens[8 + t * K + k], invTemperature: 1 / 0.7,
                                    weight: Float(rng.uniform() * 2 - 1)))
        } }
        gradCheck(model: m, tokens: tokens, layout: layout, preds: preds)
    }

    /// Llama biases, head_dim ≠ d/heads, llama3 rope scaling; Qwen3 q/k norms with biases.
    func testFamilyOptionsGradients() {
        var llama = ModelConfig.tiny(tiedEmbeddings: false)
        llama.headDim = 12
        llama.qkvBias = true
        llama.outputBias = true
        llama.mlpBias = true
        llama.ropeScaling = RopeScaling(kind: .llama3, factor: 2, lowFreqFactor: 1, highFreqFactor: 4,
                                        originalMaxPositionEmbeddings: 16)
        var q3 = ModelConfig.tiny()
        q3.architecture = .qwen3
        q3.qkNorm = true
        q3.qkvBias = true
        q3.outputBias = true
        for (i, cfg) in [llama, q3].enumerated() {
            XCTAssertNoThrow(try cfg.validate())
            let m = makeModel(seed: 47 + UInt64(i), config: cfg)
            var rng = TF.RNG(48)
            let tokens = rng.tokens(8, vocab: cfg.vocabSize)
            gradCheck(model: m, tokens: tokens, layout: .causal(length: 8),
                      preds: (0..<7).map { Prediction(row: $0, target: tokens[$0 + 1]) })
        }
    }

    /// The chain rule through the merged weight W' = W + s·B·A: dB = s·dW'·Aᵀ, dA = s·Bᵀ·dW',
    /// with dW' the full fine-tuning gradient of the merged model; and the adapted forward
    /// equals the merged model's.
    func testGradientsEqualTheMergedWeightsChainRule() {
        let m = makeModel(seed: 27)
        let lora = m.lora!
        let merged = m.parameters.clone()
        lora.merge(into: merged)
        let mm = Transformer(parameters: merged)
        var rng = TF.RNG(28)
        let (layout, _, _) = TF.stridedLayout(P: 10, c: 2, s: 2, G: 3)
        let tokens = rng.tokens(layout.count, vocab: m.config.vocabSize)
        let preds = (0..<layout.count - 1).map { Prediction(row: $0, target: tokens[($0 + 3) % tokens.count]) }
        let lpA = m.logProbs(tokens: tokens, layout: layout, predictions: preds)
        let lpM = mm.logProbs(tokens: tokens, layout: layout, predictions: preds)
        // Float32 rounding of two different summation orders of the same products.
        XCTAssertLessThan(TF.maxAbsDiff(lpA, lpM), 1e-4)
        let gl = LoRAWeights(like: lora)
        _ = m.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, loraGrads: gl)
        let gw = ParameterStore(like: merged)
        _ = mm.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, grads: gw)
        let r = lora.config.rank, s = Double(lora.config.scale)
        for ad in lora.adapters {
            let dW = gw.pointer + ad.base, A = lora.pointer + ad.a, B = lora.pointer + ad.b
            var worst = 0.0, size = 0.0
            for o in 0..<ad.outDim { for j in 0..<r {
                var want = 0.0
                for i in 0..<ad.inDim { want += s * Double(dW[o * ad.inDim + i]) * Double(A[j * ad.inDim + i]) }
                worst = max(worst, abs(want - Double(gl.pointer[ad.b + o * r + j])))
                size = max(size, abs(want))
            } }
            for j in 0..<r { for i in 0..<ad.inDim {
                var want = 0.0
                for o in 0..<ad.outDim { want += s * Double(B[o * r + j]) * Double(dW[o * ad.inDim + i]) }
                worst = max(worst, abs(want - Double(gl.pointer[ad.a + j * ad.inDim + i])))
                size = max(size, abs(want))
            } }
            XCTAssertGreaterThan(size, 0)
            XCTAssertLessThan(worst, 1e-3 * size, "layer \(ad.layer) \(ad.target)")
        }
    }

    /// B = 0 (the initialisation): log-probs, hidden states and decoding bit-identical to the base.
    func testZeroBIsExactlyTheBaseModel() {
        let m = makeModel(seed: 37)
        let base = m.withoutAdapters()
        m.lora!.initialize(seed: 5)
        let lora = m.lora!
        for ad in lora.adapters {
            let b = UnsafeBufferPointer(start: lora.pointer + ad.b, count: lora.config.rank * ad.outDim)
            XCTAssertTrue(b.allSatisfy { $0 == 0 })
            let a = UnsafeBufferPointer(start: lora.pointer + ad.a, count: lora.config.rank * ad.inDim)
            let bound = Float(1 / Double(ad.inDim).squareRoot())
            XCTAssertTrue(a.allSatisfy { abs($0) <= bound } && a.contains { $0 != 0 })
        }
        var rng = TF.RNG(38)
        let (layout, _, _) = TF.stridedLayout(P: 10, c: 2, s: 2, G: 3)
        let tokens = rng.tokens(layout.count * 2, vocab: m.config.vocabSize)
        let preds = (0..<tokens.count - 1).map { Prediction(row: $0, target: tokens[$0 + 1]) }
        XCTAssertEqual(m.logProbs(tokens: tokens, layout: layout, predictions: preds),
                       base.logProbs(tokens: tokens, layout: layout, predictions: preds))
        XCTAssertEqual(m.hiddenStates(tokens: tokens, layout: layout, layers: [1, 2]),
                       base.hiddenStates(tokens: tokens, layout: layout, layers: [1, 2]))
        let greedy: ([Float]) -> Int32 = { z in Int32(z.indices.max { z[$0] < z[$1] }!) }
        XCTAssertEqual(m.generate(prompt: [3, 9, 4], maxNewTokens: 5, pick: greedy),
                       base.generate(prompt: [3, 9, 4], maxNewTokens: 5, pick: greedy))
    }

    /// Adapters off (the feature network of a LoRA run, on the same parameter store) equals the
    /// base model while B ≠ 0, and the adapters do change the model.
    func testAdaptersOffEqualsBaseWhileBIsNotZero() {
        let params = ParameterStore(config: .tiny())
        params.randomize(seed: 57, std: 0.15)
        let plain = Transformer(parameters: params.clone())
        var rng = TF.RNG(58)
        let tokens = rng.tokens(12, vocab: 61)
        let layers = [1, 2]
        let want = plain.hiddenStates(tokens: tokens, layout: .causal(length: 12), layers: layers)
        let policy = Transformer(parameters: params)
        policy.lora = LoRAWeights(config: LoRAConfig(rank: 4, alpha: 8), model: params.config)
        policy.lora!.randomize(seed: 59, std: 0.2)
        let critic = policy.withoutAdapters()
        XCTAssertTrue(critic.parameters === policy.parameters)
        XCTAssertNil(critic.lora)
        let adapted = policy.hiddenStates(tokens: tokens, layout: .causal(length: 12), layers: layers)
        XCTAssertGreaterThan(TF.maxAbsDiff(adapted[1], want[1]), 1e-3)
        XCTAssertEqual(critic.hiddenStates(tokens: tokens, layout: .causal(length: 12), layers: layers), want)
        // Switching the adapters off on the policy itself gives the base model too.
        let saved = policy.lora
        policy.lora = nil
        XCTAssertEqual(policy.hiddenStates(tokens: tokens, layout: .causal(length: 12), layers: layers), want)
        policy.lora = saved
        XCTAssertEqual(policy.hiddenStates(tokens: tokens, layout: .causal(length: 12), layers: layers), adapted)
    }

    /// KV-cached decoding (prefill + DecodeBatch) with adapters: the logits of every step equal
    /// the full forward's, greedy tokens equal, and the strided decode of the sampler too.
    func testDecodeWithAdaptersMatchesFullForward() {
        let m = makeModel(seed: 67, config: .tiny(layers: 3))
        let prompt: [Int32] = [4, 17, 9, 33, 2]
        var seen: [[Float]] = []
        let out = m.generate(prompt: prompt, maxNewTokens: 6) { z in
            seen.append(z)
            return Int32(z.indices.max { z[$0] < z[$1] }!)
        }
        var seq = prompt
        for i in 0..<6 {
            let z = m.logits(tokens: seq, layout: .causal(length: seq.count), rows: [seq.count - 1])
            XCTAssertLessThan(TF.maxAbsDiff(z, seen[i]), 1e-4, "step \(i)")
            XCTAssertEqual(Int32(z.indices.max { z[$0] < z[$1] }!), out[i])
            seq.append(out[i])
        }
        let base = m.withoutAdapters()
        let baseOut = base.logits(tokens: seq, layout: .causal(length: seq.count), rows: [seq.count - 1])
        let z = m.logits(tokens: seq, layout: .causal(length: seq.count), rows: [seq.count - 1])
        XCTAssertGreaterThan(TF.maxAbsDiff(z, baseOut), 1e-3, "the adapters change the logits")
        // Strided: prefix + one stream per block, as the sampler decodes.
        var rng = TF.RNG(68)
        let P = 12, G = 3
        let (layout, K, anchors) = TF.stridedLayout(P: P, c: 2, s: 3, G: G)
        let toks = rng.tokens(layout.count, vocab: 61)
        let prefix = m.prefill(tokens: Array(toks[0..<P]), logitRows: anchors.map { $0 - 1 })
        XCTAssertLessThan(TF.maxAbsDiff(prefix.logits, m.logits(tokens: toks, layout: layout,
                                                                rows: anchors.map { $0 - 1 })), 1e-4)
        let batch = DecodeBatch(model: m, prefix: prefix,
                                streams: anchors.map { DecodeStream(prefixLength: $0, firstPosition: $0) },
                                maxNewTokens: G)
        let ref = m.logits(tokens: toks, layout: layout, rows: (0..<G * K).map { P + $0 })
        for t in 0..<G {
            let zs = batch.step(tokens: (0..<K).map { toks[P + t * K + $0] })
            let want = Array(ref[(t * K * 61)..<((t + 1) * K * 61)])
            XCTAssertLessThan(TF.maxAbsDiff(zs, want), 1e-4, "strided step \(t)")
        }
    }

    func testConfigParsingAndErrors() throws {
        XCTAssertEqual(try LoRAConfig.parseTargets("q,v, down"), [.q, .v, .down])
        XCTAssertEqual(try LoRAConfig.parseTargets("q_proj,o_proj"), [.q, .o])
        XCTAssertEqual(try LoRAConfig.parseTargets("all"), LoRATarget.allCases)
        XCTAssertThrowsError(try LoRAConfig.parseTargets("q,lm_head"))
        XCTAssertThrowsError(try LoRAConfig.parseTargets("q,q"))
        XCTAssertThrowsError(try LoRAConfig(rank: 0, alpha: 1).validate())
        XCTAssertThrowsError(try LoRAConfig(rank: 2, alpha: 0).validate())
        XCTAssertEqual(LoRAConfig(rank: 2, alpha: 1, targets: [.down, .q]).targets, [.q, .down])
        let l = LoRAWeights(config: LoRAConfig(rank: 2, alpha: 4), model: .tiny())
        let c = ModelConfig.tiny()
        XCTAssertEqual(l.count, c.layers * 2 * (c.dim + c.qDim + 2 * (c.dim + c.kvDim) + c.qDim + c.dim
                                                + 2 * (c.dim + c.ffnDim) + c.ffnDim + c.dim))
    }
}
