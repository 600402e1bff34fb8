/// Hugging Face conventions for Llama checkpoints: tensor names, the Q/K row permutation and
/// `config.json` for `LlamaForCausalLM`.
public enum HFLlama {
    // MARK: names

    private static let blockMap: [(gguf: String, hf: String)] = [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"),
        ("ffn_up.weight", "mlp.up_proj.weight"),
        ("ffn_down.weight", "mlp.down_proj.weight"),
        // The family options (Qwen2/Llama biases, Qwen3 per-head q/k norms).
        ("attn_q.bias", "self_attn.q_proj.bias"),
        ("attn_k.bias", "self_attn.k_proj.bias"),
        ("attn_v.bias", "self_attn.v_proj.bias"),
        ("attn_output.bias", "self_attn.o_proj.bias"),
        ("attn_q_norm.weight", "self_attn.q_norm.weight"),
        ("attn_k_norm.weight", "self_attn.k_norm.weight"),
        ("ffn_gate.bias", "mlp.gate_proj.bias"),
        ("ffn_up.bias", "mlp.up_proj.bias"),
        ("ffn_down.bias", "mlp.down_proj.bias"),
    ]
    private static let globalMap: [(gguf: String, hf: String)] = [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"), // only present when embeddings are not tied
    ]

    /// The Hugging Face name of a GGUF (llama.cpp) tensor name, or nil if it is not a Llama tensor.
    public static func hfName(fromGGUF name: String) -> String? {
        if let g = globalMap.first(where: { $0.gguf == name }) { return g.hf }
        guard let (layer, rest) = split(name, prefix: "blk."),
              let m = blockMap.first(where: { $0.gguf == rest }) else { return nil }
        return "model.layers.\(layer).\(m.hf)"
    }

    /// The GGUF name of a Hugging Face Llama tensor name, or nil.
    public static func ggufName(fromHF name: String) -> String? {
        if let g = globalMap.first(where: { $0.hf == name }) { return g.gguf }
        guard let (layer, rest) = split(name, prefix: "model.layers."),
              let m = blockMap.first(where: { $0.hf == rest }) else { return nil }
        return "blk.\(layer).\(m.gguf)"
    }

    /// "<prefix>N.rest" → (N, rest), N a plain decimal.
    private static func split(_ name: String, prefix: String) -> (Int, String)? {
        guard name.hasPrefix(prefix) else { return nil }
        let tail = name.dropFirst(prefix.count)
        guard let dot = tail.firstIndex(of: "."), dot > tail.startIndex else { return nil }
        let digits = tail[tail.startIndex..<dot]
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), digits.count < 10,
              digits == "0" || !digits.hasPrefix("0"), let n = Int(digits) else { return nil }
        return (n, String(tail[tail.index(after: dot)...]))
    }

    /// How a tensor's rows are permuted between the orders: by n_head (q weight and bias), by
    /// n_kv_head (k weight and bias), or as one head (the per-head q/k norm weights, length hd).
    public enum QKRole: Equatable, Sendable { case query, key, headNorm }

    /// Whether a GGUF tensor's rows are stored permuted, and by which head count.
    public static func qkRole(ggufName name: String) -> QKRole? {
        guard name.hasPrefix("blk.") else { return nil }
        if name.hasSuffix(".attn_q.weight") || name.hasSuffix(".attn_q.bias") { return .query }
        if name.hasSuffix(".attn_k.weight") || name.hasSuffix(".attn_k.bias") { return .key }
        if name.hasSuffix(".attn_q_norm.weight") || name.hasSuffix(".attn_k_norm.weight") { return .headNorm }
        return nil
    }

    // MARK: Q/K row permutation

    // llama.cpp's converter stores q_proj/k_proj rows interleaved so RoPE rotates adjacent pairs
    // (x[2i], x[2i+1]); Hugging Face rotates halves (x[i], x[i + head_dim/2]). HF → GGUF is
    //   w.reshape(n_head, 2, head_dim/2, in).swapaxes(1, 2).reshape(out, in)
    // i.e. GGUF row h·hd + 2i + j  =  HF row h·hd + j·hd/2 + i   (j ∈ {0, 1}, i < hd/2).

    /// HF (rotate-half) → GGUF (interleaved) rows of a row-major `[rows, cols]` weight.
    /// `heads` is n_head for q_proj, n_kv_head for k_proj. `src` and `dst` must not overlap.
    public static func permuteHFToGGUF(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>,
                                       rows: Int, cols: Int, heads: Int) {
        permute(src, dst, rows: rows, cols: cols, heads: heads, toGGUF: true)
    }

    /// GGUF (interleaved) → HF (rotate-half); the inverse of `permuteHFToGGUF`.
    public static func permuteGGUFToHF(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>,
                                       rows: Int, cols: Int, heads: Int) {
        permute(src, dst, rows: rows, cols: cols, heads: heads, toGGUF: false)
    }

    public static func permuteHFToGGUF(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        permuted(w, rows: rows, cols: cols, heads: heads, toGGUF: true)
    }

    public static func permuteGGUFToHF(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        permuted(w, rows: rows, cols: cols, heads: heads, toGGUF: false)
    }

    private static func permuted(_ w: [Float], rows: Int, cols: Int, heads: Int, toGGUF: Bool) -> [Float] {
        precondition(w.count == rows * cols, "weight has \(w.count) values, expected \(rows)×\(cols)")
        return [Float](unsafeUninitializedCapacity: w.count) { out, n in
            w.withUnsafeBufferPointer { src in
                if let s = src.baseAddress, let d = out.baseAddress {
                    permute(s, d, rows: rows, cols: cols, heads: heads, toGGUF: toGGUF)
                }
            }
            n = w.count
        }
    }

    private static func permute(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                rows: Int, cols: Int, heads: Int, toGGUF: Bool) {
        precondition(heads > 0 && rows % heads == 0, "\(rows) rows do not split into \(heads) heads")
        let hd = rows / heads
        precondition(hd % 2 == 0, "head dimension \(hd) is odd")
        let half = hd / 2
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let g = h * hd + 2 * i + j
                    let f = h * hd + j * half + i
                    let (from, to) = toGGUF ? (f, g) : (g, f)
                    (dst + to * cols).update(from: src + from * cols, count: cols)
                }
            }
        }
    }

    // MARK: whole tensors

    /// A GGUF tensor as Hugging Face stores it: the HF name, the PyTorch shape (the GGUF shape
    /// reversed: GGUF [in, out] → [out, in]) and the data with q/k rows in rotate-half order.
    /// `data` is in GGUF element order (as `GGUFFile.floats` returns it). Nil for unknown names.
    public static func hfTensor(ggufName: String, ggufShape: [Int], data: [Float],
                                numHeads: Int, numKVHeads: Int) -> (name: String, shape: [Int], data: [Float])? {
        guard let name = hfName(fromGGUF: ggufName) else { return nil }
        let shape = Array(ggufShape.reversed())
        switch qkRole(ggufName: ggufName) {
        case .query?:
            return (name, shape, permuteGGUFToHF(data, rows: shape[0], cols: data.count / shape[0], heads: numHeads))
        case .key?:
            return (name, shape, permuteGGUFToHF(data, rows: shape[0], cols: data.count / shape[0], heads: numKVHeads))
        case .headNorm?:
            return (name, shape, permuteGGUFToHF(data, rows: shape[0], cols: 1, heads: 1))
        case nil:
            return (name, shape, data)
        }
    }

    /// The inverse of `hfTensor`: a Hugging Face tensor (PyTorch shape) as GGUF names, orders and
    /// shapes it. Nil for unknown names.
    public static func ggufTensor(hfName: String, hfShape: [Int], data: [Float],
                                  numHeads: Int, numKVHeads: Int) -> (name: String, shape: [Int], data: [Float])? {
        guard let name = ggufName(fromHF: hfName) else { return nil }
        let shape = Array(hfShape.reversed())
        switch qkRole(ggufName: name) {
        case .query?:
            return (name, shape, permuteHFToGGUF(data, rows: hfShape[0], cols: data.count / hfShape[0], heads: numHeads))
        case .key?:
            return (name, shape, permuteHFToGGUF(data, rows: hfShape[0], cols: data.count / hfShape[0], heads: numKVHeads))
        case .headNorm?:
            return (name, shape, permuteHFToGGUF(data, rows: hfShape[0], cols: 1, heads: 1))
        case nil:
            return (name, shape, data)
        }
    }

    // MARK: config.json

    /// The values of a Llama `config.json`.
    public struct Config: Equatable, Sendable {
        public var hiddenSize: Int
        public var intermediateSize: Int
        public var numAttentionHeads: Int
        public var numKeyValueHeads: Int
        public var numHiddenLayers: Int
        public var rmsNormEps: Double
        public var ropeTheta: Double
        public var vocabSize: Int
        public var maxPositionEmbeddings: Int
        public var bosTokenID: Int
        public var eosTokenID: Int
        public var tieWordEmbeddings: Bool
        public var headDim: Int { hiddenSize / numAttentionHeads }

        public init(hiddenSize: Int, intermediateSize: Int, numAttentionHeads: Int, numKeyValueHeads: Int,
                    numHiddenLayers: Int, rmsNormEps: Double, ropeTheta: Double, vocabSize: Int,
                    maxPositionEmbeddings: Int, bosTokenID: Int, eosTokenID: Int, tieWordEmbeddings: Bool = true) {
            self.hiddenSize = hiddenSize
            self.intermediateSize = intermediateSize
            self.numAttentionHeads = numAttentionHeads
            self.numKeyValueHeads = numKeyValueHeads
            self.numHiddenLayers = numHiddenLayers
            self.rmsNormEps = rmsNormEps
            self.ropeTheta = ropeTheta
            self.vocabSize = vocabSize
            self.maxPositionEmbeddings = maxPositionEmbeddings
            self.bosTokenID = bosTokenID
            self.eosTokenID = eosTokenID
            self.tieWordEmbeddings = tieWordEmbeddings
        }

        /// Reads the `<arch>.*` (`general.architecture`: llama, qwen2, qwen3) and tokenizer keys of
        /// a GGUF file. Float32 metadata (eps, theta) is converted through its shortest decimal
        /// form (1e-5, not 9.99999974e-6).
        public init(gguf f: GGUFFile) throws {
            func decimal(_ key: String) throws -> Double {
                if case let .float32(x)? = f.metadata[key] { return Double("\(x)") ?? Double(x) }
                return try f.double(key)
            }
            let a = (try? f.string("general.architecture")) ?? "llama"
            let vocab = try (try? f.int("\(a).vocab_size")) ?? f.stringArray("tokenizer.ggml.tokens").count
            self.init(hiddenSize: try f.int("\(a).embedding_length"),
                      intermediateSize: try f.int("\(a).feed_forward_length"),
                      numAttentionHeads: try f.int("\(a).attention.head_count"),
                      numKeyValueHeads: try f.int("\(a).attention.head_count_kv"),
                      numHiddenLayers: try f.int("\(a).block_count"),
                      rmsNormEps: try decimal("\(a).attention.layer_norm_rms_epsilon"),
                      ropeTheta: f.metadata["\(a).rope.freq_base"] == nil ? 10000 : try decimal("\(a).rope.freq_base"),
                      vocabSize: vocab,
                      maxPositionEmbeddings: try f.int("\(a).context_length"),
                      bosTokenID: try f.int("tokenizer.ggml.bos_token_id"),
                      eosTokenID: try f.int("tokenizer.ggml.eos_token_id"),
                      tieWordEmbeddings: f.tensors.first(where: { $0.name == "output.weight" }) == nil)
        }
    }

    /// `config.json` for `LlamaForCausalLM` (float32 weights), keys sorted, pretty-printed.
    public static func configJSON(_ c: Config) -> String {
        let fields: [(String, String)] = [
            ("architectures", "[\"LlamaForCausalLM\"]"),
            ("attention_bias", "false"),
            ("attention_dropout", "0.0"),
            ("bos_token_id", "\(c.bosTokenID)"),
            ("eos_token_id", "\(c.eosTokenID)"),
            ("head_dim", "\(c.headDim)"),
            ("hidden_act", "\"silu\""),
            ("hidden_size", "\(c.hiddenSize)"),
            ("initializer_range", "0.02"),
            ("intermediate_size", "\(c.intermediateSize)"),
            ("max_position_embeddings", "\(c.maxPositionEmbeddings)"),
            ("mlp_bias", "false"),
            ("model_type", "\"llama\""),
            ("num_attention_heads", "\(c.numAttentionHeads)"),
            ("num_hidden_layers", "\(c.numHiddenLayers)"),
            ("num_key_value_heads", "\(c.numKeyValueHeads)"),
            ("pretraining_tp", "1"),
            ("rms_norm_eps", jsonNumber(c.rmsNormEps)),
            ("rope_scaling", "null"),
            ("rope_theta", jsonNumber(c.ropeTheta)),
            ("tie_word_embeddings", c.tieWordEmbeddings ? "true" : "false"),
            ("torch_dtype", "\"float32\""),
            ("use_cache", "true"),
            ("vocab_size", "\(c.vocabSize)"),
        ]
        return "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }

    /// Shortest round-tripping decimal, always valid JSON (no "inf"/"nan": those become null).
    static func jsonNumber(_ x: Double) -> String {
        guard x.isFinite else { return "null" }
        return "\(x)"
    }
}
