import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A Hugging Face directory (llama, qwen2, qwen3, mistral) for the flat parameters:
//   DIR/model.safetensors  F32 tensors named as `<Family>ForCausalLM.state_dict()` names them
//                          (q_proj/k_proj rows, their biases and q_norm/k_norm weights in HF's
//                          rotate-half order; no lm_head when the embeddings are tied),
//                          `__metadata__` {"format": "pt", ...}; or, when reading, the shards of
//                          model.safetensors.index.json, F32 / F16 / BF16
//   DIR/config.json        the family's config for the same shape.
// `saveHF` then `loadHF` gives back bit-identical parameters.

/// Everything that can be wrong with a Hugging Face model directory; the description names the
/// file and the problem.
public enum HFCheckpointError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var errorDescription: String? { description }

    case notFound(path: String, reason: String)
    case badConfig(path: String, problem: String)
    case missingTensor(path: String, tensor: String)
    case unexpectedTensor(path: String, tensor: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    case configMismatch(path: String, expected: ModelConfig, found: ModelConfig)
    case tensorTable(path: String, problem: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .notFound(path, reason): return "\(path): \(reason)"
        case let .badConfig(path, problem): return "\(path): invalid Hugging Face config.json: \(problem)"
        case let .missingTensor(path, t): return "\(path): tensor '\(t)' is missing"
        case let .unexpectedTensor(path, t):
            return "\(path): tensor '\(t)' is not a parameter of this Llama model (unknown name or not expected for this config)"
        case let .shapeMismatch(path, t, e, f): return "\(path): tensor '\(t)' has shape \(f), expected \(e)"
        case let .configMismatch(path, e, f):
            return "\(path): the model shape \(f) does not match the parameters' shape \(e)"
        case let .writeFailed(path, reason): return "\(path): write failed: \(reason)"
        case let .tensorTable(path, problem): return "\(path): \(problem)"
        }
    }
}

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

/// The safetensors files of a Hugging Face directory: `model.safetensors`, or the shards that
/// `model.safetensors.index.json` lists (each memory-mapped; a tensor is read straight from its
/// shard into the flat store).
public struct HFWeightFiles {
    public let files: [SafeTensorsFile]
    /// Every tensor with the index of its file.
    public let tensors: [(info: SafeTensorsInfo, file: Int)]
    /// What errors name: model.safetensors, or the index file.
    public let path: String

    /// Opens `directory/model.safetensors`, else the shards of `model.safetensors.index.json`
    /// (each listed tensor must be in its shard; a tensor in two shards, an unlisted tensor or a
    /// shard name with a path is an error).
    public init(directory: String) throws {
        let single = directory + "/" + ParameterStore.hfWeightsFile
        let index = directory + "/" + ParameterStore.hfIndexFile
        let fm = FileManager.default
        if fm.fileExists(atPath: single) || !fm.fileExists(atPath: index) {
            let f: SafeTensorsFile
            do { f = try SafeTensorsFile(path: single) } catch let e as SafeTensorsError {
                if case .cannotOpen = e, !fm.fileExists(atPath: single) {
                    throw HFCheckpointError.notFound(path: single, reason: "missing (a Hugging Face model directory needs "
                                                     + "model.safetensors or model.safetensors.index.json with its shards, "
                                                     + "and config.json)")
                }
                throw e
            }
            files = [f]
            tensors = f.tensors.map { ($0, 0) }
            path = single
            return
        }
        path = index
        func bad(_ s: String) -> HFCheckpointError { .tensorTable(path: index, problem: s) }
        guard let data = fm.contents(atPath: index),
              let d = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw bad("not a JSON object")
        }
        guard let map = d["weight_map"] as? [String: Any] else { throw bad("'weight_map' is missing or not an object") }
        var shardNames: [String] = []
        var wanted: [String: String] = [:]
        for (tensor, v) in map {
            guard let shard = v as? String else { throw bad("weight_map['\(tensor)'] is \(v), not a file name") }
            guard !shard.contains("/"), shard != "..", shard != ".", !shard.isEmpty else {
                throw bad("weight_map['\(tensor)'] is '\(shard)'; expected a file name in the same directory")
            }
            wanted[tensor] = shard
            if !shardNames.contains(shard) { shardNames.append(shard) }
        }
        shardNames.sort()
        var fs: [SafeTensorsFile] = []
        var all: [(SafeTensorsInfo, Int)] = []
        var seen: [String: String] = [:]
        for (i, shard) in shardNames.enumerated() {
            let f = try SafeTensorsFile(path: directory + "/" + shard)
            for t in f.tensors {
                if let other = seen[t.name] { throw bad("tensor '\(t.name)' is in both \(other) and \(shard)") }
                guard wanted[t.name] == shard else {
                    throw bad("tensor '\(t.name)' of \(shard) is "
                              + (wanted[t.name].map { "listed under \($0)" } ?? "not in weight_map"))
                }
                seen[t.name] = shard
                all.append((t, i))
            }
            fs.append(f)
        }
        if let missing = wanted.keys.sorted().first(where: { seen[$0] == nil }) {
            throw bad("tensor '\(missing)' is listed under \(wanted[missing]!) but that shard does not hold it")
        }
        files = fs
        tensors = all
    }

    /// Reads tensor `k` of `tensors` as Float32 into `out`.
    func read(_ k: Int, into out: UnsafeMutablePointer<Float>) throws {
        try files[tensors[k].file].read(tensors[k].info.name, into: out)
    }
}

extension ParameterStore {
    /// Names of the files in a Hugging Face model directory.
    public static let hfWeightsFile = "model.safetensors"
    public static let hfIndexFile = "model.safetensors.index.json"
    public static let hfConfigFile = "config.json"

    /// The number of heads whose rows a tensor's Hugging Face ↔ GGUF permutation works on
    /// (`HFLlama.qkRole`): n_head for q, n_kv_head for k, 1 for the per-head q/k norms.
    func permutationHeads(_ role: HFLlama.QKRole) -> Int {
        switch role {
        case .query: return config.heads
        case .key: return config.kvHeads
        case .headNorm: return 1
        }
    }

    /// Writes `directory/model.safetensors` (Hugging Face names of the model's family, `dtype`
    /// F32 or BF16, q/k rows — and their biases and norm weights — in HF's rotate-half order,
    /// no `lm_head` when embeddings are tied; metadata `format: pt` plus `extraMetadata`) and
    /// `directory/config.json`. Each file is written atomically (temporary
    /// file, fsync, rename, fsync of the directory); the directory is created if needed.
    /// `max_position_embeddings` is `maxPositionEmbeddings`, else this store's `contextLength`,
    /// else 8192. Returns the paths of the two files.
    @discardableResult
    public func saveHF(directory: String, extraMetadata: [String: String] = [:], maxPositionEmbeddings: Int? = nil,
                       bosTokenID: Int = 1, eosTokenID: Int = 2,
                       dtype: HFOutputDType = .f32) throws -> (weights: String, config: String) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw HFCheckpointError.writeFailed(path: directory, reason: "cannot create the directory: \(error.localizedDescription)")
        }
        let c = config
        let weights = directory + "/" + Self.hfWeightsFile
        var entries: [(name: String, shape: [Int], count: Int)] = []
        for v in layout.views {
            guard let hf = HFLlama.hfName(fromGGUF: v.name) else {
                throw HFCheckpointError.unexpectedTensor(path: weights, tensor: v.name)
            }
            entries.append((hf, v.shape, v.count))
        }
        var meta = extraMetadata
        meta["format"] = "pt"
        let maxRows = max(c.qDim, c.kvDim)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, maxRows * c.dim))
        defer { scratch.deallocate() }
        let halves = UnsafeMutablePointer<UInt16>.allocate(capacity: dtype == .f32 ? 1 : layout.views.map(\.count).max() ?? 1)
        defer { halves.deallocate() }
        let views = layout.views
        let base = pointer
        try SafeTensors.writeImpl(entries: entries, metadata: meta, path: weights, dtype: dtype.safetensors) { i, put in
            let v = views[i]
            var src = UnsafePointer(base + v.offset)
            if let role = HFLlama.qkRole(ggufName: v.name) {
                HFLlama.permuteGGUFToHF(src, into: scratch, rows: v.shape[0], cols: v.count / v.shape[0],
                                        heads: self.permutationHeads(role))
                src = UnsafePointer(scratch)
            }
            switch dtype {
            case .f32:
                try put(UnsafeRawBufferPointer(start: src, count: 4 * v.count))
            case .bf16:
                for j in 0..<v.count { halves[j] = HFOutputDType.bf16Bits(src[j]).littleEndian }
                try put(UnsafeRawBufferPointer(start: halves, count: 2 * v.count))
            }
        }
        let configPath = directory + "/" + Self.hfConfigFile
        let positions = maxPositionEmbeddings ?? contextLength ?? 8192
        var text = HFModelConfig.json(model: c, maxPositionEmbeddings: positions, bosTokenID: bosTokenID, eosTokenID: eosTokenID)
        text = text.replacingOccurrences(of: "\"torch_dtype\": \"float32\"", with: "\"torch_dtype\": \"\(dtype.torch)\"")
        try writeFileAtomically(configPath, Array(text.utf8))
        return (weights, configPath)
    }

    /// Reads a Hugging Face directory of a supported family written by `saveHF` or by
    /// transformers (F32/F16/BF16 weights in `model.safetensors` or in the shards of
    /// `model.safetensors.index.json`, each converted straight into the flat store): the shape
    /// from `config.json`, tensors mapped back to GGUF names and q/k rows back to the
    /// interleaved order. Every parameter must be present; an unknown tensor (including
    /// `lm_head.weight` when config.json says the embeddings are tied) is an error; rotary
    /// `inv_freq` buffers are ignored. A training checkpoint (a
    /// directory with state.json) is verified first (`CheckpointFiles.verifyModel`: every file's
    /// size and XXH64); `log` gets the warning of an older checkpoint whose state is unverified.
    /// The directory is checked (`validateHF`) before the parameters are allocated.
    public static func loadHF(directory: String,
                              log: (String) -> Void = CheckpointFiles.printWarning) throws -> ParameterStore {
        if CheckpointFiles.isCheckpoint(directory), let w = try CheckpointFiles.verifyModel(directory) { log(w) }
        let cfg = try validateHF(directory: directory)
        let store = ParameterStore(config: cfg.model)
        try store.readHFWeights(directory: directory)
        return store
    }

    /// Checks a Hugging Face directory without allocating its parameters: `config.json`, then
    /// the safetensors headers against it (every tensor present with its shape, none of a
    /// layer past `num_hidden_layers`, F32/F16/BF16 only). Returns the parsed config.
    @discardableResult
    public static func validateHF(directory: String) throws -> HFModelConfig {
        let cfg = try HFModelConfig(path: directory + "/" + hfConfigFile)
        try checkHFTensors(try HFWeightFiles(directory: directory), config: cfg.model)
        return cfg
    }

    /// The headers of `weights` against `config` (see `validateHF`); allocates nothing that
    /// grows with the config's sizes.
    private static func checkHFTensors(_ weights: HFWeightFiles, config: ModelConfig) throws {
        var table: [(name: String, shape: [Int])] = []
        for (t, f) in weights.tensors {
            let path = weights.files[f].path
            if t.name.hasSuffix(".rotary_emb.inv_freq") { continue }
            guard let g = HFLlama.ggufName(fromHF: t.name) else {
                throw HFCheckpointError.unexpectedTensor(path: path, tensor: t.name)
            }
            if t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16" {
                throw SafeTensorsError.unsupportedDType(path: path, tensor: t.name, dtype: t.dtype)
            }
            table.append((g, t.shape))
        }
        guard let problem = config.tensorTableProblem(table) else { return }
        let path = weights.path
        func hf(_ g: String) -> String { HFLlama.hfName(fromGGUF: g) ?? g }
        switch problem {
        case let .missing(t): throw HFCheckpointError.missingTensor(path: path, tensor: hf(t))
        case let .shape(t, e, f): throw HFCheckpointError.shapeMismatch(path: path, tensor: hf(t), expected: e, found: f)
        case let .unexpected(t): throw HFCheckpointError.unexpectedTensor(path: path, tensor: hf(t))
        case .layerCount:
            let text = problem.describe(countKey: "config.json num_hidden_layers", name: hf)
            throw HFCheckpointError.tensorTable(path: path, problem: text)
        }
    }

    /// Fills this store from `directory` (see `loadHF`); the directory's config.json must describe
    /// exactly this store's shape. Checksums are not verified here (`Checkpoint.load` verifies
    /// before it calls this; `loadHF` does for a checkpoint used as a model). Sets
    /// `contextLength` from its `max_position_embeddings` (or its shorter sliding window);
    /// every tensor is checked for NaN/±∞ as it is read.
    public func readHFWeights(directory: String) throws {
        let configPath = directory + "/" + Self.hfConfigFile
        let cfg = try HFModelConfig(path: configPath)
        if cfg.model != config {
            throw HFCheckpointError.configMismatch(path: configPath, expected: config, found: cfg.model)
        }
        let weights = try HFWeightFiles(directory: directory)
        // Check every name and shape first: nothing is written unless the whole file fits.
        try Self.checkHFTensors(weights, config: config)
        var plan: [(tensor: Int, view: TensorView)] = []
        for (k, t) in weights.tensors.enumerated() where !t.info.name.hasSuffix(".rotary_emb.inv_freq") {
            plan.append((k, view(HFLlama.ggufName(fromHF: t.info.name)!)!))
        }
        contextLength = cfg.contextLength
        slidingWindow = cfg.slidingWindow
        let maxRows = max(config.qDim, config.kvDim)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, maxRows * config.dim))
        defer { scratch.deallocate() }
        for (k, v) in plan {
            let dst = pointer + v.offset
            if let role = HFLlama.qkRole(ggufName: v.name) {
                try weights.read(k, into: scratch)
                HFLlama.permuteHFToGGUF(UnsafePointer(scratch), into: dst, rows: v.shape[0], cols: v.count / v.shape[0],
                                        heads: permutationHeads(role))
            } else {
                try weights.read(k, into: dst)
            }
            let t = weights.tensors[k]
            try NonFiniteWeightsError.check(dst, count: v.count, tensor: t.info.name, path: weights.files[t.file].path)
        }
    }
}

extension SafeTensorsFile {
    /// Like `copy(_:into:)`, but F32 tensors are read with `pread` straight from the file (no
    /// page faults on the mapping: about twice as fast for large tensors).
    public func read(_ name: String, into out: UnsafeMutablePointer<Float>) throws {
        let info = try tensor(named: name)
        guard info.dtype == "F32" else { return try copy(name, into: out) }
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw SafeTensorsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let raw = UnsafeMutableRawPointer(out)
        var done = 0
        while done < info.byteCount {
            let r = pread(fd, raw + done, min(info.byteCount - done, 1 << 30), off_t(dataOffset + info.begin + done))
            if r < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError.cannotOpen(path: path, reason: "read of tensor '\(name)': \(String(cString: strerror(errno)))")
            }
            if r == 0 {
                throw SafeTensorsError.truncated(path: path, problem: "end of file inside tensor '\(name)'")
            }
            done += r
        }
    }
}

/// JSONSerialization gives true/false as NSNumbers of ObjC type "c" (char).
private func isJSONBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

/// Where `ebft-dist` reads a model from: a GGUF file, or a Hugging Face directory (`saveHF`'s
/// output, which every training checkpoint directory also is).
public enum ModelSource {
    public enum Kind: Equatable, Sendable { case gguf, huggingFace }

    /// What `path` is: a regular file → GGUF; a directory with config.json → Hugging Face.
    public static func kind(of path: String) throws -> Kind {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw HFCheckpointError.notFound(path: path, reason: "no such file or directory (expected a GGUF file or a Hugging Face model directory)")
        }
        if !isDir.boolValue { return .gguf }
        guard FileManager.default.fileExists(atPath: path + "/" + ParameterStore.hfConfigFile) else {
            throw HFCheckpointError.notFound(path: path, reason: "is a directory without config.json (expected a GGUF file or a Hugging Face model directory with config.json and model.safetensors)")
        }
        return .huggingFace
    }

    /// The parameters at `path` (GGUF file or Hugging Face directory), as Float32. A training
    /// checkpoint directory is verified against its checksums first (see `loadHF`).
    public static func load(_ path: String, log: (String) -> Void = CheckpointFiles.printWarning) throws -> ParameterStore {
        switch try kind(of: path) {
        case .gguf: return try ParameterStore.load(gguf: try GGUFFile(path: path))
        case .huggingFace: return try ParameterStore.loadHF(directory: path, log: log)
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// directory.
public func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
    func fail(_ what: String) -> HFCheckpointError {
        .writeFailed(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    if fd < 0 { throw fail("cannot create \(tmp)") }
    var closed = false, renamed = false
    defer {
        if !closed { close(fd) }
        if !renamed { unlink(tmp) }
    }
    try bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let w = write(fd, raw.baseAddress! + done, raw.count - done)
            if w < 0 {
                if errno == EINTR { continue }
                throw fail("write")
            }
            done += w
        }
    }
    if fsync(fd) != 0 { throw fail("fsync") }
    closed = true
    if close(fd) != 0 { throw fail("close") }
    if rename(tmp, path) != 0 { throw fail("rename") }
    renamed = true
    fsyncDirectory(dir)
}

/// fsync of a directory (makes renames and new entries in it durable); errors are ignored.
public func fsyncDirectory(_ dir: String) {
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}
