import XCTest
@testable import Model

/// `random:` model specs with the family options (for end-to-end tests and `bench model`).
final class RandomModelSpecTests: XCTestCase {
    func testFamilyOptions() throws {
        let q2 = try RandomModelSpec.make("random:arch=qwen2,dim=32,heads=4,kv-heads=2,tied=false", vocab: 61).config
        XCTAssertEqual(q2, ModelConfig(dim: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, ffnDim: 64, vocabSize: 61,
                                       tiedEmbeddings: false, architecture: .qwen2, qkvBias: true))
        let q3 = try RandomModelSpec.make("random:arch=qwen3,head-dim=16,attention-bias=true", vocab: 61)
        XCTAssertTrue(q3.config.qkNorm && q3.config.qkvBias && q3.config.outputBias)
        XCTAssertEqual(q3.config.qDim, 64)
        XCTAssertNotNil(q3.view("blk.1.attn_k_norm.weight"))
        XCTAssertEqual(Array(q3["blk.0.attn_q_norm.weight"]), [Float](repeating: 1, count: 16))
        XCTAssertTrue(q3["blk.0.attn_q.bias"].contains { $0 != 0 })  // biases are random, not 1
        let l = try RandomModelSpec.make("random:rope-theta=500000,rope-scaling=llama3:8:1:4:64,mlp-bias=true,"
                                         + "attention-bias=true", vocab: 61).config
        XCTAssertEqual(l.ropeBase, 500000)
        XCTAssertEqual(l.ropeScaling, RopeScaling(kind: .llama3, factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                                  originalMaxPositionEmbeddings: 64))
        XCTAssertTrue(l.mlpBias && l.qkvBias && l.outputBias)
        XCTAssertEqual(try RandomModelSpec.make("random:rope-scaling=linear:2", vocab: 61).config.ropeScaling,
                       RopeScaling(kind: .linear, factor: 2))
    }

    /// `shape=` gives the published shapes (for `bench model`); other keys change them.
    func testPublishedShapes() throws {
        let spec = "random:shape=qwen2.5-0.5b,layers=1,vocab=100"
        let q = try RandomModelSpec.make(spec, vocab: 61).config
        var want = ModelConfig.qwen25_05B
        want.layers = 1
        want.vocabSize = 100
        XCTAssertEqual(q, want)
        XCTAssertEqual(ModelConfig.qwen25_05B.dim, 896)
        XCTAssertEqual(ModelConfig.qwen25_05B.parameterCount, 494_032_768)   // Qwen2.5-0.5B's published count
        XCTAssertEqual(ModelConfig.llama32_1B.parameterCount, 1_235_814_400) // Llama-3.2-1B's published count
        XCTAssertEqual(try RandomModelSpec.make("random:shape=llama-3.2-1b,layers=1,vocab=100", vocab: 61).config.ropeScaling?.factor, 32)
    }

    func testErrors() {
        for (spec, expect) in [("random:arch=gpt2", "arch=gpt2 is not one of llama, qwen2, qwen3, mistral"),
                               ("random:shape=big", "shape=big is not known"),
                               ("random:arch=qwen2,mlp-bias=true", "mlp-bias is an option of arch=llama"),
                               ("random:arch=mistral,attention-bias=true", "attention-bias is an option"),
                               ("random:rope-scaling=yarn:4", "expected linear:FACTOR or llama3"),
                               ("random:rope-scaling=linear:0.5", "factor 0.5 must be"),
                               ("random:tied=yes", "tied=yes is not true or false"),
                               ("random:dim=30,heads=4", "not a multiple of heads")] {
            XCTAssertThrowsError(try RandomModelSpec.make(spec, vocab: 61), spec) { e in
                XCTAssertTrue("\(e)".contains(expect), "\(spec): \(e)")
            }
        }
    }
}

/// `ModelConfig` is stored in checkpoints' state.json: configs written before the family
/// options existed still decode (as llama without options), and the options round-trip.
final class ModelConfigCodingTests: XCTestCase {
    func testOldJSONDecodesAndOptionsRoundTrip() throws {
        let old = #"{"dim":32,"layers":2,"heads":4,"kvHeads":2,"headDim":8,"ffnDim":48,"vocabSize":61,"ropeBase":10000,"#
            + #""normEps":1e-05,"tiedEmbeddings":true}"#
        XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: Data(old.utf8)), .tiny())
        var c = ModelConfig.tiny()
        c.architecture = .qwen3
        c.qkNorm = true
        c.ropeScaling = RopeScaling(kind: .llama3, factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                    originalMaxPositionEmbeddings: 8192)
        XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(c)), c)
    }
}
