import XCTest
import Model
import Rollout
@testable import Trainer

final class StepCostTests: XCTestCase {
    /// A model small enough to count by hand: d = 4, 2 layers, 2 heads of 2 (1 KV head),
    /// ffn 6, vocab 10, tied. Per token and layer the linear layers are q 16 + k, v 16 + o 16 +
    /// ffn 72 = 120 weights (240 FLOPs); attention 4·2·2 = 16 FLOPs per visible key; the head
    /// 2·10·4 = 80 FLOPs per row. Geometry P = 6, c = 2, G = 2, s = 2: K = 2 blocks, anchors 2, 4.
    func testHandCountedStep() throws {
        let c = ModelConfig(dim: 4, layers: 2, heads: 2, kvHeads: 1, headDim: 2, ffnDim: 6, vocabSize: 10)
        let g = try StridedGeometry(P: 6, c: 2, G: 2, s: 2)
        XCTAssertEqual(g.K, 2)
        let cost = StepCost(model: c, geometry: g, samples: 2, chunks: 1, criticLayers: 1)
        // Chunk: 6 tokens, 1 + … + 6 = 21 keys. Sampling feeds G − 1 = 1 token per block per
        // sample: (t=0, k=0) sees a_0 + 1 = 3 keys, (0, 1) sees 5: 8 keys, 2 tokens, 2 head rows;
        // the chunk pass gives the K = 2 first-token rows.
        // sampling = [2·(6·240 + 21·16) + 2·80] + 2·[2·(2·240 + 8·16) + 2·80] = 3712 + 2752
        XCTAssertEqual(cost.sampling, 6464)
        // features, one layer: chunk 6·240 + 21·16 = 1776; each sample's 4 tokens see
        // 3 + 4 + 5 + 6 = 18 keys: 960 + 288 = 1248, twice.
        XCTAssertEqual(cost.features, 1776 + 2 * 1248)
        // learner = 3·([2·1776 + 5·80] + 2·[2·1248 + 4·80]) = 3·(3952 + 5632)
        XCTAssertEqual(cost.learner, 28752)
        // 10·4 (tied) + 2·(120 + 8 norm weights) + 4 = 300 parameters, 28 bytes each.
        XCTAssertEqual(cost.optimizerBytes, 8400)
        XCTAssertEqual(StepCost(model: c, geometry: g, samples: 2, chunks: 3, criticLayers: 1).learner, 3 * 28752)
        XCTAssertEqual(StepCost(model: c, geometry: g, samples: 2, chunks: 1, criticLayers: 1, trainedParameters: 7).optimizerBytes, 196)
    }

    /// The closed-form key sums against a token-by-token count at the small preset's geometry
    /// on the SmolLM2 shape, with the chunk's positions and the generated tokens' positions taken
    /// from `StridedGeometry` (position(of:) + 1 keys for a generated token: the chunk before its
    /// anchor and its block so far).
    func testClosedFormsEqualTokenByTokenCount() throws {
        let c = ModelConfig.smolLM2_135M
        let g = try StridedGeometry(P: 128, c: 8, G: 8, s: 8)
        let n = 4, lc = Features.featureLayers(L: c.layers).max()!
        let cost = StepCost(model: c, geometry: g, samples: n, chunks: 2, criticLayers: lc)
        let perLayerLinear = 2.0 * Double(c.qDim * c.dim + 2 * c.kvDim * c.dim + c.dim * c.qDim + 3 * c.ffnDim * c.dim)
        let attn = 4.0 * Double(c.heads * c.headDim), head = 2.0 * Double(c.vocabSize * c.dim)
        func token(keys: Int, layers: Int) -> Double { Double(layers) * (perLayerLinear + Double(keys) * attn) }
        var sampling = 0.0, features = 0.0, learner = 0.0
        for q in 0..<g.P {
            sampling += token(keys: q + 1, layers: c.layers)
            features += token(keys: q + 1, layers: lc)
            learner += 3 * token(keys: q + 1, layers: c.layers) + (q < g.P - 1 ? 3 * head : 0)
        }
        sampling += Double(g.K) * head
        for _ in 0..<n {
            for t in 0..<g.G {
                for k in 0..<g.K {
                    let keys = g.position(of: g.index(t: t, k: k)) + 1
                    if t < g.G - 1 { sampling += token(keys: keys, layers: c.layers) + head }
                    features += token(keys: keys, layers: lc)
                    learner += 3 * (token(keys: keys, layers: c.layers) + head)
                }
            }
        }
        XCTAssertEqual(cost.sampling, 2 * sampling, accuracy: 1e-9 * sampling)
        XCTAssertEqual(cost.features, 2 * features, accuracy: 1e-9 * features)
        XCTAssertEqual(cost.learner, 2 * learner, accuracy: 1e-9 * learner)
        XCTAssertEqual(cost.optimizerBytes, 28 * Double(c.parameterCount))
    }

    /// The baselines' counts by hand on the same model (240 FLOPs per token and layer, 16 per
    /// visible key and layer, 80 per head row, 2 layers).
    func testBaselinesHandCounted() throws {
        let c = ModelConfig(dim: 4, layers: 2, heads: 2, kvHeads: 1, headDim: 2, ffnDim: 6, vocabSize: 10)
        // SFT, P = 6: one forward is 2·(6·240 + 21·16) + 5·80 = 3952; ×3 for the backward; 2 chunks.
        XCTAssertEqual(StepCost.sft(model: c, chunkLength: 6, chunks: 2), 2 * 3 * 3952)
        // RLVR, question 1: a 3-token prompt, completions of 2 and 1 tokens. The prefill feeds
        // positions 0, 1 (1 + 2 = 3 keys): 2·(2·240 + 3·16) = 1056. The 2-token completion feeds
        // positions 2, 3 (3 + 4 = 7 keys, 2 head rows): 2·(480 + 112) + 160 = 1344; the 1-token one
        // position 2 (3 keys): 2·(240 + 48) + 80 = 656. Question 2: a 2-token prompt, prefill
        // position 0 (1 key): 2·(240 + 16) = 512; one 1-token completion at position 1 (2 keys):
        // 2·(240 + 32) + 80 = 624.
        let cost = StepCost.rlvr(model: c, questions: [(prompt: 3, completions: [2, 1]), (prompt: 2, completions: [1])])
        XCTAssertEqual(cost.sampling, 1056 + 1344 + 656 + 512 + 624)
        XCTAssertEqual(cost.learner, 3 * cost.sampling)
        // The closed form of a completion's keys against a position-by-position sum, at sizes
        // where an off-by-one would show: prompt 37, completion 50.
        let n = 37, m = 50
        let keys = (n - 1..<n + m - 1).reduce(0) { $0 + $1 + 1 }
        let one = StepCost.rlvr(model: c, questions: [(prompt: n, completions: [m])]).sampling
        let prefill = StepCost.forward(model: c, layers: 2, tokens: Double(n - 1), keys: Double((n - 1) * n / 2), headRows: 0)
        XCTAssertEqual(one - prefill, 2 * (Double(m) * 240 + Double(keys) * 16) + Double(m) * 80)
    }
}
