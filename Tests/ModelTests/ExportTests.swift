import Foundation
import XCTest
@testable import Model

/// Export (issue 12, "Out"): HF directories with tokenizer files, GGUF files (F32, F16, Q8_0),
/// each checked against independent readers: transformers' AutoTokenizer/AutoConfig, a NumPy
/// decoder written from transformers' equations (Tests/reference/hf_family_reference.py), the
/// `gguf` Python package (reader and quantizers), and our own reader.
final class ExportTests: XCTestCase {
    typealias S = GGUFTestSupport

    /// A random store whose norm weights are not all 1 (so a misplaced norm shows).
    static func randomStore(_ c: ModelConfig, seed: UInt64, std: Float = 0.5) -> ParameterStore {
        let p = ParameterStore(config: c)
        p.randomize(seed: seed, std: std)
        for v in p.layout.views where v.shape.count == 1 {
            for i in 0..<v.count { p.pointer[v.offset + i] = 1 + 0.3 * Float(sin(Double(i) * 1.7 + Double(seed))) }
        }
        return p
    }

    static func bitEqual(_ a: ParameterStore, _ b: ParameterStore) -> Bool {
        a.layout == b.layout && memcmp(a.pointer, b.pointer, 4 * a.count) == 0
    }

    /// A small tokenizer metadata block (a byte-level vocabulary of `n` tokens, no merges).
    static func toyTokenizer(_ n: Int) -> [(key: String, value: GGUFValue)] {
        [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("smollm")),
         ("tokenizer.ggml.tokens", .array((0..<n).map { .string("t\($0)") })),
         ("tokenizer.ggml.token_type", .array((0..<n).map { _ in .int32(1) })),
         ("tokenizer.ggml.merges", .array([])),
         ("tokenizer.ggml.bos_token_id", .uint32(1)), ("tokenizer.ggml.eos_token_id", .uint32(2))]
    }

    static let configs: [ModelConfig] = [
        .tiny(dim: 64, layers: 2, heads: 4, kvHeads: 2, ffnDim: 96, vocabSize: 67),
        .tiny(dim: 32, layers: 3, heads: 4, kvHeads: 1, ffnDim: 64, vocabSize: 45, ropeBase: 500000, tiedEmbeddings: false),
        // head_dim ≠ hidden/heads (key_length/value_length written), odd eps
        ModelConfig(dim: 32, layers: 1, heads: 2, kvHeads: 1, headDim: 24, ffnDim: 40, vocabSize: 33,
                    ropeBase: 12345.5, normEps: 3.3e-6, tiedEmbeddings: true),
    ]

    // MARK: GGUF, F32

    /// Store → our GGUF (F32) → our reader: bit-identical tensors, the same config and context
    /// length, identical log-probs; metadata as gguf-py names it.
    func testGGUFF32RoundTripIsBitExactWithIdenticalLogProbs() throws {
        let dir = try S.tempDir(self)
        for (i, c) in Self.configs.enumerated() {
            let p = Self.randomStore(c, seed: UInt64(11 + i))
            p.contextLength = 4096 + i
            let path = dir + "/m\(i).gguf"
            try p.saveGGUF(path: path, tokenizer: Self.toyTokenizer(c.vocabSize), name: "toy \(i)")
            let g = try GGUFFile(path: path)
            XCTAssertEqual(g.version, 3)
            XCTAssertEqual(g.alignment, 32)
            XCTAssertEqual(g.dataOffset % 32, 0)
            XCTAssertTrue(g.tensors.allSatisfy { $0.offset % 32 == 0 && $0.type == .f32 })
            XCTAssertEqual(try g.string("general.architecture"), "llama")
            XCTAssertEqual(try g.string("general.name"), "toy \(i)")
            XCTAssertEqual(try g.int("llama.context_length"), 4096 + i)
            XCTAssertEqual(try g.int("llama.embedding_length"), c.dim)
            XCTAssertEqual(try g.int("llama.block_count"), c.layers)
            XCTAssertEqual(try g.int("llama.feed_forward_length"), c.ffnDim)
            XCTAssertEqual(try g.int("llama.attention.head_count"), c.heads)
            XCTAssertEqual(try g.int("llama.attention.head_count_kv"), c.kvHeads)
            XCTAssertEqual(try g.int("llama.rope.dimension_count"), c.headDim)
            XCTAssertEqual(g.metadata["llama.attention.layer_norm_rms_epsilon"], .float32(c.normEps))
            XCTAssertEqual(g.metadata["llama.rope.freq_base"], .float32(c.ropeBase))
            XCTAssertEqual(g.metadata["llama.attention.key_length"]?.int, c.headDim * c.heads == c.dim ? nil : c.headDim)
            XCTAssertEqual(try g.stringArray("tokenizer.ggml.tokens").count, c.vocabSize)

            let back = try ParameterStore.load(gguf: g)
            XCTAssertEqual(back.config, c)
            XCTAssertEqual(back.contextLength, 4096 + i)
            XCTAssertTrue(Self.bitEqual(p, back), "config \(i)")
            let ids: [Int32] = (0..<20).map { Int32(($0 * 7 + 3) % c.vocabSize) }
            let preds = (0..<19).map { Prediction(row: $0, target: ids[$0 + 1]) }
            let a = Transformer(parameters: p).logProbs(tokens: ids, layout: .causal(length: 20), predictions: preds)
            let b = Transformer(parameters: back).logProbs(tokens: ids, layout: .causal(length: 20), predictions: preds)
            XCTAssertEqual(a, b)
        }
    }

    // MARK: HF directory → GGUF, read by the gguf package

    /// An HF directory (saveHF + the SmolLM2 tokenizer files) → our GGUF via the same path
    /// `export --format gguf` takes → read back by gguf-py: every tensor equals the safetensors
    /// tensor after llama.cpp's q/k permutation (done here in NumPy from the converter's
    /// formula), the metadata equals config.json's values, the tokens equal tokenizer.json's
    /// vocabulary by id. Our reader gives back the same parameters and tokenizer.
    func testHFDirectoryToGGUFReadByGGUFPackageAndByUs() throws {
        let dir = try S.tempDir(self)
        let smol = try GGUFFile(path: try S.realModel())
        let c = ModelConfig.tiny(dim: 32, layers: 2, heads: 4, kvHeads: 2, ffnDim: 64, vocabSize: 49152, tiedEmbeddings: false)
        let p = Self.randomStore(c, seed: 5, std: 0.3)
        let hf = dir + "/hf"
        try p.saveHF(directory: hf, maxPositionEmbeddings: 2048, bosTokenID: 1, eosTokenID: 2)
        try BPETokenizer(gguf: smol).writeHuggingFaceFiles(directory: hf, contextLength: 2048)

        let store = try ParameterStore.loadHF(directory: hf)
        let tok = try XCTUnwrap(try TokenizerExport.ggufMetadata(source: hf, vocabSize: c.vocabSize))
        let path = dir + "/m.gguf"
        try store.saveGGUF(path: path, tokenizer: tok, contextLength: 2048)

        let back = try ParameterStore.load(gguf: GGUFFile(path: path))
        XCTAssertTrue(Self.bitEqual(p, back))
        let t0 = try BPETokenizer(gguf: smol), t1 = try BPETokenizer(ggufPath: path)
        let text = "def f(x):\n    return x ** 2  # 12345 <|im_start|>user ünïcödé\n"
        XCTAssertEqual(t0.encode(text, allowSpecial: true), t1.encode(text, allowSpecial: true))

        let script = """
        import json, struct, sys
        import numpy as np
        from gguf import GGUFReader
        hf, path = sys.argv[1], sys.argv[2]
        cfg = json.load(open(hf + "/config.json"))
        tj = json.load(open(hf + "/tokenizer.json"))
        with open(hf + "/model.safetensors", "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]; head = json.loads(f.read(n)); data = f.read()
        st = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"])
              for k, v in head.items() if k != "__metadata__"}
        def permute(w, n_head):  # llama.cpp convert_hf_to_gguf.py LlamaModel.permute
            return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
        names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                 "output.weight": "lm_head.weight"}
        block = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                 "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
                 "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
        r = GGUFReader(path)
        bad = []
        seen = set()
        for t in r.tensors:
            if t.name in names: h = names[t.name]
            else:
                _, l, kind, _ = t.name.split(".")
                h = f"model.layers.{l}.{block[kind]}.weight"
            seen.add(h)
            w = st[h]
            if ".attn_q." in t.name: w = permute(w, cfg["num_attention_heads"])
            if ".attn_k." in t.name: w = permute(w, cfg["num_key_value_heads"])
            got = np.asarray(t.data).reshape([int(d) for d in reversed(t.shape.tolist())])
            if t.tensor_type.name != "F32" or got.shape != w.shape or not np.array_equal(got, w):
                bad.append(t.name)
        if seen != set(st): bad.append("tensor sets differ: " + str(sorted(set(st) ^ seen)))
        f = {k: v.contents() for k, v in r.fields.items()}
        expect = {"general.architecture": "llama", "llama.block_count": cfg["num_hidden_layers"],
                  "llama.context_length": cfg["max_position_embeddings"], "llama.embedding_length": cfg["hidden_size"],
                  "llama.feed_forward_length": cfg["intermediate_size"],
                  "llama.attention.head_count": cfg["num_attention_heads"],
                  "llama.attention.head_count_kv": cfg["num_key_value_heads"],
                  "llama.rope.dimension_count": cfg["head_dim"], "llama.vocab_size": cfg["vocab_size"],
                  "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm",
                  "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
                  "tokenizer.ggml.padding_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
                  "tokenizer.ggml.add_bos_token": False}
        for k, v in expect.items():
            if f.get(k) != v: bad.append(f"{k} = {f.get(k)!r}, expected {v!r}")
        for k, v in [("llama.attention.layer_norm_rms_epsilon", cfg["rms_norm_eps"]), ("llama.rope.freq_base", cfg["rope_theta"])]:
            if abs(f[k] - v) > 1e-6 * v: bad.append(f"{k} = {f[k]}, expected {v}")
        vocab = sorted(tj["model"]["vocab"].items(), key=lambda kv: kv[1])
        if f["tokenizer.ggml.tokens"] != [t for t, _ in vocab]: bad.append("tokens differ from tokenizer.json")
        if f["tokenizer.ggml.merges"] != [" ".join(m) for m in tj["model"]["merges"]]: bad.append("merges differ")
        special = {a["id"] for a in tj["added_tokens"] if a["special"]}
        types = f["tokenizer.ggml.token_type"]
        if types != [3 if i in special else 1 for i in range(len(vocab))]: bad.append("token types differ")
        if f["tokenizer.chat_template"] != json.load(open(hf + "/tokenizer_config.json"))["chat_template"]:
            bad.append("chat template differs")
        print(json.dumps({"bad": bad, "tensors": len(r.tensors)}))
        """
        let out = try JSONSerialization.jsonObject(with: Data(try S.python(script, [hf, path]).utf8)) as! [String: Any]
        XCTAssertEqual(out["bad"] as? [String], [])
        XCTAssertEqual(out["tensors"] as? Int, p.layout.views.count)
    }

    // MARK: F16 and Q8_0

    /// F16 and Q8_0 files: our reader gives every value within the format's error, 1-D tensors
    /// exactly; the bytes equal what gguf-py's own quantizers make of the F32 values.
    ///
    /// Bounds (derived from the formats): F16 rounds to nearest, so |x − y| ≤ max(|x|·2⁻¹¹, 2⁻²⁵)
    /// (half an ulp; 2⁻²⁵ in the subnormal range). Q8_0 block of 32: d = max|x|/127,
    /// q = round(x/d) gives |x − q·d| ≤ d/2; d is stored as F16, |d − d₁₆| ≤ max(d·2⁻¹¹, 2⁻²⁵),
    /// and |q| ≤ 127, so |x − q·d₁₆| ≤ d/2 + 127·max(d·2⁻¹¹, 2⁻²⁵), plus Float32 rounding of
    /// x·(1/d) and of q·d₁₆ (a few ulps of max|x|).
    func testF16AndQ8_0WithinFormatErrorAndEqualToGGUFPackageQuantizers() throws {
        let dir = try S.tempDir(self)
        // dim 48: the ffn_down rows (64) are Q8_0 blocks, the others fall back to F16.
        for (ci, c) in [ModelConfig.tiny(dim: 64, layers: 2, heads: 4, kvHeads: 2, ffnDim: 96, vocabSize: 67),
                        ModelConfig.tiny(dim: 48, layers: 1, heads: 4, kvHeads: 2, ffnDim: 64, vocabSize: 31)].enumerated() {
            let p = Self.randomStore(c, seed: 21 + UInt64(ci), std: 0.05)
            // Awkward values: zeros (a zero block), a subnormal-range block, a large one.
            let e = p.layout.views[0]
            for i in 0..<32 { p.pointer[e.offset + i] = 0 }
            for i in 32..<64 { p.pointer[e.offset + i] = 3e-7 * Float(i - 48) }
            p.pointer[e.offset + 64] = 60000
            // Exact ties of x/d (d = 1): llama.cpp rounds them away from zero.
            for i in 96..<128 { p.pointer[e.offset + i] = i == 96 ? 127 : Float(i - 112) + 0.5 }
            let f32 = dir + "/f32-\(ci).gguf"
            try p.saveGGUF(path: f32, tokenizer: Self.toyTokenizer(c.vocabSize))
            for type in [GGUFOutputType.f16, .q8_0] {
                let path = dir + "/\(type.rawValue)-\(ci).gguf"
                try p.saveGGUF(path: path, type: type, tokenizer: Self.toyTokenizer(c.vocabSize))
                let g = try GGUFFile(path: path)
                XCTAssertEqual(try g.int("general.file_type"), type == .f16 ? 1 : 7)
                let back = try ParameterStore.load(gguf: g)
                for v in p.layout.views {
                    let info = try g.tensor(named: v.name)
                    let x = UnsafeBufferPointer(start: p.pointer + v.offset, count: v.count)
                    let y = UnsafeBufferPointer(start: back.pointer + v.offset, count: v.count)
                    if v.shape.count == 1 {
                        XCTAssertEqual(info.type, .f32, v.name)
                        XCTAssertTrue(memcmp(x.baseAddress!, y.baseAddress!, 4 * v.count) == 0, v.name)
                        continue
                    }
                    let expected: GGUFTensorType = type == .f16 || info.shape[0] % 32 != 0 ? .f16 : .q8_0
                    XCTAssertEqual(info.type, expected, v.name)
                    var worstRatio = 0.0
                    if expected == .f16 {
                        for (a, b) in zip(x, y) {
                            let bound = max(Double(abs(a)) * 0x1p-11, 0x1p-25)
                            worstRatio = max(worstRatio, Double(abs(a - b)) / bound)
                        }
                    } else {
                        for blk in 0..<(v.count / 32) {
                            let xs = x[(32 * blk)..<(32 * blk + 32)], ys = y[(32 * blk)..<(32 * blk + 32)]
                            let amax = Double(xs.map(abs).max()!), d = amax / 127
                            let bound = d / 2 + 127 * max(d * 0x1p-11, 0x1p-25) + 4 * amax * 0x1p-24
                            for (a, b) in zip(xs, ys) {
                                worstRatio = max(worstRatio, bound == 0 ? Double(abs(a - b)) * .infinity : Double(abs(a - b)) / bound)
                            }
                        }
                    }
                    XCTAssertLessThanOrEqual(worstRatio, 1, "\(v.name) \(expected): error / bound = \(worstRatio)")
                }
            }
            let script = """
            import json, sys
            import numpy as np
            from gguf import GGUFReader, GGMLQuantizationType
            from gguf.quants import quantize
            ref = {t.name: np.asarray(t.data) for t in GGUFReader(sys.argv[1]).tensors}
            bad = []
            for path in sys.argv[2:]:
                for t in GGUFReader(path).tensors:
                    x = ref[t.name].reshape([int(d) for d in reversed(t.shape.tolist())]).astype(np.float32)
                    if t.tensor_type == GGMLQuantizationType.Q8_0: want = quantize(x, GGMLQuantizationType.Q8_0)
                    elif t.tensor_type == GGMLQuantizationType.F16: want = x.astype(np.float16)
                    else: want = x
                    if np.asarray(t.data).tobytes() != want.tobytes(): bad.append(path + ":" + t.name + ":" + t.tensor_type.name)
            print(json.dumps(bad))
            """
            let bad = try S.python(script, [f32, dir + "/f16-\(ci).gguf", dir + "/q8_0-\(ci).gguf"])
            XCTAssertEqual(bad.trimmingCharacters(in: .whitespacesAndNewlines), "[]")
        }
    }

    /// `halfBits` is IEEE round-to-nearest-even (Swift's own Float16 conversion is the oracle)
    /// over every exponent, the ties, the subnormal range and overflow.
    func testHalfBitsRoundsToNearestEven() {
        var rng = InitRNG(seed: 3)
        var xs: [Float] = [0, -0, 1, -1, 65504, 65520, 65519.99, 1e-8, 2.98e-8, 2.9802322e-8, 5.96e-8, 6.1e-5,
                           .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for e in -30...17 {
            for _ in 0..<200 { xs.append(Float(rng.uniform() * 2 - 1) * Float(pow(2.0, Double(e)))) }
            // exact ties between two halves
            xs.append(Float(pow(2.0, Double(e))) * (1 + 0x1p-11))
            xs.append(Float(pow(2.0, Double(e))) * (1 + 3 * 0x1p-11))
        }
        for x in xs {
            XCTAssertEqual(GGUFWriter.halfBits(x), Float16(x).bitPattern, "\(x)")
        }
        XCTAssertTrue(GGUFDequant.halfToFloat(GGUFWriter.halfBits(.nan)).isNaN)
    }

    // MARK: HF directory out (BF16)

    /// `--dtype bf16`: BF16 tensors, each the nearest BF16 (ties to even) of the F32 value,
    /// config.json says bfloat16, and our loader reads it back to exactly those values.
    func testBF16ExportIsNearestAndLoadsBack() throws {
        let dir = try S.tempDir(self)
        let c = Self.configs[1]
        let p = Self.randomStore(c, seed: 8)
        try p.saveHF(directory: dir, dtype: .bf16)
        let f = try SafeTensorsFile(path: dir + "/model.safetensors")
        XCTAssertTrue(f.tensors.allSatisfy { $0.dtype == "BF16" })
        XCTAssertTrue(try String(contentsOfFile: dir + "/config.json", encoding: .utf8).contains("\"torch_dtype\": \"bfloat16\""))
        let back = try ParameterStore.loadHF(directory: dir)
        for i in 0..<p.count where p.layout.views.contains(where: { i >= $0.offset && i < $0.offset + $0.count }) {
            let x = p.pointer[i], y = back.pointer[i]
            // y is a BF16 value (low 16 bits zero) and no BF16 value is nearer to x.
            XCTAssertEqual(y.bitPattern & 0xffff, 0)
            let up = Float(bitPattern: y.bitPattern + 0x10000), down = Float(bitPattern: y.bitPattern &- 0x10000)
            XCTAssertLessThanOrEqual(abs(x - y), abs(x - up))
            XCTAssertLessThanOrEqual(abs(x - y), abs(x - down))
            if abs(x - y) == abs(x - up) || abs(x - y) == abs(x - down) { XCTAssertEqual((y.bitPattern >> 16) & 1, 0) }
        }
    }

    // MARK: SmolLM2: tokenizer files and logits through transformers and NumPy

    static func stdlibTexts() throws -> [String] {
        try ["fractions.py", "functools.py", "shlex.py", "statistics.py", "heapq.py", "string.py", "textwrap.py"]
            .map { try TokenizerFixture.readText(URL(fileURLWithPath: "/usr/lib/python3.11/\($0)")) }
    }

    static let specialTexts = [
        "<|im_start|>user\nhi<|im_end|>\n", "a<|im_end|>b<|im_end|>", "<<|im_start|>>", "<|im_start|><|im_start|>",
        "<jupyter_code>print(1)<jupyter_output>1<empty_output>", "  <|endoftext|>  ", "<filename>x<file_sep>",
        "<|im_start|", "<repo_name>x", "naïve café 東京 😀 1234567 don't", "",
    ]

    /// The SmolLM2 GGUF vocabulary → tokenizer.json etc. → transformers' AutoTokenizer: the ids
    /// equal ours (special tokens matched in text) on the stdlib sources and the special-token
    /// strings, decoding gives our text back, bos/eos/pad/unk and the chat template are SmolLM2's.
    func testSmolLM2TokenizerFilesLoadWithAutoTokenizerAndGiveOurIds() throws {
        let dir = try S.tempDir(self)
        let smol = try GGUFFile(path: try S.realModel())
        let ours = try BPETokenizer(gguf: smol)
        try ours.writeHuggingFaceFiles(directory: dir, contextLength: 8192)
        let texts = try Self.stdlibTexts() + Self.specialTexts
        let textsPath = dir + "/texts.json"
        try JSONSerialization.data(withJSONObject: texts).write(to: URL(fileURLWithPath: textsPath))
        let script = """
        import json, sys
        from transformers import AutoTokenizer
        t = AutoTokenizer.from_pretrained(sys.argv[1])
        texts = json.load(open(sys.argv[2]))
        enc = [t(x, add_special_tokens=True)["input_ids"] for x in texts]
        dec = [t.decode(ids) for ids in enc]
        chat = t.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True)
        print(json.dumps({"ids": enc, "decoded": dec, "chat": chat, "bos": t.bos_token, "eos": t.eos_token,
                          "pad": t.pad_token, "unk": t.unk_token, "max": t.model_max_length, "class": type(t).__name__}))
        """
        let raw = try S.python(script, [dir, textsPath])
        let out = try JSONSerialization.jsonObject(with: Data(raw.utf8)) as! [String: Any]
        let ids = out["ids"] as! [[Int]], decoded = out["decoded"] as! [String]
        for (i, text) in texts.enumerated() {
            let mine = ours.encode(text, allowSpecial: true).map(Int.init)
            XCTAssertTrue(mine == ids[i], "text \(i) \(String(reflecting: text.prefix(40))): \(firstDifference(mine, ids[i]))")
            XCTAssertEqual(decoded[i], try ours.decode(mine.map(Int32.init)), "text \(i)")
        }
        XCTAssertEqual(out["chat"] as? String, ChatML.prompt(messages: [("user", "What is 2+2?")], addGenerationPrompt: true))
        XCTAssertEqual(out["bos"] as? String, "<|im_start|>")
        XCTAssertEqual(out["eos"] as? String, "<|im_end|>")
        XCTAssertEqual(out["pad"] as? String, "<|im_end|>")
        XCTAssertEqual(out["unk"] as? String, "<|endoftext|>")
        XCTAssertEqual(out["max"] as? Int, 8192)
    }

    /// GGUF tokenizer → HF files → GGUF tokenizer metadata gives back SmolLM2's own metadata.
    func testTokenizerGGUFToHFToGGUFIsTheSame() throws {
        let dir = try S.tempDir(self)
        let smol = try GGUFFile(path: try S.realModel())
        try BPETokenizer(gguf: smol).writeHuggingFaceFiles(directory: dir, contextLength: 8192)
        try writeFileAtomically(dir + "/config.json", Array(HFModelConfig.json(model: .smolLM2_135M).utf8))
        let meta = try XCTUnwrap(try TokenizerExport.ggufMetadata(source: dir, vocabSize: 49152))
        let back = Dictionary(uniqueKeysWithValues: meta.map { ($0.key, $0.value) })
        for key in ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                    "tokenizer.chat_template", "tokenizer.ggml.add_bos_token"] {
            XCTAssertEqual(back[key], smol.metadata[key], key)
        }
        for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
                    "tokenizer.ggml.unknown_token_id"] {
            XCTAssertEqual(back[key]?.int, smol.metadata[key]?.int, key)
        }
        XCTAssertEqual(back["tokenizer.ggml.token_type"]?.array?.map(\.int), smol.metadata["tokenizer.ggml.token_type"]?.array?.map(\.int))
    }

    /// Llama-3-style and Qwen2-style tokenizer.json files, built with the `tokenizers` library from
    /// each family's published pre-tokenizer (Split regex + ByteLevel; NFC for Qwen; BOS template
    /// and ignore_merges for Llama 3) and trained on stdlib text → tokenizer.ggml.* (llama-bpe /
    /// qwen2, padded to the model's vocabulary with unused [PAD<i>] tokens, add_bos from the
    /// template, bos/eos ids) → a GGUF → tokenizer.json rebuilt from that GGUF: the library and
    /// AutoTokenizer give the original ids on the stdlib sources and special-token strings.
    func testLlama3AndQwen2TokenizersSurviveGGUFRoundTrip() throws {
        let dir = try S.tempDir(self)
        let build = """
        import json, sys
        from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, normalizers, processors, Regex
        kind, out = sys.argv[1], sys.argv[2]
        files = ["/usr/lib/python3.11/" + f for f in ("fractions.py", "shlex.py", "heapq.py", "string.py")]
        texts = [open(f, encoding="utf-8").read() for f in files]
        regex = {"llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
                 "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}[kind]
        specials = {"llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                    "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]}[kind]
        tok = Tokenizer(models.BPE())
        if kind == "qwen2": tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=900, special_tokens=specials, show_progress=False,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        if kind == "llama3":
            tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                              special_tokens=[("<|begin_of_text|>", 0)])])
        j = json.loads(tok.to_str())
        if kind == "llama3": j["model"]["ignore_merges"] = True
        json.dump(j, open(out + "/tokenizer.json", "w"))
        n = tok.get_vocab_size()
        if kind == "llama3":
            tc = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "tokenizer_class": "PreTrainedTokenizerFast"}
            cfg = {"model_type": "llama", "bos_token_id": 0, "eos_token_id": [2, 1], "vocab_size": n + 5}
        else:
            tc = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "tokenizer_class": "PreTrainedTokenizerFast"}
            cfg = {"model_type": "qwen2", "bos_token_id": 0, "eos_token_id": 2, "vocab_size": n + 5}
        json.dump(tc, open(out + "/tokenizer_config.json", "w"))
        json.dump(cfg, open(out + "/config.json", "w"))
        print(json.dumps({"n": n}))
        """
        let compare = """
        import json, sys
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer
        a, b = sys.argv[1], sys.argv[2]
        orig, rebuilt, auto = Tokenizer.from_file(a + "/tokenizer.json"), Tokenizer.from_file(b + "/tokenizer.json"), AutoTokenizer.from_pretrained(b)
        files = ["/usr/lib/python3.11/" + f for f in ("functools.py", "statistics.py", "textwrap.py")]
        texts = [open(f, encoding="utf-8").read() for f in files] + [
            "<|begin_of_text|>x<|eot_id|>", "<|im_start|>user\\nhi<|im_end|>\\n", "Ｆｕｌｌ width e\\u0301 café 12345 1,234.5", ""]
        bad = []
        for i, t in enumerate(texts):
            want = orig.encode(t, add_special_tokens=True).ids
            if rebuilt.encode(t, add_special_tokens=True).ids != want: bad.append(f"library {i}")
            if auto(t)["input_ids"] != want: bad.append(f"AutoTokenizer {i}")
            if orig.decode(want, skip_special_tokens=False) != rebuilt.decode(want, skip_special_tokens=False): bad.append(f"decode {i}")
        print(json.dumps(bad))
        """
        for (kind, pre, addBOS) in [("llama3", "llama-bpe", true), ("qwen2", "qwen2", false)] {
            let src = dir + "/" + kind, rebuilt = dir + "/" + kind + "-rebuilt"
            try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
            let built = try JSONSerialization.jsonObject(with: Data(try S.python(build, [kind, src]).utf8)) as! [String: Any]
            let n = try XCTUnwrap(built["n"] as? Int)
            let meta = try XCTUnwrap(try TokenizerExport.ggufMetadata(source: src, vocabSize: n + 5))
            let m = Dictionary(uniqueKeysWithValues: meta.map { ($0.key, $0.value) })
            XCTAssertEqual(m["tokenizer.ggml.pre"], .string(pre), kind)
            XCTAssertEqual(m["tokenizer.ggml.add_bos_token"], .bool(addBOS), kind)
            XCTAssertEqual(m["tokenizer.ggml.bos_token_id"]?.int, addBOS ? 0 : 0, kind) // config.json's when no bos_token
            XCTAssertEqual(m["tokenizer.ggml.eos_token_id"]?.int, 2, kind)
            XCTAssertEqual(m["tokenizer.ggml.padding_token_id"]?.int, kind == "qwen2" ? 0 : nil, kind)
            let tokens = try XCTUnwrap(m["tokenizer.ggml.tokens"]?.array)
            XCTAssertEqual(tokens.count, n + 5)
            XCTAssertEqual(tokens[n + 4], .string("[PAD\(n + 4)]"))
            let types = try XCTUnwrap(m["tokenizer.ggml.token_type"]?.array).map { $0.int! }
            XCTAssertEqual(Array(types.prefix(3)), [3, 3, 3])
            XCTAssertEqual(Array(types.suffix(5)), [5, 5, 5, 5, 5])

            let c = ModelConfig.tiny(dim: 32, layers: 1, heads: 4, kvHeads: 2, ffnDim: 32, vocabSize: n + 5)
            let gguf = dir + "/\(kind).gguf"
            try Self.randomStore(c, seed: 3).saveGGUF(path: gguf, tokenizer: meta, contextLength: 4096)
            try FileManager.default.createDirectory(atPath: rebuilt, withIntermediateDirectories: true)
            try BPETokenizer(ggufPath: gguf).writeHuggingFaceFiles(directory: rebuilt, contextLength: 4096)
            let bad = try S.python(compare, [src, rebuilt])
            XCTAssertEqual(bad.trimmingCharacters(in: .whitespacesAndNewlines), "[]", kind)
        }
    }

    /// A tiny random model with SmolLM2's vocabulary, exported as the CLI does from a GGUF source
    /// (weights + tokenizer files): the NumPy reference reading model.safetensors and config.json
    /// with Hugging Face's rotate-half RoPE gives our logits within 1e-4 at every position, on
    /// ids that transformers' AutoTokenizer produced from the exported tokenizer files (and that
    /// equal ours); AutoConfig reads config.json as a LlamaConfig of this shape.
    func testExportedHFDirectoryLogitsMatchNumPyReference() throws {
        let dir = try S.tempDir(self)
        let smol = try GGUFFile(path: try S.realModel())
        // head_dim 16 ≠ hidden/heads = 12: config.json's head_dim must be honoured.
        let c = ModelConfig(dim: 48, layers: 2, heads: 4, kvHeads: 2, headDim: 16, ffnDim: 80, vocabSize: 49152,
                            ropeBase: 100000, normEps: 1e-5, tiedEmbeddings: true)
        let p = Self.randomStore(c, seed: 31, std: 0.2)
        let gguf = dir + "/tiny.gguf"
        try p.saveGGUF(path: gguf, tokenizer: try BPETokenizer(gguf: smol).ggufMetadata(), contextLength: 8192)
        // What `ebft-dist export --model tiny.gguf --out hf` does.
        let src = try GGUFFile(path: gguf)
        let store = try ParameterStore.load(gguf: src)
        let hfc = try HFLlama.Config(gguf: src)
        let hf = dir + "/hf"
        try store.saveHF(directory: hf, maxPositionEmbeddings: hfc.maxPositionEmbeddings, bosTokenID: hfc.bosTokenID,
                         eosTokenID: hfc.eosTokenID)
        try TokenizerExport.write(try XCTUnwrap(try TokenizerExport.hfFiles(source: gguf, contextLength: 8192)), directory: hf)

        let texts = ["def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
                     "<|im_start|>user\nThe quick brown fox, 2024: ¿Qué pasa? 東京<|im_end|>\n"]
        let tokScript = """
        import json, sys
        from transformers import AutoTokenizer, AutoConfig
        t = AutoTokenizer.from_pretrained(sys.argv[1]); c = AutoConfig.from_pretrained(sys.argv[1])
        print(json.dumps({"ids": [t(x)["input_ids"] for x in json.loads(sys.argv[2])], "type": type(c).__name__,
                          "shape": [c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
                                    c.head_dim, c.intermediate_size, c.vocab_size], "tied": c.tie_word_embeddings}))
        """
        let textsJSON = String(decoding: try JSONSerialization.data(withJSONObject: texts), as: UTF8.self)
        let tokOut = try JSONSerialization.jsonObject(with: Data(try S.python(tokScript, [hf, textsJSON]).utf8)) as! [String: Any]
        XCTAssertEqual(tokOut["type"] as? String, "LlamaConfig")
        XCTAssertEqual(tokOut["shape"] as? [Int], [48, 2, 4, 2, 16, 80, 49152])
        XCTAssertEqual(tokOut["tied"] as? Bool, true)
        let seqs = (tokOut["ids"] as! [[Int]]).map { $0.map(Int32.init) }
        let tok = try BPETokenizer(gguf: smol)
        XCTAssertEqual(seqs, texts.map { tok.encode($0, allowSpecial: true) })

        let (worst, worstLogProb, scale, _) = try Self.compareWithReference(store: store, hf: hf, sequences: seqs, dir: dir)
        XCTAssertGreaterThan(scale, 1, "the logits should not be near zero for this test to mean anything")
        XCTAssertLessThan(worst, 1e-4, "max |Δ logit| = \(worst) (logits up to \(scale))")
        XCTAssertLessThan(worstLogProb, 1e-4, "max |Δ log-softmax| = \(worstLogProb)")
    }
}

extension ExportTests {
    /// Our logits of every position of `sequences` (causal) against the NumPy family reference
    /// run on the Hugging Face directory `hf`: the largest |Δ logit| and |Δ log-softmax|, the
    /// largest |logit| and the number of logits compared.
    static func compareWithReference(store: ParameterStore, hf: String, sequences seqs: [[Int32]],
                                     dir: String) throws -> (logit: Double, logProb: Double, scale: Double, count: Int) {
        let model = Transformer(parameters: store)
        var logits: [Float] = []
        for ids in seqs {
            logits += model.logits(tokens: ids, layout: .causal(length: ids.count), rows: Array(0..<ids.count))
        }
        let oursPath = dir + "/ours.f32"
        try logits.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: oursPath)) }
        let request = try JSONSerialization.data(withJSONObject: ["model": hf, "ours": oursPath,
                                                                  "sequences": seqs.map { $0.map(Int.init) }])
        let script = "import runpy, sys; sys.argv = ['ref']; runpy.run_path('\(S.packageRoot)/Tests/reference/hf_family_reference.py', run_name='__main__')"
        let out = try JSONSerialization.jsonObject(with: try PythonRun.run(script, input: request)) as! [String: Any]
        return (try XCTUnwrap(out["max_abs_logit_diff"] as? Double), try XCTUnwrap(out["max_abs_logprob_diff"] as? Double),
                Double(logits.map(abs).max()!), logits.count)
    }

    /// The real SmolLM2-135M (GGUF, dequantized to Float32) exported as the CLI does
    /// (`export --format hf`): the NumPy reference (float64, Hugging Face's rotate-half RoPE,
    /// reading only the exported model.safetensors and config.json) gives our logits within 1e-4
    /// at every position of a code and a chat text. A check of the export at the real size and
    /// depth (30 layers, 9 heads of 64, 3 KV heads), where the tiny model above checks the layout.
    func testRealSmolLM2ExportedToHFMatchesNumPyReference() throws {
        let dir = try S.tempDir(self)
        let path = try S.realModel()
        let src = try GGUFFile(path: path)
        let store = try ParameterStore.load(gguf: src)
        let hfc = try HFLlama.Config(gguf: src)
        let hf = dir + "/hf"
        try store.saveHF(directory: hf, maxPositionEmbeddings: hfc.maxPositionEmbeddings, bosTokenID: hfc.bosTokenID,
                         eosTokenID: hfc.eosTokenID)
        let tok = try BPETokenizer(gguf: src)
        let seqs = ["def mean(xs):\n    \"\"\"Arithmetic mean of a non-empty list.\"\"\"\n    return sum(xs) / len(xs)\n",
                    "<|im_start|>user\nTranslate to German: the weather is nice today.<|im_end|>\n<|im_start|>assistant\n"]
            .map { tok.encode($0, allowSpecial: true) }
        XCTAssertGreaterThan(seqs[0].count, 20)
        let (worst, worstLogProb, scale, count) = try Self.compareWithReference(store: store, hf: hf, sequences: seqs, dir: dir)
        XCTAssertGreaterThan(scale, 5, "real-model logits should be of order 10")
        XCTAssertLessThan(worst, 1e-4, "max |Δ logit| = \(worst) (logits up to \(scale))")
        XCTAssertLessThan(worstLogProb, 1e-4, "max |Δ log-softmax| = \(worstLogProb)")
        print("real SmolLM2 exported: max |Δ logit| = \(worst), max |Δ log-softmax| = \(worstLogProb) over "
              + "\(count) logits (max |logit| \(scale))")
    }
}

/// python3 -c SCRIPT with `input` on stdin; stdout (fails the test with stderr on error).
enum PythonRun {
    static func run(_ script: String, input: Data, file: StaticString = #filePath, line: UInt = #line) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        let inPipe = Pipe(), outPipe = Pipe()
        let errPath = NSTemporaryDirectory() + "ebft-py-\(getpid())-\(UUID().uuidString).err"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        p.standardInput = inPipe
        p.standardOutput = outPipe
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try p.run()
        inPipe.fileHandleForWriting.write(input)
        try inPipe.fileHandleForWriting.close()
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            XCTFail("python3 failed (\(p.terminationStatus)): \(err)", file: file, line: line)
            throw XCTSkip("python failed")
        }
        return out
    }
}
