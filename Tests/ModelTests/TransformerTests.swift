import XCTest
@testable import Model

final class TransformerTests: XCTestCase {

    func model(seed: UInt64 = 5, layers: Int = 2) -> Transformer {
        let p = ParameterStore(config: .tiny(layers: layers))
        p.randomize(seed: seed, std: 0.15)
        return Transformer(parameters: p)
    }

    func testConfigAndParameterStore() throws {
        let c = ModelConfig.smolLM2_135M
        try c.validate()
        XCTAssertEqual(c.parameterCount, 134_515_008)   // SmolLM2-135M
        XCTAssertThrowsError(try ModelConfig.tiny(heads: 4, kvHeads: 3).validate())
        let s = ParameterStore(config: .tiny())
        XCTAssertEqual(Int(bitPattern: s.pointer) % 64, 0)
        for v in s.layout.views { XCTAssertEqual(v.offset % 16, 0, v.name) }
        XCTAssertEqual(s.view("blk.1.attn_k.weight")?.shape, [16, 32])
        XCTAssertEqual(s.view("blk.0.ffn_down.weight")?.shape, [32, 48])
        XCTAssertEqual(s.view("token_embd.weight")?.shape, [61, 32])
        XCTAssertNil(s.view("output.weight"))
        XCTAssertGreaterThanOrEqual(s.count, ModelConfig.tiny().parameterCount)
        s.randomize(seed: 1)
        XCTAssertEqual(s["blk.0.attn_norm.weight"][3], 1)
        let t = s.clone()
        XCTAssertEqual(t["blk.1.attn_q.weight"][7], s["blk.1.attn_q.weight"][7])
        XCTAssertNotEqual(s["blk.1.attn_q.weight"][7], 0)
        t.zero()
        XCTAssertEqual(t.squaredNorm(), 0)
        // FLOPs: 2·matmul params dominate at short context
        XCTAssertEqual(c.flopsPerToken(contextLength: 0), 2 * Double(c.matmulParameters))
    }

    func testBatchInvariance() {
        let m = model()
        var rng = TF.RNG(1)
        let (layout, _, _) = TF.stridedLayout(P: 12, c: 2, s: 2, G: 3)
        let S = layout.count
        let a = rng.tokens(S, vocab: 61), b = rng.tokens(S, vocab: 61), c = rng.tokens(S, vocab: 61)
        let alone = m.forward(tokens: b, layout: layout)
        let batched = m.forward(tokens: a + b + c, layout: layout)
        XCTAssertLessThan(TF.maxAbsDiff(alone, Array(batched[S * 32 ..< 2 * S * 32])), 1e-5)
        // the loss of a batch is the sum of the per-sequence losses
        let preds = (0..<S - 1).map { Prediction(row: $0, target: b[$0 + 1]) }
        let lpAlone = m.logProbs(tokens: b, layout: layout, predictions: preds)
        let lpBatched = m.logProbs(tokens: a + b + c, layout: layout,
                                   predictions: preds.map { Prediction(row: Int($0.row) + S, target: $0.target) })
        XCTAssertLessThan(TF.maxAbsDiff(lpAlone, lpBatched), 1e-5)
    }

    func testLogProbsMatchLogits() {
        let m = model()
        var rng = TF.RNG(2)
        let tokens = rng.tokens(10, vocab: 61)
        let layout = AttentionLayout.causal(length: 10)
        let z = m.logits(tokens: tokens, layout: layout, rows: [3, 7])
        let preds = [Prediction(row: 3, target: 5, invTemperature: 2), Prediction(row: 7, target: 60)]
        let lp = m.logProbs(tokens: tokens, layout: layout, predictions: preds)
        for (i, p) in preds.enumerated() {
            let row = z[i * 61 ..< (i + 1) * 61].map { Double($0) * Double(p.invTemperature) }
            let mx = row.max()!
            let lse = mx + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - mx) })
            XCTAssertEqual(Double(lp[i]), row[Int(p.target)] - lse, accuracy: 1e-5)
        }
        // A prompt token's hidden state does not depend on later tokens.
        var other = tokens
        other[8] = (other[8] + 1) % 61
        let z2 = m.logits(tokens: other, layout: layout, rows: [3, 7])
        XCTAssertLessThan(TF.maxAbsDiff(Array(z[0..<61]), Array(z2[0..<61])), 1e-6)
        XCTAssertGreaterThan(TF.maxAbsDiff(Array(z[0..<61]), Array(z2[61..<122])), 1e-3)
    }

    func testHiddenStatesEqualResidualStream() {
        let m = model(layers: 3)
        var rng = TF.RNG(3)
        let (layout, _, _) = TF.stridedLayout(P: 10, c: 2, s: 2, G: 2)
        let S = layout.count
        let tokens = rng.tokens(2 * S, vocab: 61)
        let hs = m.hiddenStates(tokens: tokens, layout: layout, layers: [2, 1, 3])
        XCTAssertEqual(hs.count, 3)
        // Reference: the training forward keeps every block's output in the workspace.
        let grads = ParameterStore(like: m.parameters)
        _ = m.lossAndGradient(tokens: tokens, layout: layout, predictions: [Prediction(row: 0, target: 1)], grads: grads)
        for (i, l) in [2, 1, 3].enumerated() {
            let ref = Array(UnsafeBufferPointer(start: m.ws.x(l).get(2 * S * 32), count: 2 * S * 32))
            XCTAssertEqual(hs[i].count, ref.count)
            XCTAssertLessThan(TF.maxAbsDiff(hs[i], ref), 1e-6, "layer \(l)")
        }
        // Layer L then final norm equals forward().
        let final = m.forward(tokens: tokens, layout: layout)
        let w = m.parameters["output_norm.weight"]
        for t in [0, S + 5] {
            let row = hs[2][t * 32 ..< (t + 1) * 32]
            let r = 1 / (row.reduce(0) { $0 + $1 * $1 } / 32 + 1e-5).squareRoot()
            for i in 0..<32 { XCTAssertEqual(final[t * 32 + i], row[row.startIndex + i] * r * w[i], accuracy: 1e-5) }
        }
        // Capturing layer 1 only must not depend on deeper layers.
        let h1 = m.hiddenStates(tokens: tokens, layout: layout, layers: [1])
        XCTAssertLessThan(TF.maxAbsDiff(h1[0], hs[1]), 1e-6)
    }

    func testCachedGenerationMatchesFullForward() {
        let m = model()
        let prompt: [Int32] = [4, 17, 9, 33, 2]
        var logitsSeen: [[Float]] = []
        let out = m.generate(prompt: prompt, maxNewTokens: 6) { z in
            logitsSeen.append(z)
            return Int32(z.indices.max { z[$0] < z[$1] }!)
        }
        XCTAssertEqual(out.count, 6)
        var seq = prompt
        for i in 0..<6 {
            let z = m.logits(tokens: seq, layout: .causal(length: seq.count), rows: [seq.count - 1])
            XCTAssertLessThan(TF.maxAbsDiff(z, logitsSeen[i]), 1e-4, "step \(i)")
            let greedy = Int32(z.indices.max { z[$0] < z[$1] }!)
            XCTAssertEqual(greedy, out[i])
            seq.append(out[i])
        }
        // One-token prompt: empty prefix.
        let one = m.generate(prompt: [7], maxNewTokens: 2) { z in Int32(z.indices.max { z[$0] < z[$1] }!) }
        let z0 = m.logits(tokens: [7], layout: .causal(length: 1), rows: [0])
        XCTAssertEqual(one[0], Int32(z0.indices.max { z0[$0] < z0[$1] }!))
    }

    func testStridedDecodeWithSharedPrefixesMatchesFullForward() {
        let m = model(layers: 3)
        var rng = TF.RNG(4)
        let P = 14, c = 2, s = 3, G = 3
        let (layout, K, anchors) = TF.stridedLayout(P: P, c: c, s: s, G: G)   // K = 4
        let V = 61
        // Two chunks (two prefix segments) decoded in one batch, streams interleaved.
        let seqs = [rng.tokens(layout.count, vocab: V), rng.tokens(layout.count, vocab: V)]
        let prefixes = seqs.map { m.prefill(tokens: Array($0[0..<P]), logitRows: anchors.map { $0 - 1 }) }
        var streams: [DecodeStream] = []
        var who: [(seq: Int, k: Int)] = []
        for k in 0..<K { for sq in 0..<2 {
            streams.append(DecodeStream(prefix: sq, prefixLength: anchors[k], firstPosition: anchors[k]))
            who.append((sq, k))
        } }
        let batch = DecodeBatch(model: m, prefixes: prefixes, streams: streams, maxNewTokens: G)
        for sq in 0..<2 {
            // Prefill logits of rows a_k − 1 equal the strided forward's.
            let ref = m.logits(tokens: seqs[sq], layout: layout, rows: anchors.map { $0 - 1 })
            XCTAssertLessThan(TF.maxAbsDiff(prefixes[sq].logits, ref), 1e-4)
        }
        let refs = seqs.map { z in
            m.logits(tokens: z, layout: layout, rows: (0..<G * K).map { P + $0 })   // rows P + t·K + k
        }
        for t in 0..<G {
            let toks = who.map { seqs[$0.seq][P + t * K + $0.k] }
            let z = batch.step(tokens: toks)
            for (b, w) in who.enumerated() {
                let got = Array(z[b * V ..< (b + 1) * V])
                let row = t * K + w.k
                let want = Array(refs[w.seq][row * V ..< (row + 1) * V])
                XCTAssertLessThan(TF.maxAbsDiff(got, want), 1e-4, "step \(t) stream \(b)")
            }
        }
        XCTAssertEqual(batch.stepCount, G)
    }

    func testDecodeHiddenMatchesForward() {
        let m = model()
        var rng = TF.RNG(6)
        let tokens = rng.tokens(9, vocab: 61)
        let full = m.forward(tokens: tokens, layout: .causal(length: 9))
        let prefix = m.prefill(tokens: Array(tokens[0..<6]))
        // Two identical streams and one with a shorter prefix view, batched.
        let batch = DecodeBatch(model: m, prefix: prefix, streams: [
            DecodeStream(prefixLength: 6, firstPosition: 6), DecodeStream(prefixLength: 6, firstPosition: 6),
            DecodeStream(prefixLength: 0, firstPosition: 0)], maxNewTokens: 3)
        for t in 6..<9 {
            let h = batch.stepHidden(tokens: [tokens[t], tokens[t], tokens[t - 6]])
            XCTAssertLessThan(TF.maxAbsDiff(Array(h[0..<32]), Array(full[t * 32 ..< (t + 1) * 32])), 1e-5)
            XCTAssertLessThan(TF.maxAbsDiff(Array(h[0..<32]), Array(h[32..<64])), 1e-6)
            XCTAssertLessThan(TF.maxAbsDiff(Array(h[64..<96]), Array(full[(t - 6) * 32 ..< (t - 5) * 32])), 1e-5)
        }
    }
}

final class GradientBucketTests: XCTestCase {
    /// The backward buckets cover the flat buffer exactly once, blocks last-to-first first.
    func testBackwardBucketsPartitionTheBuffer() {
        for tied in [true, false] {
            let layout = ParameterLayout(config: .tiny(tiedEmbeddings: tied))
            let b = layout.backwardBuckets
            var covered = [Int](repeating: 0, count: layout.count)
            for r in b { for i in r { covered[i] += 1 } }
            XCTAssertEqual(Set(covered), [1], "tied \(tied)")
            XCTAssertEqual(b[0], layout.layerRange(layout.layers.count - 1))
            XCTAssertTrue(b[0].contains(layout.layers.last!.down))
            XCTAssertTrue(b.last!.contains(layout.outputNorm))
        }
    }

    /// `layerGradientsReady` reports blocks L−1 … 0, each once, during the backward.
    func testLayerHookOrder() {
        let p = ParameterStore(config: .tiny(layers: 3))
        p.randomize(seed: 1)
        let m = Transformer(parameters: p)
        var seen: [Int] = []
        m.layerGradientsReady = { seen.append($0) }
        let g = ParameterStore(like: p)
        _ = m.lossAndGradient(tokens: [1, 2, 3, 4], layout: .causal(length: 4),
                              predictions: [Prediction(row: 0, target: 2), Prediction(row: 2, target: 4)], grads: g)
        XCTAssertEqual(seen, [2, 1, 0])
    }
}
