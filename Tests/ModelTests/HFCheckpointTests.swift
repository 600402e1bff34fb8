import Foundation
import XCTest
@testable import Model

/// `ParameterStore.saveHF` / `loadHF` / `ModelSource`: bit-exact round trips, HF layout on disk
/// (checked by hand and by numpy against the GGUF), and the errors.
final class HFCheckpointTests: XCTestCase {
    typealias S = GGUFTestSupport

    static func bitEqual(_ a: ParameterStore, _ b: ParameterStore) -> Bool {
        a.layout == b.layout && memcmp(a.pointer, b.pointer, 4 * a.count) == 0
    }

    func testRandomStoreRoundTripIsBitExact() throws {
        let dir = try S.tempDir(self)
        let configs: [ModelConfig] = [
            .tiny(),
            .tiny(dim: 24, layers: 3, heads: 6, kvHeads: 3, ffnDim: 40, vocabSize: 37, ropeBase: 500000, tiedEmbeddings: false),
            // head_dim ≠ hidden/heads, odd eps
            ModelConfig(dim: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 6, ffnDim: 20, vocabSize: 11,
                        ropeBase: 12345.678, normEps: 3.3e-6, tiedEmbeddings: true),
            // The families: their biases, q/k norms (permuted like q/k rows) and rope scaling.
            ModelConfig(dim: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 4, ffnDim: 20, vocabSize: 11,
                        tiedEmbeddings: true, architecture: .qwen2, qkvBias: true),
            ModelConfig(dim: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, ffnDim: 20, vocabSize: 11,
                        tiedEmbeddings: false, architecture: .qwen3, qkvBias: true, outputBias: true, qkNorm: true),
            ModelConfig(dim: 16, layers: 1, heads: 2, kvHeads: 2, headDim: 10, ffnDim: 20, vocabSize: 11,
                        ropeBase: 500000, tiedEmbeddings: false, architecture: .llama, qkvBias: true, outputBias: true,
                        mlpBias: true, ropeScaling: RopeScaling(kind: .llama3, factor: 32, lowFreqFactor: 1,
                                                                highFreqFactor: 4, originalMaxPositionEmbeddings: 8192)),
            ModelConfig(dim: 16, layers: 1, heads: 2, kvHeads: 1, headDim: 8, ffnDim: 20, vocabSize: 11,
                        architecture: .mistral, ropeScaling: RopeScaling(kind: .linear, factor: 2.5)),
        ]
        for (i, c) in configs.enumerated() {
            let p = ParameterStore(config: c)
            p.randomize(seed: UInt64(7 + i), std: 0.7)
            // Awkward bit patterns must survive too: subnormals, -0, huge values.
            p.pointer[p.layout.views[1].offset] = -0.0
            p.pointer[p.layout.views[2].offset] = Float.leastNonzeroMagnitude
            p.pointer[p.layout.views[3].offset + 1] = -Float.greatestFiniteMagnitude
            let d = dir + "/m\(i)"
            let files = try p.saveHF(directory: d, extraMetadata: ["note": "x"])
            XCTAssertEqual(files.weights, d + "/model.safetensors")
            let back = try ParameterStore.loadHF(directory: d)
            XCTAssertEqual(back.config, c)
            XCTAssertTrue(Self.bitEqual(p, back), "config \(i)")
            let viaSource = try ModelSource.load(d)
            XCTAssertTrue(Self.bitEqual(p, viaSource))
            XCTAssertEqual(try ModelSource.kind(of: d), .huggingFace)

            // On disk: HF names, PyTorch shapes, q/k rows in rotate-half order, lm_head only untied.
            let f = try SafeTensorsFile(path: files.weights)
            XCTAssertEqual(f.metadata["format"], "pt")
            XCTAssertEqual(f.metadata["note"], "x")
            XCTAssertEqual(Set(f.tensors.map(\.name)), Set(p.layout.views.map { HFLlama.hfName(fromGGUF: $0.name)! }))
            XCTAssertEqual(f.tensors.contains { $0.name == "lm_head.weight" }, !c.tiedEmbeddings)
            XCTAssertTrue(f.tensors.allSatisfy { $0.dtype == "F32" })
            let q = Array(p["blk.0.attn_q.weight"]), k = Array(p["blk.0.attn_k.weight"])
            let hq = try f.floats("model.layers.0.self_attn.q_proj.weight")
            let hk = try f.floats("model.layers.0.self_attn.k_proj.weight")
            XCTAssertEqual(hq, HFLlama.permuteGGUFToHF(q, rows: c.qDim, cols: c.dim, heads: c.heads))
            XCTAssertEqual(hk, HFLlama.permuteGGUFToHF(k, rows: c.kvDim, cols: c.dim, heads: c.kvHeads))
            XCTAssertNotEqual(hq, q)
            XCTAssertEqual(try f.floats("model.layers.0.self_attn.v_proj.weight"), Array(p["blk.0.attn_v.weight"]))
            XCTAssertEqual(try f.tensor(named: "model.layers.0.self_attn.q_proj.weight").shape, [c.qDim, c.dim])

            let cfg = try HFModelConfig(path: files.config)
            XCTAssertEqual(cfg.model, c)
            XCTAssertEqual(cfg.hf.bosTokenID, 1)
            XCTAssertEqual(cfg.hf.eosTokenID, 2)
            XCTAssertEqual(cfg.hf.maxPositionEmbeddings, 8192)
        }
    }

    func testSaveReplacesAndLeavesNoTemporaries() throws {
        let dir = try S.tempDir(self)
        let p = ParameterStore(config: .tiny())
        p.randomize(seed: 1)
        try p.saveHF(directory: dir)
        p.randomize(seed: 2)
        try p.saveHF(directory: dir, bosTokenID: 5, eosTokenID: 6)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["config.json", "model.safetensors"])
        XCTAssertTrue(Self.bitEqual(p, try ParameterStore.loadHF(directory: dir)))
        XCTAssertEqual(try HFModelConfig(path: dir + "/config.json").hf.eosTokenID, 6)
    }

    func testErrorsNameTheFileAndProblem() throws {
        let dir = try S.tempDir(self)
        let c = ModelConfig.tiny()
        let p = ParameterStore(config: c)
        p.randomize(seed: 3)

        // Not there / not a model directory.
        XCTAssertThrowsError(try ModelSource.load(dir + "/nope")) { e in
            XCTAssertTrue("\(e)".contains(dir + "/nope") && "\(e)".contains("no such file"), "\(e)")
        }
        XCTAssertThrowsError(try ModelSource.load(dir)) { e in
            XCTAssertTrue("\(e)".contains("without config.json"), "\(e)")
        }

        // A tensor missing from model.safetensors.
        let d1 = dir + "/missing"
        try p.saveHF(directory: d1)
        var tensors: [(name: String, shape: [Int], data: [Float])] = []
        for v in p.layout.views where v.name != "blk.1.ffn_up.weight" {
            tensors.append((HFLlama.hfName(fromGGUF: v.name)!, v.shape, Array(p[v.name])))
        }
        try SafeTensors.write(tensors: tensors, to: d1 + "/model.safetensors")
        XCTAssertThrowsError(try ParameterStore.loadHF(directory: d1)) { e in
            XCTAssertEqual(e as? HFCheckpointError, .missingTensor(path: d1 + "/model.safetensors", tensor: "model.layers.1.mlp.up_proj.weight"))
        }
        // An extra (unknown) tensor, and a wrong shape.
        try SafeTensors.write(tensors: tensors + [("lm_head.weight", [c.vocabSize, c.dim], Array(p["token_embd.weight"])),
                                                  ("model.layers.1.mlp.up_proj.weight", [c.ffnDim, c.dim], Array(p["blk.1.ffn_up.weight"]))],
                              to: d1 + "/model.safetensors")
        XCTAssertThrowsError(try ParameterStore.loadHF(directory: d1)) { e in
            XCTAssertEqual(e as? HFCheckpointError, .unexpectedTensor(path: d1 + "/model.safetensors", tensor: "lm_head.weight"))
        }
        try SafeTensors.write(tensors: tensors + [("model.layers.1.mlp.up_proj.weight", [c.dim, c.ffnDim], Array(p["blk.1.ffn_up.weight"]))],
                              to: d1 + "/model.safetensors")
        XCTAssertThrowsError(try ParameterStore.loadHF(directory: d1)) { e in
            XCTAssertEqual(e as? HFCheckpointError, .shapeMismatch(path: d1 + "/model.safetensors", tensor: "model.layers.1.mlp.up_proj.weight",
                                                                   expected: [c.ffnDim, c.dim], found: [c.dim, c.ffnDim]))
        }

        // config.json problems.
        let d2 = dir + "/cfg"
        try p.saveHF(directory: d2)
        let good = try String(contentsOfFile: d2 + "/config.json", encoding: .utf8)
        for (edit, expect) in [(("\"num_attention_heads\": 4", "\"num_attention_heads\": 3"), "must be a multiple of kvHeads"),
                               (("\"hidden_size\": 32,", ""), "'hidden_size' is missing"),
                               (("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\""), "model_type is gpt2; supported: "),
                               (("\"vocab_size\": 61", "\"vocab_size\": 6.5"), "not an integer"),
                               (("{", "["), "not valid JSON")] {
            try good.replacingOccurrences(of: edit.0, with: edit.1).write(toFile: d2 + "/config.json", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try ParameterStore.loadHF(directory: d2)) { e in
                XCTAssertTrue("\(e)".contains(d2 + "/config.json") && "\(e)".contains(expect), "\(expect): \(e)")
            }
        }
        // A directory of another shape cannot fill this store.
        let other = ParameterStore(config: .tiny(layers: 3))
        try other.saveHF(directory: d2)
        XCTAssertThrowsError(try p.readHFWeights(directory: d2)) { e in
            XCTAssertTrue("\(e)".contains("does not match"), "\(e)")
        }
        try FileManager.default.removeItem(atPath: d2 + "/model.safetensors")
        XCTAssertThrowsError(try other.readHFWeights(directory: d2)) { e in
            XCTAssertTrue("\(e)".contains(d2 + "/model.safetensors") && "\(e)".contains("missing"), "\(e)")
        }
    }

    /// The real SmolLM2: GGUF → HF dir → back is bit-exact; and numpy, reading model.safetensors
    /// by hand, finds HF's layout: q_proj/k_proj are the rotate-half permutation of the GGUF
    /// rows, and HF's rotate-half RoPE on them gives the same attention scores as llama.cpp's
    /// interleaved RoPE on the GGUF weights.
    func testRealModelRoundTripAndNumpyLayoutCheck() throws {
        let model = try S.realModel()
        let dir = try S.tempDir(self)
        let store = try ModelSource.load(model)
        XCTAssertEqual(try ModelSource.kind(of: model), .gguf)
        XCTAssertEqual(store.config, ModelConfig.smolLM2_135M)
        try store.saveHF(directory: dir)
        let back = try ParameterStore.loadHF(directory: dir)
        XCTAssertEqual(back.config, store.config)
        XCTAssertTrue(Self.bitEqual(store, back))

        let script = #"""
        import sys, json, numpy as np, gguf
        d, model = sys.argv[1], sys.argv[2]
        raw = open(d + "/model.safetensors", "rb").read()
        n = int.from_bytes(raw[:8], "little")
        hdr = json.loads(raw[8:8 + n].decode("utf-8"))
        meta = hdr.pop("__metadata__")
        assert meta["format"] == "pt", meta
        def st(name):
            e = hdr[name]
            assert e["dtype"] == "F32", e
            b, en = e["data_offsets"]
            return np.frombuffer(raw, dtype="<f4", count=(en - b) // 4, offset=8 + n + b).reshape(e["shape"])
        cfg = json.load(open(d + "/config.json"))
        H, KV, D, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"], cfg["num_hidden_layers"]
        hd = cfg["head_dim"]
        assert (H, KV, D, L, hd) == (9, 3, 576, 30, 64), (H, KV, D, L, hd)
        assert cfg["tie_word_embeddings"] is True and cfg["model_type"] == "llama"
        names = {"model.embed_tokens.weight", "model.norm.weight"}
        for l in range(L):
            for s in ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                      "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]:
                names.add(f"model.layers.{l}.{s}.weight")
        assert set(hdr) == names, sorted(set(hdr) ^ names)[:5]
        r = gguf.GGUFReader(model)
        byname = {t.name: t for t in r.tensors}
        def gg(name):
            t = byname[name]
            if t.tensor_type == gguf.GGMLQuantizationType.F32:
                return np.asarray(t.data, dtype=np.float32)
            return gguf.quants.dequantize(t.data, t.tensor_type)
        def to_hf(w, heads):  # inverse of convert_hf_to_gguf's permute
            out, cols = w.shape
            return w.reshape(heads, out // heads // 2, 2, cols).swapaxes(1, 2).reshape(out, cols)
        theta = cfg["rope_theta"]
        inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
        def rope_hf(x, pos):  # x [heads, hd], transformers' rotate_half convention
            ang = np.concatenate([pos * inv, pos * inv])
            rot = np.concatenate([-x[:, hd // 2:], x[:, :hd // 2]], axis=1)
            return x * np.cos(ang) + rot * np.sin(ang)
        def rope_gguf(x, pos):  # llama.cpp LLAMA_ROPE_TYPE_NORM: adjacent pairs
            a, b = x[:, 0::2], x[:, 1::2]
            c, s = np.cos(pos * inv), np.sin(pos * inv)
            y = np.empty_like(x); y[:, 0::2] = a * c - b * s; y[:, 1::2] = a * s + b * c
            return y
        rng = np.random.default_rng(0)
        checked = 0
        for l in [0, 13, 29]:
            q, k = gg(f"blk.{l}.attn_q.weight"), gg(f"blk.{l}.attn_k.weight")
            hq, hk = st(f"model.layers.{l}.self_attn.q_proj.weight"), st(f"model.layers.{l}.self_attn.k_proj.weight")
            assert hq.shape == (H * hd, D) and hk.shape == (KV * hd, D)
            assert np.array_equal(hq, to_hf(q, H)) and np.array_equal(hk, to_hf(k, KV))
            assert not np.array_equal(hq, q) and not np.array_equal(hk, k)
            assert np.array_equal(st(f"model.layers.{l}.self_attn.v_proj.weight"), gg(f"blk.{l}.attn_v.weight"))
            assert np.array_equal(st(f"model.layers.{l}.mlp.down_proj.weight"), gg(f"blk.{l}.ffn_down.weight"))
            x1, x2 = rng.standard_normal(D), rng.standard_normal(D)
            for p1, p2 in [(5, 3), (700, 1)]:
                sh = np.einsum("hd,hd->h", rope_hf((hq.astype(np.float64) @ x1).reshape(H, hd), p1),
                               np.repeat(rope_hf((hk.astype(np.float64) @ x2).reshape(KV, hd), p2), H // KV, axis=0))
                sg = np.einsum("hd,hd->h", rope_gguf((q.astype(np.float64) @ x1).reshape(H, hd), p1),
                               np.repeat(rope_gguf((k.astype(np.float64) @ x2).reshape(KV, hd), p2), H // KV, axis=0))
                assert np.allclose(sh, sg, rtol=1e-9, atol=1e-9), (l, sh, sg)
                # and the un-permuted weights with HF RoPE would NOT match
                sw = np.einsum("hd,hd->h", rope_hf((q.astype(np.float64) @ x1).reshape(H, hd), p1),
                               np.repeat(rope_hf((k.astype(np.float64) @ x2).reshape(KV, hd), p2), H // KV, axis=0))
                assert not np.allclose(sw, sg, rtol=1e-3), l
            checked += 1
        assert np.array_equal(st("model.embed_tokens.weight"), gg("token_embd.weight"))
        assert np.array_equal(st("model.norm.weight"), gg("output_norm.weight"))
        print("ok", checked)
        """#
        let out = try S.python(script, [dir, model])
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), "ok 3")
    }
}
