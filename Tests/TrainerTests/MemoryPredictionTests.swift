import XCTest
@testable import Model
@testable import Trainer

/// `bench memory`'s prediction against sums worked out by hand for a tiny shape.
final class MemoryPredictionTests: XCTestCase {
    // d = 8, one block, 2 heads of 4 (q 8 wide), 1 KV head (k, v 4 wide), FFN 12, V = 10.
    let model = ModelConfig(dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffnDim: 12, vocabSize: 10)

    /// P = 8, c = 2, G = 2, s = 2 → K = 3 blocks, strided length S = 8 + 2·3 = 14; n = 2
    /// samples, 2 chunks per step; one strided sequence per sample (`shared-prefix=false`).
    func geometry(sharedPrefix: Bool = false) -> TrainConfig {
        var t = TrainConfig()
        t.chunkLength = 8; t.contextLength = 2; t.generateLength = 2; t.stride = 2
        t.samplesPerChunk = 2; t.chunksPerStep = 2
        t.sharedPrefix = sharedPrefix
        return t
    }

    /// Shared prefixes: a chunk's samples are one sequence of P + n·G·K = 8 + 2·6 = 20 tokens.
    func testSharedPrefix() {
        let t = geometry(sharedPrefix: true)
        let p = MemoryPrediction.predict(model: model, parameters: 500, config: t, role: .colocated, learners: 1, workers: 1)
        // Learner: 2 chunks → 2 pieces of 20 tokens in one micro-batch; critic: one 20-token sequence.
        XCTAssertEqual(bytes(p, "activations"), Double(40 * 189 * 4 + 20 * 120 * 4))
        // 2 learners: each holds one sample of each chunk, pieces of 8 + 6 = 14 tokens, 2 of them.
        let l = MemoryPrediction.predict(model: model, parameters: 500, config: t, role: .learner, learners: 2, workers: 2)
        XCTAssertEqual(bytes(l, "activations"), Double(28 * 189 * 4))
        let w = MemoryPrediction.predict(model: model, parameters: 500, config: t, role: .worker, learners: 2, workers: 2)
        XCTAssertEqual(bytes(w, "activations"), Double(8 * 96 * 4 + 20 * 120 * 4))
    }

    /// `micro-batch-tokens` bounds the continuations of a micro-batch (G·K = 6 per sample here);
    /// the chunk (P = 8) comes on top.
    func testMicroBatchTokens() {
        var t = geometry(sharedPrefix: true)
        func learnerActs(_ limit: Int) -> Double {
            t.microBatchTokens = limit
            return bytes(MemoryPrediction.predict(model: model, parameters: 500, config: t, role: .learner,
                                                  learners: 1, workers: 1), "activations")
        }
        // 12: both samples fit (8 + 12 = 20 rows per chunk) but not two chunks (40 > 12): 20 rows.
        XCTAssertEqual(learnerActs(12), Double(20 * 189 * 4))
        // 11: one sample per group (8 + 6 = 14 rows), one group per micro-batch.
        XCTAssertEqual(learnerActs(11), Double(14 * 189 * 4))
        // 40: the two chunks' 20-row groups stack.
        XCTAssertEqual(learnerActs(40), Double(40 * 189 * 4))
    }

    func bytes(_ p: MemoryPrediction, _ name: String) -> Double {
        p.lines.first { $0.category == name }!.bytes
    }

    func testColocatedFullFineTuning() {
        let p = MemoryPrediction.predict(model: model, parameters: 500, config: geometry(), role: .colocated,
                                         learners: 1, workers: 1, runtime: 1000)
        XCTAssertEqual(bytes(p, "runtime"), 1000)
        XCTAssertEqual(bytes(p, "weights"), 2000)        // 4 · 500
        XCTAssertEqual(bytes(p, "frozen critic"), 2000)
        XCTAssertEqual(bytes(p, "gradients"), 2000)
        XCTAssertEqual(bytes(p, "optimizer"), 4000)      // m and v
        // Training: 4 sequences × 14 = 56 tokens in one micro-batch. Per token: block acts
        // 2 + 2·8 + 2·4 + 2 + 8 + 2·12 = 60, residual inputs 2·8 = 16, workspace
        // 8 + 12 + 1 + 8 + 3·8 + 2·8 + 2·4 + 2·12 + 12 = 113 → 189 floats. Critic: 2·14 = 28
        // tokens × (60 + 2·8 + 8 + 12 + 3·8 = 120) floats.
        XCTAssertEqual(bytes(p, "activations"), Double(56 * 189 * 4 + 28 * 120 * 4))
        // The sampler decodes both chunks together (12 streams ≤ maxBatchStreams): logit chunk
        // 256 × (10 + 2·8); sampler logits 2 × (2 chunks · 2·3 streams) × 10.
        XCTAssertEqual(bytes(p, "logits"), Double(256 * 26 * 4 + 2 * 12 * 10 * 4))
        // Prefixes 2 × 8 positions and 12 streams × 2 tokens, 1 block × 4 wide × (k, v).
        XCTAssertEqual(bytes(p, "KV cache"), Double(2 * 8 * 8 * 4 + 12 * 2 * 8 * 4))
        let expected: Double = 95_640     // 1000 + 3·2000 + 4000 + 55 776 + 27 584 + 1280
        XCTAssertEqual(p.total, expected)
        // One chunk per decode batch when two do not fit: the single chunk's 6 streams.
        let one = MemoryPrediction.predict(model: model, parameters: 500, config: geometry(), role: .colocated,
                                           learners: 1, workers: 1, runtime: 1000, maxBatchStreams: 11)
        XCTAssertEqual(bytes(one, "logits"), Double(256 * 26 * 4 + 2 * 6 * 10 * 4))
        XCTAssertEqual(bytes(one, "KV cache"), Double(8 * 8 * 4 + 6 * 2 * 8 * 4))
    }

    func testShardedLearnerAndWorker() {
        let l = MemoryPrediction.predict(model: model, parameters: 500, config: geometry(), role: .learner,
                                         learners: 2, workers: 2, shardOptimizer: true)
        XCTAssertEqual(bytes(l, "frozen critic"), 0)
        XCTAssertEqual(bytes(l, "gradients"), 2000)   // the flat gradient (the shard's sum is in place)
        XCTAssertEqual(bytes(l, "optimizer"), 2000)          // 8 · 500 / 2
        XCTAssertEqual(bytes(l, "KV cache"), 0)
        // 4 sequences over 2 learners: 2 × 14 = 28 tokens.
        XCTAssertEqual(bytes(l, "activations"), Double(28 * 189 * 4))
        let w = MemoryPrediction.predict(model: model, parameters: 500, config: geometry(), role: .worker,
                                         learners: 2, workers: 2, shardOptimizer: true)
        XCTAssertEqual(bytes(w, "gradients") + bytes(w, "optimizer"), 0)
        XCTAssertEqual(bytes(w, "frozen critic"), 2000)
        // The policy's prefix forward (8 tokens × (60 + 16 + 8 + 12 = 96)) and the critic's.
        XCTAssertEqual(bytes(w, "activations"), Double(8 * 96 * 4 + 28 * 120 * 4))
    }

    func testLoRA() {
        // Per block r·(in + out): q 8+8, k 8+4, v 8+4, o 8+8, gate 8+12, up 8+12, down 12+8 = 116.
        XCTAssertEqual(MemoryPrediction.loraParameters(model, rank: 2), 232)
        // SmolLM2-135M, r = 16: 30 · 16 · (7·576 + 2·576 + 2·192 + 3·1536) = 4,884,480.
        XCTAssertEqual(MemoryPrediction.loraParameters(.smolLM2_135M, rank: 16), 4_884_480)
        let p = MemoryPrediction.predict(model: model, parameters: 500, config: geometry(), role: .colocated,
                                         learners: 1, workers: 1, loraRank: 2)
        XCTAssertEqual(bytes(p, "weights"), Double(4 * (500 + 232)))
        XCTAssertEqual(bytes(p, "frozen critic"), 0)
        XCTAssertEqual(bytes(p, "gradients"), Double(4 * 232))
        XCTAssertEqual(bytes(p, "optimizer"), Double(8 * 232))
        // The adapters' x·A products: 7 projections × r = 14 more floats per token per block.
        XCTAssertEqual(bytes(p, "activations"), Double(56 * (189 + 14) * 4 + 28 * 120 * 4))
    }
}
