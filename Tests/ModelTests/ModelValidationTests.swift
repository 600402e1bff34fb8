import Foundation
import XCTest
@testable import Model

/// Bad model files get a clear error before anything is used or allocated: GGUF header values
/// (issue 10 #3), the header against the tensor table (#4), the context length (#8), non-finite
/// weights and invalid UTF-8 (#9). The files are tiny Llama models written here.
final class ModelValidationTests: XCTestCase {
    typealias S = GGUFTestSupport

    /// A tiny random store: d=32, 2 blocks, 4 heads (head size 8), 2 KV heads, vocab 61.
    static func store(seed: UInt64 = 7) -> ParameterStore {
        let p = ParameterStore(config: .tiny())
        p.randomize(seed: seed)
        return p
    }

    /// `llama.*` metadata for `c` (head size dim/heads) with context length `context`.
    static func metadata(_ c: ModelConfig, context: Int = 64) -> [(String, GGUFValue)] {
        [("general.architecture", .string("llama")),
         ("llama.embedding_length", .uint32(UInt32(c.dim))),
         ("llama.block_count", .uint32(UInt32(c.layers))),
         ("llama.feed_forward_length", .uint32(UInt32(c.ffnDim))),
         ("llama.attention.head_count", .uint32(UInt32(c.heads))),
         ("llama.attention.head_count_kv", .uint32(UInt32(c.kvHeads))),
         ("llama.attention.layer_norm_rms_epsilon", .float32(c.normEps)),
         ("llama.rope.freq_base", .float32(c.ropeBase)),
         ("llama.context_length", .uint32(UInt32(context)))]
    }

    /// Every tensor of `p` as F32 (GGUF shape: the row-major shape reversed).
    static func tensors(_ p: ParameterStore) -> [TinyGGUF.Tensor] {
        p.layout.views.map { v in
            var bytes = [UInt8]()
            for x in p[v.name] { TinyGGUF.put(x.bitPattern, &bytes) }
            return TinyGGUF.Tensor(name: v.name, shape: v.shape.reversed(), type: 0, data: bytes)
        }
    }

    /// Writes a GGUF of `p` with metadata edited by `set` (nil removes the key) and tensors by
    /// `edit`; returns its path.
    func gguf(_ p: ParameterStore, set: [String: GGUFValue?] = [:], context: Int = 64,
              edit: (inout [TinyGGUF.Tensor]) -> Void = { _ in }) throws -> String {
        var meta = Self.metadata(p.config, context: context)
        for (k, v) in set {
            meta.removeAll { $0.0 == k }
            if let v { meta.append((k, v)) }
        }
        var ts = Self.tensors(p)
        edit(&ts)
        let path = try S.tempDir(self) + "/m.gguf"
        try S.write(TinyGGUF(metadata: meta, tensors: ts).bytes(), to: path)
        return path
    }

    func assertLoadFails(_ path: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ParameterStore.load(gguf: GGUFFile(path: path)), file: file, line: line) { e in
            for f in fragments + [path] {
                XCTAssertTrue("\(e)".contains(f), "expected '\(f)' in: \(e)", file: file, line: line)
            }
        }
    }

    func testValidFileLoadsBitExactWithItsContextLength() throws {
        let p = Self.store()
        let path = try gguf(p, context: 48)
        let back = try ParameterStore.load(gguf: GGUFFile(path: path))
        XCTAssertEqual(back.config, p.config)
        XCTAssertEqual(back.contextLength, 48)
        for v in p.layout.views { XCTAssertEqual(Array(back[v.name]), Array(p[v.name]), v.name) }
    }

    /// #3: a zero head count used to divide by zero (SIGFPE) before any check; every header
    /// value is now checked before use and the error names the key and the value.
    func testEveryHeaderValueIsValidatedBeforeUse() throws {
        let p = Self.store()
        let cases: [([String: GGUFValue?], [String])] = [
            (["llama.attention.head_count": .uint32(0)], ["'llama.attention.head_count' is 0"]),
            (["llama.attention.head_count": .int32(-4)], ["'llama.attention.head_count' is -4"]),
            (["llama.attention.head_count": .uint32(1 << 30)], ["'llama.attention.head_count' is 1073741824", "at most"]),
            (["llama.attention.head_count_kv": .uint32(0)], ["'llama.attention.head_count_kv' is 0"]),
            (["llama.attention.head_count_kv": .uint32(3)], ["'llama.attention.head_count_kv' is 3", "divisor"]),
            (["llama.attention.head_count_kv": .uint32(8)], ["'llama.attention.head_count_kv' is 8", "divisor"]),
            (["llama.attention.head_count": .uint32(5), "llama.attention.head_count_kv": .uint32(5)],
             ["'llama.embedding_length' is 32", "multiple of"]),
            (["llama.attention.head_count": .uint32(32)], ["key_length", "even"]),
            (["llama.embedding_length": .uint32(0)], ["'llama.embedding_length' is 0"]),
            (["llama.embedding_length": .int64(-32)], ["'llama.embedding_length' is -32"]),
            (["llama.block_count": .uint32(0)], ["'llama.block_count' is 0"]),
            (["llama.feed_forward_length": .uint32(0)], ["'llama.feed_forward_length' is 0"]),
            (["llama.vocab_size": .uint32(0)], ["'llama.vocab_size' is 0"]),
            (["llama.context_length": .uint32(0)], ["'llama.context_length' is 0"]),
            (["llama.context_length": nil], ["'llama.context_length'"]),
            (["llama.rope.dimension_count": .uint32(4)], ["'llama.rope.dimension_count' is 4"]),
            (["llama.attention.key_length": .uint32(0)], ["'llama.attention.key_length' is 0"]),
            (["llama.attention.value_length": .uint32(16)], ["'llama.attention.value_length' is 16"]),
            (["llama.attention.layer_norm_rms_epsilon": .float32(0)], ["layer_norm_rms_epsilon' is 0"]),
            (["llama.attention.layer_norm_rms_epsilon": .float32(-0.5)], ["layer_norm_rms_epsilon' is -0.5"]),
            (["llama.attention.layer_norm_rms_epsilon": .float32(.nan)], ["layer_norm_rms_epsilon' is nan"]),
            (["llama.rope.freq_base": .float32(.infinity)], ["'llama.rope.freq_base' is inf"]),
            (["llama.rope.freq_base": .float32(0.5)], ["'llama.rope.freq_base' is 0.5"]),
        ]
        for (set, fragments) in cases {
            assertLoadFails(try gguf(p, set: set), fragments)
        }
    }

    /// #4: a smaller block_count used to drop the extra blocks silently; the extra `blk.N`
    /// tensors are now an error naming the count and the tensor.
    func testBlockCountBelowTheBlocksPresentIsAnError() throws {
        let path = try gguf(Self.store(), set: ["llama.block_count": .uint32(1)])
        assertLoadFails(path, ["llama.block_count is 1", "tensors for 2 layers", "'blk.1.attn_norm.weight'"])
    }

    /// #4: a larger block_count (100000; 10⁹) is found by the header check, which runs before
    /// any ParameterStore exists (ModelConfig(gguf:) allocates nothing that grows with it).
    func testAbsurdBlockCountFailsInTheCheckBeforeAllocation() throws {
        let p = Self.store()
        let big = try GGUFFile(path: try gguf(p, set: ["llama.block_count": .uint32(100_000)]))
        XCTAssertThrowsError(try ModelConfig(gguf: big)) { e in
            XCTAssertTrue("\(e)".contains("llama.block_count is 100000 but the file has tensors for 2 layers"), "\(e)")
            XCTAssertTrue("\(e)".contains("'blk.2.attn_norm.weight' is missing"), "\(e)")
        }
        let huge = try GGUFFile(path: try gguf(p, set: ["llama.block_count": .uint32(1_000_000_000)]))
        XCTAssertThrowsError(try ModelConfig(gguf: huge)) { e in
            XCTAssertTrue("\(e)".contains("layers = 1000000000 is absurd"), "\(e)")
        }
        // The table check alone, on the file's table (no store): it names the first missing block.
        let c = ModelConfig(dim: 32, layers: 100_000, heads: 4, kvHeads: 2, headDim: 8, ffnDim: 48, vocabSize: 61)
        let table = big.tensors.map { ($0.name, Array($0.shape.reversed())) }
        XCTAssertEqual(c.tensorTableProblem(table), .layerCount(declared: 100_000, present: 2, tensor: "blk.2.attn_norm.weight"))
        XCTAssertNil(p.config.tensorTableProblem(table))
    }

    /// #4: every expected tensor must be present with the header's shape, and no unknown
    /// `blk.*` tensor may be passed over.
    func testTensorTableMustMatchTheHeader() throws {
        let p = Self.store()
        assertLoadFails(try gguf(p) { $0.removeAll { $0.name == "blk.1.ffn_up.weight" } },
                        ["'blk.1.ffn_up.weight' is missing"])
        assertLoadFails(try gguf(p) { $0.removeAll { $0.name == "output_norm.weight" } },
                        ["'output_norm.weight' is missing"])
        // A missing middle block.
        assertLoadFails(try gguf(p, set: ["llama.block_count": .uint32(3)]) { ts in
            ts += ts.filter { $0.name.hasPrefix("blk.1.") }.map { var t = $0; t.name = "blk.2" + t.name.dropFirst(5); return t }
            ts.removeAll { $0.name == "blk.1.attn_q.weight" }
        }, ["'blk.1.attn_q.weight' is missing"])
        // The header says ffn 64, the tensors have 48 rows.
        assertLoadFails(try gguf(p, set: ["llama.feed_forward_length": .uint32(64)]),
                        ["'blk.0.ffn_gate.weight' has shape [48, 32], expected [64, 32]"])
        assertLoadFails(try gguf(p) { ts in
            ts.append(TinyGGUF.Tensor(name: "blk.0.attn_q.bias", shape: [32], type: 0, data: [UInt8](repeating: 0, count: 128)))
        }, ["'blk.0.attn_q.bias' is not a parameter"])
        // Tensors outside the blocks that a Llama does not use are passed over ...
        let extra = try gguf(p) { ts in
            ts.append(TinyGGUF.Tensor(name: "unused_extra.weight", shape: [4], type: 0, data: [UInt8](repeating: 0, count: 16)))
        }
        XCTAssertNoThrow(try ParameterStore.load(gguf: GGUFFile(path: extra)))
        // ... but not llama.cpp's rope_freqs.weight: it holds Llama 3.1's rope scaling, which
        // is read (HFFamilyTests), and checked: one factor per rotary pair, finite and positive.
        let zeros = try gguf(p) { ts in
            ts.append(TinyGGUF.Tensor(name: "rope_freqs.weight", shape: [4], type: 0, data: [UInt8](repeating: 0, count: 16)))
        }
        assertLoadFails(zeros, ["rope_freqs.weight holds a factor that is not a finite positive number"])
        let short = try gguf(p) { ts in
            ts.append(TinyGGUF.Tensor(name: "rope_freqs.weight", shape: [3], type: 0, data: [UInt8](repeating: 0, count: 12)))
        }
        assertLoadFails(short, ["rope_freqs.weight has shape [3]; expected 4 factors"])
    }

    /// #4 for Hugging Face directories: config.json against model.safetensors' header, checked
    /// by `validateHF` before the store is allocated.
    func testHFLayerCountIsCheckedAgainstTheSafetensorsHeader() throws {
        let p = Self.store()
        let dir = try S.tempDir(self)
        try p.saveHF(directory: dir)
        let good = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        func setLayers(_ n: Int) throws {
            try good.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": \(n)")
                .write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        }
        try setLayers(100_000)
        XCTAssertThrowsError(try ParameterStore.validateHF(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("num_hidden_layers is 100000 but the file has tensors for 2 layers"), "\(e)")
            XCTAssertTrue("\(e)".contains("'model.layers.2.input_layernorm.weight' is missing"), "\(e)")
        }
        XCTAssertThrowsError(try ParameterStore.loadHF(directory: dir))
        try setLayers(1)
        XCTAssertThrowsError(try ParameterStore.loadHF(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("num_hidden_layers is 1 but the file has tensors for 2 layers"), "\(e)")
            XCTAssertTrue("\(e)".contains("'model.layers.1."), "\(e)")
        }
        try setLayers(2)
        XCTAssertEqual(try ParameterStore.validateHF(directory: dir).model, p.config)
        XCTAssertEqual(try ParameterStore.loadHF(directory: dir).contextLength, 8192)
    }

    /// #3 for config.json: zero or inconsistent values are errors naming the key.
    func testHFConfigValuesAreValidated() throws {
        let p = Self.store()
        let dir = try S.tempDir(self)
        try p.saveHF(directory: dir)
        let good = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        let cases: [((String, String), String)] = [
            (("\"num_attention_heads\": 4", "\"num_attention_heads\": 0"), "num_attention_heads is 0"),
            (("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 0"), "num_key_value_heads is 0"),
            (("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"), "heads (4) must be a multiple of kvHeads (3)"),
            (("\"hidden_size\": 32", "\"hidden_size\": 0"), "hidden_size is 0"),
            (("\"max_position_embeddings\": 8192", "\"max_position_embeddings\": 0"), "max_position_embeddings is 0"),
            (("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 0"), "rms_norm_eps is 0"),
            (("\"rope_theta\": 10000.0", "\"rope_theta\": 1"), "rope_theta is 1"),
            (("\"vocab_size\": 61", "\"vocab_size\": 0"), "must be positive"),
        ]
        for ((from, to), expect) in cases {
            XCTAssertTrue(good.contains(from), "config.json has no \(from): \(good)")
            try good.replacingOccurrences(of: from, with: to).write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try ParameterStore.validateHF(directory: dir)) { e in
                XCTAssertTrue("\(e)".contains(expect) && "\(e)".contains(dir + "/config.json"), "\(expect): \(e)")
            }
        }
        // hidden_size not a multiple of the heads without head_dim.
        try good.replacingOccurrences(of: "\"head_dim\": 8,", with: "")
            .replacingOccurrences(of: "\"num_attention_heads\": 4", with: "\"num_attention_heads\": 6")
            .replacingOccurrences(of: "\"num_key_value_heads\": 2", with: "\"num_key_value_heads\": 3")
            .write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ParameterStore.validateHF(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("hidden_size 32 is not a multiple of num_attention_heads 6"), "\(e)")
        }
    }

    /// #9: NaN / ∞ weights are found as they are read; the error names the tensor.
    func testNonFiniteWeightsAreAnErrorNamingTheTensor() throws {
        let p = Self.store()
        p["blk.1.ffn_up.weight"][5] = .nan
        p["blk.1.ffn_up.weight"][9] = .nan
        assertLoadFails(try gguf(p), ["'blk.1.ffn_up.weight' has 2 non-finite values", "nan at element 5"])
        let q = Self.store()
        q["output_norm.weight"][3] = -.infinity
        let dir = try S.tempDir(self)
        try q.saveHF(directory: dir)
        XCTAssertThrowsError(try ParameterStore.loadHF(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("'model.norm.weight' has 1 non-finite value (first: -inf at element 3)"), "\(e)")
        }
    }

    /// #8: the context length comes from the file and bounds prompt + new tokens.
    func testContextLengthIsKeptAndChecked() throws {
        let m = Transformer(parameters: try ParameterStore.load(gguf: GGUFFile(path: try gguf(Self.store(), context: 4))))
        XCTAssertEqual(m.contextLength, 4)
        XCTAssertNoThrow(try m.checkContext(promptTokens: 3, newTokens: 1, what: "the prompt"))
        XCTAssertThrowsError(try m.checkContext(promptTokens: 3, newTokens: 2, what: "the prompt")) { e in
            XCTAssertEqual(e as? ContextLengthError, ContextLengthError(what: "the prompt", promptTokens: 3, newTokens: 2, contextLength: 4))
            XCTAssertTrue("\(e)".contains("more than the model's context length 4"), "\(e)")
        }
        // Saved as a Hugging Face directory, the context length is max_position_embeddings.
        let dir = try S.tempDir(self)
        try m.parameters.saveHF(directory: dir)
        XCTAssertEqual(try HFModelConfig(path: dir + "/config.json").hf.maxPositionEmbeddings, 4)
        XCTAssertEqual(try ParameterStore.loadHF(directory: dir).contextLength, 4)
        XCTAssertEqual(m.parameters.clone().contextLength, 4)
    }

    /// #9: the first invalid UTF-8 sequence's byte offset and the count of U+FFFD replacements.
    func testInvalidUTF8IsLocatedAndCounted() {
        XCTAssertNil(UTF8Validation.invalidSequences(Array("héllo ✓ 😀".utf8)))
        let bytes: [UInt8] = Array("abc".utf8) + [0xff] + Array("d".utf8) + [0xe2, 0x9c] + Array("e".utf8) + [0xc3]
        let r = UTF8Validation.invalidSequences(bytes)
        XCTAssertEqual(r?.firstOffset, 3)
        XCTAssertEqual(r?.count, String(decoding: bytes, as: UTF8.self).filter { $0 == "\u{FFFD}" }.count)
        XCTAssertEqual(r?.count, 3)
    }
}
