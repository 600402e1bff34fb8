import Foundation

// The `config.json` (and `generation_config.json`) of a Hugging Face model directory of the
// supported families, read in full or refused (`HFModelConfig`), and written for a `ModelConfig`.

extension HFLlama.Config {
    /// The `config.json` values for a `ModelConfig`. Float32 eps/theta are written through their
    /// shortest decimal form (1e-05, not 9.99999974e-06), which reads back to the same Float.
    public init(model c: ModelConfig, maxPositionEmbeddings: Int = 8192, bosTokenID: Int = 1, eosTokenID: Int = 2) {
        func decimal(_ x: Float) -> Double { Double("\(x)") ?? Double(x) }
        self.init(hiddenSize: c.dim, intermediateSize: c.ffnDim, numAttentionHeads: c.heads,
                  numKeyValueHeads: c.kvHeads, numHiddenLayers: c.layers, rmsNormEps: decimal(c.normEps),
                  ropeTheta: decimal(c.ropeBase), vocabSize: c.vocabSize,
                  maxPositionEmbeddings: maxPositionEmbeddings, bosTokenID: bosTokenID, eosTokenID: eosTokenID,
                  tieWordEmbeddings: c.tiedEmbeddings)
    }
}

/// The token ids of a `generation_config.json` (absent values nil / empty).
public struct HFGenerationConfig: Equatable, Sendable {
    public var bosTokenID: Int?
    /// `eos_token_id`, a number or a list in the file.
    public var eosTokenIDs: [Int]
    public var padTokenID: Int?

    public init(bosTokenID: Int? = nil, eosTokenIDs: [Int] = [], padTokenID: Int? = nil) {
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.padTokenID = padTokenID
    }

    /// Reads `path`; nil when the file does not exist.
    public init?(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path),
              let d = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw HFCheckpointError.badConfig(path: path, problem: "generation_config.json is not a JSON object")
        }
        let r = JSONFields(d, path: path)
        self.init(bosTokenID: try r.optionalInt("bos_token_id"), eosTokenIDs: try r.intList("eos_token_id"),
                  padTokenID: try r.optionalInt("pad_token_id"))
    }
}

/// Typed access to a parsed JSON object; errors name the file and the key.
struct JSONFields {
    let d: [String: Any]
    let path: String
    init(_ d: [String: Any], path: String) { self.d = d; self.path = path }

    func bad(_ s: String) -> HFCheckpointError { .badConfig(path: path, problem: s) }
    func present(_ key: String) -> Bool { d[key] != nil && !(d[key] is NSNull) }
    private func number(_ key: String) -> NSNumber? {
        guard let n = d[key] as? NSNumber, !isJSONBool(n) else { return nil }
        return n
    }
    static func integer(_ any: Any) -> Int? {
        guard let n = any as? NSNumber, !isJSONBool(n), n.doubleValue.rounded() == n.doubleValue,
              abs(n.doubleValue) < 9e15 else { return nil }
        return n.intValue
    }
    func int(_ key: String, default def: Int? = nil) throws -> Int {
        guard present(key) else {
            if let v = def { return v }
            throw bad("'\(key)' is missing")
        }
        guard let n = Self.integer(d[key]!) else { throw bad("'\(key)' is \(d[key]!), not an integer") }
        return n
    }
    func optionalInt(_ key: String) throws -> Int? { present(key) ? try int(key) : nil }
    func double(_ key: String, default def: Double? = nil) throws -> Double {
        guard present(key) else {
            if let v = def { return v }
            throw bad("'\(key)' is missing")
        }
        guard let n = number(key) else { throw bad("'\(key)' is \(d[key]!), not a number") }
        return n.doubleValue
    }
    func optionalDouble(_ key: String) throws -> Double? { present(key) ? try double(key) : nil }
    func bool(_ key: String, default def: Bool) throws -> Bool {
        guard present(key) else { return def }
        guard let n = d[key] as? NSNumber, isJSONBool(n) else { throw bad("'\(key)' is \(d[key]!), not true/false") }
        return n.boolValue
    }
    func string(_ key: String) throws -> String? {
        guard present(key) else { return nil }
        guard let s = d[key] as? String else { throw bad("'\(key)' is \(d[key]!), not a string") }
        return s
    }
    /// A number or a list of numbers (eos_token_id); [] when absent.
    func intList(_ key: String) throws -> [Int] {
        guard present(key) else { return [] }
        if let a = d[key] as? [Any] {
            return try a.map { guard let n = Self.integer($0) else { throw bad("'\(key)' holds \($0), not an integer") }; return n }
        }
        return [try int(key)]
    }
}

/// A parsed Hugging Face `config.json` of a supported family (`model_type` llama, qwen2, qwen3,
/// mistral), in the transformers 4 spelling (`rope_theta`, `rope_scaling`, `torch_dtype`) or
/// the transformers 5 one (`rope_parameters`, `dtype`). Whatever would change the network and
/// is not implemented is refused with the key and what is supported: another model_type or
/// hidden_act, a rope type other than default/linear/llama3, partial rotary embeddings,
/// quantized weights. A sliding window is recorded (`slidingWindow`): sequences longer than
/// it are refused where they are made (it becomes the context length).
public struct HFModelConfig: Equatable, Sendable {
    /// The shape of the model (what the flat parameter layout needs).
    public var model: ModelConfig
    /// The Llama-spelled values (token ids, context length).
    public var hf: HFLlama.Config
    /// The sliding attention window in effect (Mistral `sliding_window`; Qwen2/3 only with
    /// `use_sliding_window`), nil for full attention.
    public var slidingWindow: Int?
    /// `torch_dtype` (transformers 4) or `dtype` (transformers 5), e.g. "bfloat16".
    public var dtype: String?
    /// Every `eos_token_id` of config.json (a list in Llama 3's).
    public var eosTokenIDs: [Int]
    /// `generation_config.json` beside config.json, when present.
    public var generation: HFGenerationConfig?

    /// The `model_type` values this reader implements.
    public static let supportedModelTypes = ModelArchitecture.allCases.map(\.rawValue)

    /// Reads and validates `path` (a `config.json`), and `generation_config.json` beside it.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HFCheckpointError.notFound(path: path, reason: "cannot read config.json (missing or unreadable)")
        }
        try self.init(json: data, path: path)
        let dir = (path as NSString).deletingLastPathComponent
        generation = try HFGenerationConfig(path: (dir.isEmpty ? "." : dir) + "/generation_config.json")
    }

    /// Parses `config.json` text; `path` only names the file in errors.
    public init(json data: Data, path: String) throws {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data, options: []) } catch {
            throw HFCheckpointError.badConfig(path: path, problem: "not valid JSON (\(error.localizedDescription))")
        }
        guard let d = any as? [String: Any] else {
            throw HFCheckpointError.badConfig(path: path, problem: "the top level is not a JSON object")
        }
        let r = JSONFields(d, path: path)
        func bad(_ s: String) -> HFCheckpointError { r.bad(s) }
        let supported = Self.supportedModelTypes.map { "\"\($0)\"" }.joined(separator: ", ")
        let arch: ModelArchitecture
        if r.present("model_type") {
            guard let t = d["model_type"] as? String, let a = ModelArchitecture(rawValue: t) else {
                throw bad("model_type is \(d["model_type"]!); supported: \(supported)")
            }
            arch = a
        } else {
            arch = .llama
        }
        if let act = try r.string("hidden_act"), act != "silu" {
            throw bad("hidden_act is \"\(act)\"; only \"silu\" (SwiGLU) is supported")
        }
        if r.present("quantization_config") {
            throw bad("quantization_config is present; only unquantized F32/F16/BF16 weights are supported")
        }
        if let f = try r.optionalDouble("partial_rotary_factor"), f != 1 {
            throw bad("partial_rotary_factor is \(f); only 1 (rotary embedding of the whole head) is supported")
        }
        let hidden = try r.int("hidden_size"), heads = try r.int("num_attention_heads")
        guard hidden > 0 else { throw bad("hidden_size is \(hidden); expected a positive integer") }
        guard heads > 0 else { throw bad("num_attention_heads is \(heads); expected a positive integer") }
        let kv = try r.int("num_key_value_heads", default: heads)
        guard kv > 0 else { throw bad("num_key_value_heads is \(kv); expected a positive integer") }
        if !r.present("head_dim"), hidden % heads != 0 {
            throw bad("hidden_size \(hidden) is not a multiple of num_attention_heads \(heads) (and head_dim is absent)")
        }
        let headDim = try r.int("head_dim", default: hidden / heads)
        // transformers' default for every family here is untied.
        let tied = try r.bool("tie_word_embeddings", default: false)

        // Rotary embedding: transformers 4 has rope_theta + rope_scaling, 5 has rope_parameters
        // (rope_type, rope_theta, factor, ...); a file may carry both, then they must agree.
        var theta = try r.optionalDouble("rope_theta")
        var scalingKey = "rope_scaling"
        var scaling: [String: Any]? = nil
        for key in ["rope_scaling", "rope_parameters"] where r.present(key) {
            guard let o = d[key] as? [String: Any] else { throw bad("'\(key)' is \(d[key]!), not an object") }
            if key == "rope_parameters" {
                let p = JSONFields(o, path: path)
                if let t = try p.optionalDouble("rope_theta") {
                    if let t0 = theta, t0 != t {
                        throw bad("rope_theta is \(t0) but rope_parameters.rope_theta is \(t)")
                    }
                    theta = t
                }
                if let s = scaling, let t0 = s["rope_type"] ?? s["type"], let t1 = o["rope_type"] ?? o["type"],
                   "\(t0)" != "\(t1)" {
                    throw bad("rope_scaling type \(t0) and rope_parameters type \(t1) disagree")
                }
            }
            if scaling == nil { scaling = o; scalingKey = key }
        }
        var ropeScaling: RopeScaling? = nil
        if let o = scaling {
            let p = JSONFields(o, path: path)
            let typeKey = p.present("rope_type") ? "rope_type" : "type"
            let type = try p.string(typeKey) ?? "default"
            func need(_ k: String) throws -> Double {
                guard p.present(k) else { throw bad("\(scalingKey).\(k) is missing (needed by rope type \"\(type)\")") }
                return try p.double(k)
            }
            switch type {
            case "default":
                break
            case "linear":
                ropeScaling = RopeScaling(kind: .linear, factor: try need("factor"))
            case "llama3":
                guard let orig = JSONFields.integer(o["original_max_position_embeddings"] ?? NSNull()) else {
                    throw bad("\(scalingKey).original_max_position_embeddings is missing or not an integer "
                              + "(needed by rope type \"llama3\")")
                }
                ropeScaling = RopeScaling(kind: .llama3, factor: try need("factor"),
                                          lowFreqFactor: try need("low_freq_factor"),
                                          highFreqFactor: try need("high_freq_factor"),
                                          originalMaxPositionEmbeddings: orig)
            default:
                throw bad("\(scalingKey).\(typeKey) is \"\(type)\"; supported: \"default\", \"linear\", \"llama3\"")
            }
            // Every key must be understood: others (per-layer-type entries, mrope_section,
            // attention_factor, ...) would change the maths.
            let known: Set<String> = ["rope_type", "type", "rope_theta", "factor", "low_freq_factor", "high_freq_factor",
                                      "original_max_position_embeddings", "partial_rotary_factor", "attention_factor"]
            for k in o.keys.sorted() where p.present(k) {
                guard known.contains(k) else {
                    throw bad("\(scalingKey).\(k) is not supported (understood: \(known.sorted().joined(separator: ", ")))")
                }
            }
            for k in ["partial_rotary_factor", "attention_factor"] {
                if let x = try p.optionalDouble(k), x != 1 {
                    throw bad("\(scalingKey).\(k) is \(x); only 1 is supported")
                }
            }
        }
        let ropeTheta = theta ?? 10000

        // Biases and norms by family, as each family's modelling code builds its layers.
        var qkvBias = false, outputBias = false, mlpBias = false, qkNorm = false
        switch arch {
        case .llama:
            qkvBias = try r.bool("attention_bias", default: false)
            outputBias = qkvBias
            mlpBias = try r.bool("mlp_bias", default: false)
        case .qwen2:
            qkvBias = true
        case .qwen3:
            qkvBias = try r.bool("attention_bias", default: false)
            outputBias = qkvBias
            qkNorm = true
        case .mistral:
            break
        }
        // Sliding-window attention: Mistral whenever sliding_window is set; Qwen2/3 only with
        // use_sliding_window (transformers 5 may list it as layer_types instead).
        var window: Int? = nil
        if r.present("sliding_window") {
            let w = try r.int("sliding_window")
            var used = arch == .mistral
            if arch == .qwen2 || arch == .qwen3 { used = try r.bool("use_sliding_window", default: false) }
            if let types = d["layer_types"] as? [Any], types.contains(where: { "\($0)" == "sliding_attention" }) {
                used = true
            }
            if used {
                guard w > 0 else { throw bad("sliding_window is \(w); expected a positive integer") }
                window = w
            }
        }
        slidingWindow = window
        dtype = try r.string("torch_dtype") ?? r.string("dtype")
        eosTokenIDs = try r.intList("eos_token_id")
        let defaultPositions = arch == .llama ? 2048 : arch == .mistral ? 4096 * 32 : 32768
        hf = HFLlama.Config(hiddenSize: hidden, intermediateSize: try r.int("intermediate_size"),
                            numAttentionHeads: heads, numKeyValueHeads: kv,
                            numHiddenLayers: try r.int("num_hidden_layers"),
                            rmsNormEps: try r.double("rms_norm_eps", default: 1e-6),
                            ropeTheta: ropeTheta,
                            vocabSize: try r.int("vocab_size"),
                            maxPositionEmbeddings: try r.int("max_position_embeddings", default: defaultPositions),
                            bosTokenID: try r.optionalInt("bos_token_id") ?? 1,
                            eosTokenID: eosTokenIDs.first ?? 2,
                            tieWordEmbeddings: tied)
        guard hf.maxPositionEmbeddings > 0, hf.maxPositionEmbeddings <= 1 << 30 else {
            throw bad("max_position_embeddings is \(hf.maxPositionEmbeddings); expected a positive integer")
        }
        guard hf.rmsNormEps > 0, hf.rmsNormEps < 1 else {
            throw bad("rms_norm_eps is \(hf.rmsNormEps); expected a number in (0, 1)")
        }
        guard hf.ropeTheta > 1, hf.ropeTheta.isFinite else {
            throw bad("rope_theta is \(hf.ropeTheta); expected a number > 1")
        }
        model = ModelConfig(dim: hidden, layers: hf.numHiddenLayers, heads: heads, kvHeads: kv, headDim: headDim,
                            ffnDim: hf.intermediateSize, vocabSize: hf.vocabSize, ropeBase: Float(hf.ropeTheta),
                            normEps: Float(hf.rmsNormEps), tiedEmbeddings: tied, architecture: arch,
                            qkvBias: qkvBias, outputBias: outputBias, mlpBias: mlpBias, qkNorm: qkNorm,
                            ropeScaling: ropeScaling)
        do { try model.validate() } catch { throw bad("\(error)") }
    }

    /// The usable context: `max_position_embeddings`, or the sliding window when shorter
    /// (attention beyond the window is not implemented, so longer sequences are refused).
    public var contextLength: Int { min(hf.maxPositionEmbeddings, slidingWindow ?? .max) }

    /// `config.json` text for `model` in its family's transformers-4 spelling (which
    /// transformers 5 reads too): `architectures`, `model_type`, biases, `head_dim`,
    /// `rope_theta`, `rope_scaling`, tied or untied head, float32 weights.
    public static func json(model c: ModelConfig, maxPositionEmbeddings: Int = 8192, bosTokenID: Int = 1,
                            eosTokenID: Int = 2) -> String {
        let hf = HFLlama.Config(model: c, maxPositionEmbeddings: maxPositionEmbeddings,
                                bosTokenID: bosTokenID, eosTokenID: eosTokenID)
        let className: String
        switch c.architecture {
        case .llama: className = "LlamaForCausalLM"
        case .qwen2: className = "Qwen2ForCausalLM"
        case .qwen3: className = "Qwen3ForCausalLM"
        case .mistral: className = "MistralForCausalLM"
        }
        var scaling = "null"
        if let s = c.ropeScaling {
            switch s.kind {
            case .linear:
                scaling = "{\"factor\": \(HFLlama.jsonNumber(s.factor)), \"rope_type\": \"linear\"}"
            case .llama3:
                scaling = "{\"factor\": \(HFLlama.jsonNumber(s.factor)), \"high_freq_factor\": "
                    + "\(HFLlama.jsonNumber(s.highFreqFactor)), \"low_freq_factor\": \(HFLlama.jsonNumber(s.lowFreqFactor)), "
                    + "\"original_max_position_embeddings\": \(s.originalMaxPositionEmbeddings), \"rope_type\": \"llama3\"}"
            case .factors:
                break  // refused by saveHF: no Hugging Face rope type holds arbitrary factors
            }
        }
        var fields: [(String, String)] = [
            ("architectures", "[\"\(className)\"]"),
            ("attention_dropout", "0.0"),
            ("bos_token_id", "\(hf.bosTokenID)"),
            ("eos_token_id", "\(hf.eosTokenID)"),
            ("head_dim", "\(c.headDim)"),
            ("hidden_act", "\"silu\""),
            ("hidden_size", "\(hf.hiddenSize)"),
            ("initializer_range", "0.02"),
            ("intermediate_size", "\(hf.intermediateSize)"),
            ("max_position_embeddings", "\(hf.maxPositionEmbeddings)"),
            ("model_type", "\"\(c.architecture.rawValue)\""),
            ("num_attention_heads", "\(hf.numAttentionHeads)"),
            ("num_hidden_layers", "\(hf.numHiddenLayers)"),
            ("num_key_value_heads", "\(hf.numKeyValueHeads)"),
            ("rms_norm_eps", HFLlama.jsonNumber(hf.rmsNormEps)),
            ("rope_scaling", scaling),
            ("rope_theta", HFLlama.jsonNumber(hf.ropeTheta)),
            ("tie_word_embeddings", c.tiedEmbeddings ? "true" : "false"),
            ("torch_dtype", "\"float32\""),
            ("use_cache", "true"),
            ("vocab_size", "\(hf.vocabSize)"),
        ]
        switch c.architecture {
        case .llama:
            precondition(c.qkvBias == c.outputBias && !c.qkNorm, "a llama config has q/k/v/o biases together, no q/k norm")
            fields += [("attention_bias", c.qkvBias ? "true" : "false"), ("mlp_bias", c.mlpBias ? "true" : "false"),
                       ("pretraining_tp", "1")]
        case .qwen2:
            precondition(c.qkvBias && !c.outputBias && !c.mlpBias && !c.qkNorm, "a qwen2 config has q/k/v biases only")
            fields += [("use_sliding_window", "false"), ("sliding_window", "null"), ("max_window_layers", "\(c.layers)")]
        case .qwen3:
            precondition(c.qkNorm && c.qkvBias == c.outputBias && !c.mlpBias, "a qwen3 config has q/k norms")
            fields += [("attention_bias", c.qkvBias ? "true" : "false"), ("use_sliding_window", "false"),
                       ("sliding_window", "null"), ("max_window_layers", "\(c.layers)")]
        case .mistral:
            precondition(!c.qkvBias && !c.outputBias && !c.mlpBias && !c.qkNorm, "a mistral config has no biases")
            fields += [("sliding_window", "null")]
        }
        fields.sort { $0.0 < $1.0 }
        return "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }
}

/// True for a JSON `true`/`false` (an NSNumber of ObjC type "c"), not a number.
func isJSONBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
