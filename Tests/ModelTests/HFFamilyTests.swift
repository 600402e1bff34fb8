import Foundation
import XCTest
@testable import Model

/// Hugging Face directories of each family (llama with llama3 / linear rope scaling, biases and
/// head_dim ≠ hidden/heads; qwen2; qwen3; mistral), written by the independent NumPy reference
/// (Tests/reference/hf_family_reference.py: transformers' config keys in the transformers 4 and
/// 5 spellings, F32 / BF16 safetensors, single or sharded) and run by it from the published
/// modelling equations. Our loader + transformer must give the same log-probs at every position
/// (within 1e-4) and the same 32 greedy tokens with the KV-cached decode.
final class HFFamilyTests: XCTestCase {
    typealias S = GGUFTestSupport

    /// Runs the reference on `request` (JSON), returns its JSON answer.
    func reference(_ request: [String: Any], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let dir = try S.tempDir(self)
        let req = dir + "/request.json"
        try JSONSerialization.data(withJSONObject: request).write(to: URL(fileURLWithPath: req))
        let script = "import sys, runpy; sys.stdin = open(sys.argv[1]); p = sys.argv[2]; sys.argv = [p]; "
            + "runpy.run_path(p, run_name='__main__')"
        let out = try S.python(script, [req, S.packageRoot + "/Tests/reference/hf_family_reference.py"],
                               file: file, line: line)
        return try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
    }

    /// The base of every test model: 2 layers, hidden 48, 4 heads over 2 KV heads, vocab 97.
    func spec(_ family: String, _ extra: [String: Any] = [:]) throws -> [String: Any] {
        var m: [String: Any] = ["dir": try S.tempDir(self) + "/model", "family": family, "hidden": 48, "layers": 2,
                                "heads": 4, "kv_heads": 2, "ffn": 64, "vocab": 97, "tied": false, "seed": 7,
                                "max_positions": 128]
        for (k, v) in extra { m[k] = v }
        return m
    }

    /// Fixed token sequences: a short one and one of `longLength` tokens.
    func sequences(longLength: Int) -> [[Int]] {
        [[1, 5, 9, 20, 33, 2, 96, 40, 41, 7, 0, 13],
         (0..<longLength).map { ($0 * 37 + 11) % 97 }]
    }

    /// Writes the directory of `make`, loads it with `ModelSource.load`, checks the log-probs of
    /// the fixed sequences and 32 greedy tokens against the reference. Returns the store.
    @discardableResult
    func checkAgainstReference(_ make: [String: Any], longLength: Int = 40, file: StaticString = #filePath,
                               line: UInt = #line) throws -> ParameterStore {
        let dir = make["dir"] as! String
        let seqs = sequences(longLength: longLength)
        let prompt = [3, 4, 5, 60, 61]
        let ref = try reference(["make": make, "model": dir, "sequences": seqs,
                                 "greedy": ["prompt": prompt, "new_tokens": 32]], file: file, line: line)
        let store = try ModelSource.load(dir)
        let m = Transformer(parameters: store)
        let theirs = ref["logprobs"] as! [[Double]]
        for (i, ids) in seqs.enumerated() {
            let t = ids.map(Int32.init)
            let preds = (0..<(t.count - 1)).map { Prediction(row: $0, target: t[$0 + 1]) }
            let ours = m.logProbs(tokens: t, layout: .causal(length: t.count), predictions: preds)
            XCTAssertEqual(ours.count, theirs[i].count, file: file, line: line)
            var worst = 0.0, at = -1
            for (j, (a, b)) in zip(ours, theirs[i]).enumerated() where abs(Double(a) - b) > worst {
                worst = abs(Double(a) - b)
                at = j
            }
            XCTAssertLessThan(worst, 1e-4, "sequence \(i): max |Δ log-prob| = \(worst) at position \(at)",
                              file: file, line: line)
        }
        // Greedy: the reference's smallest top-2 gap must dwarf Float32 rounding for the
        // comparison to be meaningful (it is a property of the fixed weights, not of the CPU).
        let margin = ref["greedy_margin"] as! Double
        XCTAssertGreaterThan(margin, 1e-3, "the reference's greedy steps have a near tie; pick another seed",
                             file: file, line: line)
        let ours = m.generate(prompt: prompt.map(Int32.init), maxNewTokens: 32) { z in
            Int32(z.indices.max { z[$0] < z[$1] }!)
        }
        XCTAssertEqual(ours.map(Int.init), ref["greedy"] as! [Int], file: file, line: line)
        return store
    }

    static let llama3Rope: [String: Any] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 32]

    // MARK: llama

    /// Llama 3.x: llama3 rope scaling with a sequence (48) longer than its original context
    /// (32), head_dim 16 ≠ 48/4, untied head, transformers-4 spelling, F32.
    func testLlama3RopeScalingHeadDimUntiedF32() throws {
        let s = try checkAgainstReference(try spec("llama", ["head_dim": 16, "rope": Self.llama3Rope,
                                                             "rope_theta": 500000.0]), longLength: 48)
        XCTAssertEqual(s.config.ropeScaling?.kind, .llama3)
        XCTAssertEqual(s.config.headDim, 16)
        XCTAssertFalse(s.config.tiedEmbeddings)
    }

    /// The silent-wrong bug of issue 12: a transformers-5 config.json (`rope_parameters` with
    /// rope_theta 500000 and llama3 scaling, `dtype`) must be read in full — theta and scaling
    /// applied — not trained with theta 10000 and no scaling. BF16 weights, tied head, q/k/v/o
    /// and MLP biases.
    func testLlama3TransformersFiveSpellingBF16BiasesTied() throws {
        let s = try checkAgainstReference(try spec("llama", ["rope": Self.llama3Rope, "rope_theta": 500000.0,
                                                             "spelling": 5, "dtype": "BF16", "tied": true,
                                                             "attention_bias": true, "mlp_bias": true]),
                                          longLength: 48)
        XCTAssertEqual(s.config.ropeBase, 500000)
        XCTAssertEqual(s.config.ropeScaling, RopeScaling(kind: .llama3, factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                                         originalMaxPositionEmbeddings: 32))
        XCTAssertTrue(s.config.qkvBias && s.config.outputBias && s.config.mlpBias && s.config.tiedEmbeddings)
    }

    /// Linear rope scaling, sharded F32 (three shards and an index).
    func testLlamaLinearRopeSharded() throws {
        let s = try checkAgainstReference(try spec("llama", ["rope": ["rope_type": "linear", "factor": 4.0],
                                                             "shards": 3]))
        XCTAssertEqual(s.config.ropeScaling, RopeScaling(kind: .linear, factor: 4))
    }

    // MARK: qwen2

    /// Qwen2/Qwen2.5: q/k/v biases, tied head, F32.
    func testQwen2TiedF32() throws {
        let s = try checkAgainstReference(try spec("qwen2", ["tied": true]))
        XCTAssertEqual(s.config.architecture, .qwen2)
        XCTAssertTrue(s.config.qkvBias && !s.config.outputBias)
    }

    /// Qwen2 BF16, sharded, transformers-5 spelling, untied.
    func testQwen2BF16ShardedTransformersFive() throws {
        try checkAgainstReference(try spec("qwen2", ["dtype": "BF16", "shards": 2, "spelling": 5, "seed": 3]))
    }

    // MARK: qwen3

    /// Qwen3: per-head q/k RMSNorm before RoPE, explicit head_dim (16 ≠ 48/4), F32.
    func testQwen3QKNormHeadDimF32() throws {
        let s = try checkAgainstReference(try spec("qwen3", ["head_dim": 16]))
        XCTAssertTrue(s.config.qkNorm)
        XCTAssertEqual(s.config.headDim, 16)
    }

    /// Qwen3 BF16, sharded, tied, transformers-5 spelling.
    func testQwen3BF16ShardedTied() throws {
        try checkAgainstReference(try spec("qwen3", ["dtype": "BF16", "shards": 2, "spelling": 5, "tied": true,
                                                     "seed": 11]))
    }

    /// F16 weights (the third safetensors dtype), qwen3 with attention_bias.
    func testQwen3F16AttentionBias() throws {
        let s = try checkAgainstReference(try spec("qwen3", ["dtype": "F16", "attention_bias": true, "seed": 5]))
        XCTAssertTrue(s.config.qkvBias && s.config.outputBias && s.config.qkNorm)
    }

    // MARK: mistral

    /// Mistral with no sliding window (null), explicit head_dim, F32.
    func testMistralF32() throws {
        let s = try checkAgainstReference(try spec("mistral", ["head_dim": 16]))
        XCTAssertEqual(s.config.architecture, .mistral)
        XCTAssertNil(s.slidingWindow)
        XCTAssertEqual(s.contextLength, 128)
    }

    /// A sliding window longer than every sequence used is the same network: accepted, and it
    /// bounds the context.
    func testMistralSlidingWindowLongerThanSequence() throws {
        let s = try checkAgainstReference(try spec("mistral", ["sliding_window": 100, "dtype": "BF16"]))
        XCTAssertEqual(s.slidingWindow, 100)
        XCTAssertEqual(s.contextLength, 100)
    }

    // MARK: config.json: both spellings, and refusals

    /// A minimal config.json of `family` with `extra` keys (nil values removed).
    func configJSON(_ family: String, _ extra: [String: Any?] = [:]) throws -> Data {
        var d: [String: Any] = ["model_type": family, "hidden_size": 32, "num_attention_heads": 4,
                                "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 48,
                                "vocab_size": 61, "hidden_act": "silu"]
        for (k, v) in extra { if let v { d[k] = v } else { d[k] = nil } }
        return try JSONSerialization.data(withJSONObject: d)
    }

    func assertRefused(_ json: Data, _ needles: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try HFModelConfig(json: json, path: "/x/config.json"), file: file, line: line) { e in
            let text = "\(e)"
            for n in needles { XCTAssertTrue(text.contains(n), "'\(n)' not in: \(text)", file: file, line: line) }
        }
    }

    /// transformers 5 writes `rope_parameters` {rope_type, rope_theta, factor, ...} and `dtype`
    /// instead of rope_theta / rope_scaling / torch_dtype: theta 500000 and the llama3 scaling
    /// must both be taken from it (before, it silently gave theta 10000 and no scaling).
    func testTransformersFiveRopeParametersAreReadInFull() throws {
        let params: [String: Any] = ["rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192]
        let c = try HFModelConfig(json: try configJSON("llama", ["rope_parameters": params, "dtype": "bfloat16"]),
                                  path: "/x/config.json")
        XCTAssertEqual(c.model.ropeBase, 500000)
        XCTAssertEqual(c.model.ropeScaling, RopeScaling(kind: .llama3, factor: 32, lowFreqFactor: 1, highFreqFactor: 4,
                                                        originalMaxPositionEmbeddings: 8192))
        XCTAssertEqual(c.dtype, "bfloat16")
        // The transformers-4 spelling of the same model reads the same.
        var v4 = params
        v4["rope_theta"] = nil
        let c4 = try HFModelConfig(json: try configJSON("llama", ["rope_theta": 500000.0, "rope_scaling": v4,
                                                                  "torch_dtype": "bfloat16"]), path: "/x/config.json")
        XCTAssertEqual(c4.model, c.model)
        // The frequencies are scaled: the lowest one by 1/32, the highest kept.
        let inv = c.model.ropeInverseFrequencies
        XCTAssertEqual(inv[0], 1, accuracy: 1e-12)
        XCTAssertEqual(inv.last!, Foundation.pow(500000, -2.0 * Double(inv.count - 1) / 8) / 32, accuracy: 1e-15)
        // "default" rope_parameters: theta only.
        let plain = try HFModelConfig(json: try configJSON("qwen2", ["rope_parameters": ["rope_type": "default",
                                                                                         "rope_theta": 1000000.0]]),
                                      path: "/x/config.json")
        XCTAssertEqual(plain.model.ropeBase, 1000000)
        XCTAssertNil(plain.model.ropeScaling)
        // The two spellings disagreeing is an error, not a guess.
        assertRefused(try configJSON("llama", ["rope_theta": 10000.0, "rope_parameters": params]),
                      ["rope_theta is 10000.0 but rope_parameters.rope_theta is 500000.0"])
    }

    func testFamiliesSetTheirOptions() throws {
        func parse(_ f: String, _ extra: [String: Any?] = [:]) throws -> ModelConfig {
            try HFModelConfig(json: try configJSON(f, extra), path: "/x/config.json").model
        }
        let q2 = try parse("qwen2")
        XCTAssertTrue(q2.qkvBias && !q2.outputBias && !q2.mlpBias && !q2.qkNorm && q2.architecture == .qwen2)
        let q3 = try parse("qwen3", ["head_dim": 16])
        XCTAssertTrue(q3.qkNorm && !q3.qkvBias && q3.headDim == 16 && q3.qDim == 64)
        let l = try parse("llama", ["attention_bias": true, "mlp_bias": true])
        XCTAssertTrue(l.qkvBias && l.outputBias && l.mlpBias && !l.qkNorm)
        let m = try parse("mistral", ["sliding_window": nil])
        XCTAssertEqual(m, try parse("llama", ["model_type": "mistral"]))
        XCTAssertFalse(m.tiedEmbeddings)   // transformers' default
        // Qwen's sliding_window only counts with use_sliding_window.
        let qw = try HFModelConfig(json: try configJSON("qwen2", ["sliding_window": 32, "use_sliding_window": false,
                                                                  "max_position_embeddings": 4096]), path: "/x/c.json")
        XCTAssertNil(qw.slidingWindow)
        XCTAssertEqual(qw.contextLength, 4096)
        let qs = try HFModelConfig(json: try configJSON("qwen2", ["sliding_window": 32, "use_sliding_window": true,
                                                                  "max_position_embeddings": 4096]), path: "/x/c.json")
        XCTAssertEqual(qs.slidingWindow, 32)
        XCTAssertEqual(qs.contextLength, 32)
        // eos lists (Llama 3) and generation_config.json are recorded.
        let e = try HFModelConfig(json: try configJSON("llama", ["eos_token_id": [128001, 128008, 128009],
                                                                 "bos_token_id": 128000]), path: "/x/c.json")
        XCTAssertEqual(e.eosTokenIDs, [128001, 128008, 128009])
        XCTAssertEqual(e.hf.bosTokenID, 128000)
    }

    func testGenerationConfigIsRead() throws {
        let dir = try S.tempDir(self)
        try configJSON("qwen2").write(to: URL(fileURLWithPath: dir + "/config.json"))
        XCTAssertNil(try HFModelConfig(path: dir + "/config.json").generation)
        try Data(#"{"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643, "do_sample": true}"#.utf8)
            .write(to: URL(fileURLWithPath: dir + "/generation_config.json"))
        XCTAssertEqual(try HFModelConfig(path: dir + "/config.json").generation,
                       HFGenerationConfig(bosTokenID: 151643, eosTokenIDs: [151645, 151643], padTokenID: 151643))
    }

    /// Whatever is not implemented is refused with the field and what is supported.
    func testUnsupportedConfigsAreRefused() throws {
        assertRefused(try configJSON("gemma2"), ["model_type is gemma2", "\"llama\", \"qwen2\", \"qwen3\", \"mistral\""])
        assertRefused(try configJSON("llama", ["rope_scaling": ["rope_type": "yarn", "factor": 4.0]]),
                      ["rope_scaling.rope_type is \"yarn\"", "supported: \"default\", \"linear\", \"llama3\""])
        assertRefused(try configJSON("llama", ["rope_parameters": ["rope_type": "dynamic", "rope_theta": 1e4,
                                                                   "factor": 2.0]]),
                      ["rope_parameters.rope_type is \"dynamic\""])
        assertRefused(try configJSON("llama", ["rope_scaling": ["type": "linear"]]),
                      ["rope_scaling.factor is missing"])
        assertRefused(try configJSON("llama", ["rope_scaling": ["rope_type": "llama3", "factor": 8.0,
                                                                "low_freq_factor": 1.0, "high_freq_factor": 4.0]]),
                      ["original_max_position_embeddings is missing"])
        assertRefused(try configJSON("qwen2", ["rope_parameters": ["rope_type": "default", "rope_theta": 1e6,
                                                                   "mrope_section": [16, 24, 24]]]),
                      ["rope_parameters.mrope_section is not supported"])
        assertRefused(try configJSON("llama", ["rope_parameters": ["full_attention": ["rope_type": "default"]]]),
                      ["rope_parameters.full_attention is not supported"])
        assertRefused(try configJSON("llama", ["rope_scaling": ["rope_type": "linear", "factor": 2.0,
                                                                "attention_factor": 0.5]]),
                      ["rope_scaling.attention_factor is 0.5; only 1 is supported"])
        assertRefused(try configJSON("mistral", ["hidden_act": "gelu"]), ["hidden_act is \"gelu\"", "\"silu\""])
        assertRefused(try configJSON("qwen2", ["partial_rotary_factor": 0.5]), ["partial_rotary_factor is 0.5"])
        assertRefused(try configJSON("llama", ["quantization_config": ["quant_method": "gptq"]]),
                      ["quantization_config"])
    }

    /// A sliding window shorter than the sequence is refused where the sequence is made, with
    /// the window named; a longer one is the same network (tested numerically above).
    func testSlidingWindowShorterThanSequenceIsRefused() throws {
        var make = try spec("mistral", ["sliding_window": 16])
        make["dir"] = try S.tempDir(self) + "/m"
        _ = try reference(["make": make])
        let store = try ModelSource.load(make["dir"] as! String)
        XCTAssertEqual(store.slidingWindow, 16)
        XCTAssertEqual(store.contextLength, 16)
        let m = Transformer(parameters: store)
        XCTAssertNoThrow(try m.checkContext(promptTokens: 10, newTokens: 6, what: "the prompt"))
        XCTAssertThrowsError(try m.checkContext(promptTokens: 10, newTokens: 7, what: "the prompt")) { e in
            XCTAssertTrue("\(e)".contains("sliding_window 16"), "\(e)")
        }
    }

    /// Tensors must match the config: an lm_head with tied embeddings, q/k/v biases a llama
    /// config does not declare, or a qwen2 directory without its biases are errors.
    func testTensorsThatDoNotMatchTheFamilyAreRefused() throws {
        func load(_ make: [String: Any], config edit: (inout [String: Any]) -> Void) throws -> Error? {
            _ = try reference(["make": make])
            let dir = make["dir"] as! String
            let path = dir + "/config.json"
            var d = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
            edit(&d)
            try JSONSerialization.data(withJSONObject: d).write(to: URL(fileURLWithPath: path))
            do { _ = try ModelSource.load(dir); return nil } catch { return error }
        }
        let tie = try load(try spec("qwen2", ["tied": false])) { $0["tie_word_embeddings"] = true }
        XCTAssertTrue("\(tie!)".contains("lm_head.weight"), "\(String(describing: tie))")
        let bias = try load(try spec("qwen2")) { $0["model_type"] = "llama" }
        XCTAssertTrue("\(bias!)".contains("self_attn.q_proj.bias"), "\(String(describing: bias))")
        let noBias = try load(try spec("mistral")) { $0["model_type"] = "qwen2" }
        XCTAssertTrue("\(noBias!)".contains("q_proj.bias' is missing"), "\(String(describing: noBias))")
    }

    /// model.safetensors.index.json must describe its shards exactly: each listed tensor in its
    /// shard, every shard tensor listed, shard names plain file names in the directory.
    func testShardIndexMustMatchTheShards() throws {
        let make = try spec("qwen2", ["shards": 2])
        _ = try reference(["make": make])
        let dir = make["dir"] as! String
        let indexPath = dir + "/model.safetensors.index.json"
        let original = try Data(contentsOf: URL(fileURLWithPath: indexPath))
        XCTAssertNoThrow(try ModelSource.load(dir))
        func check(_ edit: (inout [String: Any]) -> Void, _ needle: String, line: UInt = #line) throws {
            var d = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            var map = d["weight_map"] as! [String: Any]
            var wrapper: [String: Any] = ["map": map]
            edit(&wrapper)
            map = wrapper["map"] as! [String: Any]
            d["weight_map"] = map
            try JSONSerialization.data(withJSONObject: d).write(to: URL(fileURLWithPath: indexPath))
            XCTAssertThrowsError(try ModelSource.load(dir), line: line) { e in
                XCTAssertTrue("\(e)".contains(needle) && "\(e)".contains(indexPath), "\(e)", line: line)
            }
        }
        let moved = "model.layers.0.self_attn.q_proj.bias"
        try check({ w in
            var m = w["map"] as! [String: Any]
            m[moved] = (m[moved] as! String).contains("00001") ? "model-00002-of-00002.safetensors"
                : "model-00001-of-00002.safetensors"
            w["map"] = m
        }, "tensor '\(moved)' of")
        try check({ w in
            var m = w["map"] as! [String: Any]
            m[moved] = nil
            w["map"] = m
        }, "is not in weight_map")
        try check({ w in
            var m = w["map"] as! [String: Any]
            m["model.extra.weight"] = "../elsewhere.safetensors"
            w["map"] = m
        }, "expected a file name in the same directory")
    }

    // MARK: GGUF files of the families

    /// Converts a Hugging Face directory to GGUF the way llama.cpp's converter does, with the
    /// `gguf` package's own name map: llama q/k weights and biases permuted to the interleaved
    /// order, qwen2/qwen3 left in Hugging Face order (NEOX rope).
    static let hfToGGUF = """
        import json, sys, importlib.util
        import numpy as np, gguf
        src, out, ref = sys.argv[1], sys.argv[2], sys.argv[3]
        spec = importlib.util.spec_from_file_location("ref", ref); r = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(r)
        c = json.load(open(src + "/config.json")); t = c["model_type"]
        arch = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2, "qwen3": gguf.MODEL_ARCH.QWEN3}[t]
        H, KV, L = c["num_attention_heads"], c["num_key_value_heads"], c["num_hidden_layers"]
        hd = c.get("head_dim") or c["hidden_size"] // H
        w = gguf.GGUFWriter(out, t)
        w.add_block_count(L); w.add_context_length(c["max_position_embeddings"])
        w.add_embedding_length(c["hidden_size"]); w.add_feed_forward_length(c["intermediate_size"])
        w.add_head_count(H); w.add_head_count_kv(KV); w.add_key_length(hd); w.add_value_length(hd)
        w.add_layer_norm_rms_eps(c["rms_norm_eps"]); w.add_rope_freq_base(c.get("rope_theta", 10000.0))
        w.add_vocab_size(c["vocab_size"]); w.add_bos_token_id(1); w.add_eos_token_id(2)
        rs = c.get("rope_scaling") or {}
        if rs.get("rope_type") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR); w.add_rope_scaling_factor(rs["factor"])
        if rs.get("rope_type") == "llama3":
            # llama.cpp's converter: the divisor of each inverse frequency, computed in float32.
            base = np.float32(c.get("rope_theta", 10000.0))
            freqs = (np.float32(1.0) / base ** (np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd))).astype(np.float32)
            f, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
            factors = []
            for fr in freqs:
                wl = 2 * np.pi / fr
                if wl < old / hi: factors.append(1.0)
                elif wl > old / lo: factors.append(f)
                else:
                    sm = (old / wl - lo) / (hi - lo)
                    factors.append(1 / ((1 - sm) / f + sm))
            w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
        def permute(a, n_head, n_kv):
            n = n_kv if n_kv != n_head else n_head
            return a.reshape(n, 2, a.shape[0] // n // 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)
        names = gguf.get_tensor_name_map(arch, L)
        for name, a in r.read_weights(src).items():
            a = a.astype(np.float32)
            if t == "llama" and (name.endswith("q_proj.weight") or name.endswith("q_proj.bias")): a = permute(a, H, H)
            if t == "llama" and (name.endswith("k_proj.weight") or name.endswith("k_proj.bias")): a = permute(a, H, KV)
            w.add_tensor(names.get_name(name, try_suffixes=(".weight", ".bias")), np.ascontiguousarray(a))
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
        """

    /// GGUF files with general.architecture qwen2 / qwen3 / llama (with attention and MLP
    /// biases, linear rope scaling) give exactly the parameters of the Hugging Face directory they were converted
    /// from (which match the reference above): names, Qwen's NEOX q/k order permuted at load,
    /// biases and q/k norms.
    func testGGUFOfEachFamilyEqualsItsHuggingFaceDirectory() throws {
        let cases: [[String: Any]] = [
            try spec("qwen2", ["tied": true]),
            try spec("qwen3", ["head_dim": 16]),
            try spec("llama", ["attention_bias": true, "mlp_bias": true, "head_dim": 16,
                               "rope": ["rope_type": "linear", "factor": 4.0]]),
            // llama.cpp's rope_freqs.weight (Llama 3.1's scaling) read back as that llama3 scaling.
            try spec("llama", ["head_dim": 16, "rope": Self.llama3Rope]),
        ]
        for make in cases {
            _ = try reference(["make": make])
            let dir = make["dir"] as! String
            let gguf = dir + ".gguf"
            _ = try S.python(Self.hfToGGUF, [dir, gguf, S.packageRoot + "/Tests/reference/hf_family_reference.py"])
            let fromGGUF = try ModelSource.load(gguf)
            let fromHF = try ModelSource.load(dir)
            let family = make["family"] as! String
            XCTAssertEqual(fromGGUF.config, fromHF.config, family)
            XCTAssertEqual(fromGGUF.contextLength, fromHF.contextLength, family)
            XCTAssertTrue(HFCheckpointTests.bitEqual(fromGGUF, fromHF), family)
            // The `<arch>.*` keys as export reads them.
            let hf = try HFLlama.Config(gguf: GGUFFile(path: gguf))
            XCTAssertEqual(hf.hiddenSize, 48, family)
            XCTAssertEqual(hf.maxPositionEmbeddings, 128, family)
        }
    }

    /// Our GGUF writer on each family: the file `export --format gguf` writes from a Hugging
    /// Face directory equals, tensor by tensor (F32) and in its architecture keys, the one the
    /// `gguf` package's converter makes of the same directory (`hfToGGUF`: llama.cpp's names,
    /// q/k layout per family, biases, q/k norms), and reads back bit-exactly as that directory.
    func testOurGGUFOfEachFamilyEqualsTheConverters() throws {
        let cases: [[String: Any]] = [
            try spec("qwen2", ["tied": true]),
            try spec("qwen3", ["head_dim": 16]),
            try spec("llama", ["attention_bias": true, "mlp_bias": true, "head_dim": 16,
                               "rope": ["rope_type": "linear", "factor": 4.0]]),
            try spec("llama", ["head_dim": 16, "rope": Self.llama3Rope]),
        ]
        let compare = """
            import json, sys
            import numpy as np
            from gguf import GGUFReader
            a, b = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
            def tensors(r):
                return {t.name: (t.tensor_type.name,
                                 np.asarray(t.data).reshape([int(d) for d in reversed(t.shape.tolist())]))
                        for t in r.tensors}
            ta, tb = tensors(a), tensors(b)
            bad = []
            if set(ta) != set(tb): bad.append("tensor names differ: " + str(sorted(set(ta) ^ set(tb))))
            for k in sorted(set(ta) & set(tb)):
                (ka, xa), (kb, xb) = ta[k], tb[k]
                # rope_freqs: the converter computes the frequencies in float32 (pow and division:
                # <= 3 half-ulps, 1.8e-7 relative), which a band divisor of this model amplifies
                # at most 2.6x (d(1 - 1/f) old/(wl (hi - lo)) at d = 3.3, old/wl = 1.6), plus the
                # final rounding (6e-8): < 6e-7 relative. We compute them in float64.
                tol = 6e-7 * np.abs(xb) if k == "rope_freqs.weight" else 0
                if ka != "F32" or kb != "F32" or xa.shape != xb.shape or not np.all(np.abs(xa - xb) <= tol): bad.append(k)
            fa = {k: v.contents() for k, v in a.fields.items()}
            fb = {k: v.contents() for k, v in b.fields.items()}
            arch = fb["general.architecture"]
            if fa.get("general.architecture") != arch: bad.append("architecture " + str(fa.get("general.architecture")))
            keys = [k for k in fb if k.startswith(arch + ".")]
            for k in keys:
                if k in (arch + ".attention.key_length", arch + ".attention.value_length") and k not in fa:
                    continue  # written only when head_dim differs from hidden/heads
                va, vb = fa.get(k), fb[k]
                same = va == vb if not isinstance(vb, float) else va is not None and abs(va - vb) <= 1e-6 * abs(vb)
                if not same: bad.append(f"{k}: ours {va!r}, converter {vb!r}")
            print(json.dumps({"bad": bad, "tensors": len(ta), "keys": len(keys)}))
            """
        for make in cases {
            _ = try reference(["make": make])
            let dir = make["dir"] as! String, family = make["family"] as! String
            let theirs = dir + ".converter.gguf", ours = dir + ".ours.gguf"
            _ = try S.python(Self.hfToGGUF, [dir, theirs, S.packageRoot + "/Tests/reference/hf_family_reference.py"])
            let store = try ModelSource.load(dir)
            try store.saveGGUF(path: ours, architecture: ParameterStore.exportArchitecture(store.config.architecture),
                               tokenizer: ExportTests.toyTokenizer(store.config.vocabSize), contextLength: 128)
            let out = try JSONSerialization.jsonObject(with: Data(try S.python(compare, [ours, theirs]).utf8)) as! [String: Any]
            XCTAssertEqual(out["bad"] as? [String], [], family)
            let ropeFreqs = store.config.ropeScaling.map { $0.kind != .linear } ?? false
            XCTAssertEqual(out["tensors"] as? Int, store.layout.views.count + (ropeFreqs ? 1 : 0), family)
            XCTAssertGreaterThanOrEqual(out["keys"] as? Int ?? 0, 9, family)
            let back = try ModelSource.load(ours)
            XCTAssertEqual(back.config, store.config, family)
            XCTAssertTrue(HFCheckpointTests.bitEqual(back, store), family)
        }
    }

    func testGGUFOfAnotherArchitectureIsRefused() throws {
        let dir = try S.tempDir(self)
        let path = dir + "/gemma.gguf"
        _ = try S.python("""
            import sys, numpy as np, gguf
            w = gguf.GGUFWriter(sys.argv[1], "gemma2"); w.add_block_count(1)
            w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
            w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
            """, [path])
        XCTAssertThrowsError(try ModelSource.load(path)) { e in
            XCTAssertTrue("\(e)".contains("general.architecture 'gemma2' (supported: llama, qwen2, qwen3)"), "\(e)")
        }
    }
}
