import XCTest
import Evaluation
@testable import Model
@testable import Rollout
@testable import Trainer

/// Issue 10 #8 and #9 on the trainer's side: `model=random:…` keys, and the run's sequences
/// (strided chunks, RLVR and downstream budgets, evaluation prompts) against the model's
/// context length.
final class ModelContextTests: XCTestCase {
    /// #9: an unknown (or repeated) key used to be ignored; the error lists the valid keys.
    func testRandomModelSpecRejectsUnknownKeys() throws {
        XCTAssertThrowsError(try RunContext.randomModel("random:dim=32,layrs=3", vocab: 61)) { e in
            XCTAssertTrue("\(e)".contains("unknown key 'layrs'"), "\(e)")
            XCTAssertTrue("\(e)".contains("dim, layers, heads, kv-heads, ffn, seed, std, context"), "\(e)")
        }
        for (spec, expect) in [("random:dim=32,dim=16", "given twice"), ("random:std=abc", "std=abc"),
                               ("random:dim=30,heads=4", "not a multiple of heads"), ("random:layers", "key=value"),
                               ("random:context=0", "context=0")] {
            XCTAssertThrowsError(try RunContext.randomModel(spec, vocab: 61), spec) { e in
                XCTAssertTrue("\(e)".contains(expect), "\(spec): \(e)")
            }
        }
        let p = try RunContext.randomModel("random:dim=16,layers=1,heads=2,kv-heads=1,ffn=24,seed=3,std=0.1,context=48",
                                           vocab: 61)
        XCTAssertEqual(p.config, ModelConfig(dim: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 8, ffnDim: 24, vocabSize: 61))
        XCTAssertEqual(p.contextLength, 48)
        XCTAssertNil(try RunContext.randomModel("random:dim=16,heads=2", vocab: 61).contextLength)
    }

    /// The largest rotary position of the strided layout, from every index's position.
    func testStridedMaxPositionIsTheLargestPositionUsed() throws {
        for (P, c, G, s) in [(32, 8, 8, 8), (16, 4, 4, 2), (12, 1, 3, 2), (9, 2, 7, 1)] {
            let g = try StridedGeometry(P: P, c: c, G: G, s: s)
            XCTAssertEqual(g.maxPosition, (0..<g.fullLength).map(g.position(of:)).max(), "\(g)")
        }
    }

    /// #8: chunk-length past the model's context length (GGUF `context_length=4` used to change
    /// nothing) is a configuration error naming the field and both numbers; so are RLVR and
    /// downstream budgets that cannot fit.
    func testRunConfigIsCheckedAgainstTheContextLength() throws {
        let p = ParameterStore(config: .tiny())
        p.contextLength = 24
        var c = TrainConfig()
        c.chunkLength = 32
        c.contextLength = 8; c.generateLength = 8; c.stride = 8
        func check(_ c: TrainConfig) throws {
            let g = try StridedGeometry(P: c.chunkLength, c: c.contextLength, G: c.generateLength, s: c.stride)
            try RunContext.checkContext(config: c, geometry: g, model: p, name: "m.gguf")
        }
        XCTAssertThrowsError(try check(c)) { e in
            XCTAssertEqual(e as? ConfigError, .invalid(field: "chunk-length", reason: "chunk-length 32 needs rotary positions "
                                                       + "0…31, past the context length 24 of the model m.gguf"))
        }
        c.chunkLength = 24
        XCTAssertNoThrow(try check(c))
        c.method = "rlvr"; c.rlvrMaxNewTokens = 24
        XCTAssertThrowsError(try check(c)) { e in XCTAssertTrue("\(e)".contains("rlvr-max-new-tokens"), "\(e)") }
        c.rlvrMaxNewTokens = 23
        XCTAssertNoThrow(try check(c))
        c.evalDownEvery = 1; c.evalDownMaxNewTokens = 30
        XCTAssertThrowsError(try check(c)) { e in XCTAssertTrue("\(e)".contains("eval-down-max-new-tokens"), "\(e)") }
        p.contextLength = nil // unknown: not checked
        c.chunkLength = 4096; c.stride = 8; c.contextLength = 8; c.generateLength = 8
        XCTAssertNoThrow(try check(c))
    }

    /// #8: evaluation prompts plus the new-token budget must fit the context.
    func testDownstreamPromptsMustFitTheContext() throws {
        let tok = try BPETokenizer(gguf: GGUFFile(path: try ModelLocator.defaultGGUF()))
        let p = ParameterStore(config: .tiny(vocabSize: tok.vocabSize))
        p.randomize(seed: 2)
        p.contextLength = 12
        let m = Transformer(parameters: p)
        let pairs = [QAPair(question: "German: Guten Morgen.\nEnglish:", answer: " Good morning.", key: "a"),
                     QAPair(question: "German: Das ist ein ziemlich langer Satz mit vielen Wörtern.\nEnglish:", answer: " x", key: "b")]
        let long = tok.encode(pairs[1].question, allowSpecial: false).count
        XCTAssertGreaterThan(long + 2, 12)
        XCTAssertThrowsError(try Downstream.translations(model: m, tokenizer: tok, pairs: pairs, promptKeys: nil, maxNewTokens: 2,
                                                         temperature: 0, topP: 1, seed: 1)) { e in
            XCTAssertEqual(e as? ContextLengthError, ContextLengthError(what: "translation pair 1's prompt", promptTokens: long,
                                                                        newTokens: 2, contextLength: 12))
        }
        let short = tok.encode(pairs[0].question, allowSpecial: false).count
        XCTAssertEqual(try Downstream.translations(model: m, tokenizer: tok, pairs: [pairs[0]], promptKeys: nil,
                                                   maxNewTokens: 12 - short, temperature: 0, topP: 1, seed: 1).count, 1)
    }
}
