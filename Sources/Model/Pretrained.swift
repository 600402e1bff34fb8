import Foundation

public enum PretrainedError: Error, CustomStringConvertible {
    case unsupported(path: String, reason: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    case missingTensor(path: String, tensor: String)
    case tensorTable(path: String, TensorTableProblem, architecture: String = "llama")

    public var description: String {
        switch self {
        case let .unsupported(path, reason): return "\(path): unsupported model: \(reason)"
        case let .shapeMismatch(path, t, e, f):
            return "\(path): tensor \(t) has shape \(f) (rows×cols), expected \(e)"
        case let .missingTensor(path, t): return "\(path): tensor \(t) is missing"
        case let .tensorTable(path, problem, arch): return "\(path): " + problem.describe(countKey: "\(arch).block_count")
        }
    }
}

extension ModelConfig {
    /// The GGUF `general.architecture` values this reader implements.
    public static let supportedGGUFArchitectures: [ModelArchitecture] = [.llama, .qwen2, .qwen3]

    /// The model shape from a GGUF file's `<arch>.*` metadata (`general.architecture` llama,
    /// qwen2 or qwen3), checked before any use (no value
    /// is divided by or allocated with before it is known to be sane) and then checked against
    /// the tensor table (`tensorTableProblem`): names, shapes and the block count. Allocates
    /// nothing that grows with the header's values. Qwen2 has q/k/v biases, Qwen3 q/k norms
    /// (and biases when its tensors have them); rope scaling `linear` is read, and llama.cpp's
    /// `rope_freqs.weight` (Llama 3.1's scaling as per-frequency divisors: recognised as `llama3`
    /// when a published setting reproduces it, else kept as the divisors); YaRN is refused.
    public init(gguf: GGUFFile) throws {
        let archName = try gguf.string("general.architecture")
        guard let family = ModelArchitecture(rawValue: archName), Self.supportedGGUFArchitectures.contains(family) else {
            let names = Self.supportedGGUFArchitectures.map(\.rawValue).joined(separator: ", ")
            throw PretrainedError.unsupported(path: gguf.path, reason: "general.architecture '\(archName)' "
                                              + "(supported: \(names))")
        }
        let arch = archName
        func bad(_ key: String, _ value: Any, _ expected: String) -> GGUFError {
            .invalid(path: gguf.path, problem: "metadata '\(key)' is \(value); expected \(expected)")
        }
        func positive(_ key: String, default def: Int? = nil) throws -> Int {
            if let def, gguf.metadata[key] == nil { return def }
            let v = try gguf.int(key)
            guard v > 0 else { throw bad(key, v, "a positive integer") }
            guard v <= ModelConfig.maxSize else { throw bad(key, v, "at most \(ModelConfig.maxSize)") }
            return v
        }
        func number(_ key: String, default def: Double? = nil) throws -> Double {
            if let def, gguf.metadata[key] == nil { return def }
            let v = try gguf.double(key)
            guard v.isFinite else { throw bad(key, v, "a finite number") }
            return v
        }
        let dim = try positive("\(arch).embedding_length")
        let heads = try positive("\(arch).attention.head_count")
        let kvHeads = try positive("\(arch).attention.head_count_kv", default: heads)
        guard kvHeads <= heads, heads % kvHeads == 0 else {
            throw bad("\(arch).attention.head_count_kv", kvHeads,
                      "a divisor of llama.attention.head_count (\(heads)) for grouped-query attention")
        }
        let headDim: Int
        if gguf.metadata["\(arch).attention.key_length"] != nil {
            headDim = try positive("\(arch).attention.key_length")
        } else {
            guard dim % heads == 0 else {
                throw bad("\(arch).embedding_length", dim, "a multiple of \(arch).attention.head_count (\(heads)) "
                          + "when llama.attention.key_length is absent")
            }
            headDim = dim / heads
        }
        guard headDim % 2 == 0 else {
            throw bad("\(arch).attention.key_length", headDim, "an even head size (RoPE rotates pairs)")
        }
        let valueLength = try positive("\(arch).attention.value_length", default: headDim)
        guard valueLength == headDim else {
            throw bad("\(arch).attention.value_length", valueLength, "the key length \(headDim)")
        }
        let ropeDims = try positive("\(arch).rope.dimension_count", default: headDim)
        guard ropeDims == headDim else {
            throw bad("\(arch).rope.dimension_count", ropeDims,
                      "the head size \(headDim) (partial rotary embeddings are not supported)")
        }
        let layers = try gguf.int("\(arch).block_count")
        guard layers > 0 else { throw bad("\(arch).block_count", layers, "a positive integer") }
        let ffn = try positive("\(arch).feed_forward_length")
        let eps = try number("\(arch).attention.layer_norm_rms_epsilon")
        guard eps > 0, eps < 1 else { throw bad("\(arch).attention.layer_norm_rms_epsilon", eps, "a number in (0, 1)") }
        let ropeBase = try number("\(arch).rope.freq_base", default: 10000)
        guard ropeBase > 1 else { throw bad("\(arch).rope.freq_base", ropeBase, "a number > 1") }
        _ = try gguf.contextLength()
        let embd = try gguf.tensor(named: "token_embd.weight")
        let vocab: Int
        if gguf.metadata["\(arch).vocab_size"] != nil {
            vocab = try gguf.int("\(arch).vocab_size")
            guard vocab > 0, vocab <= Int(Int32.max) else {
                throw bad("\(arch).vocab_size", vocab, "a positive integer < 2³¹")
            }
        } else {
            vocab = embd.shape.last ?? 0
            guard vocab > 0 else {
                throw GGUFError.invalid(path: gguf.path, problem: "token_embd.weight has shape \(embd.shape): no vocabulary")
            }
        }
        let tied = (try? gguf.tensor(named: "output.weight")) == nil
        var scaling: RopeScaling? = nil
        let scalingKey = "\(arch).rope.scaling.type"
        if gguf.metadata[scalingKey] != nil {
            switch try gguf.string(scalingKey) {
            case "none": break
            case "linear":
                let f = try number("\(arch).rope.scaling.factor")
                guard f >= 1 else { throw bad("\(arch).rope.scaling.factor", f, "a number ≥ 1") }
                scaling = RopeScaling(kind: .linear, factor: f)
            case let other:
                throw bad(scalingKey, other, "\"none\" or \"linear\"")
            }
        }
        if let info = try? gguf.tensor(named: "rope_freqs.weight") {
            // llama.cpp's per-frequency divisors (Llama 3.1's scaling as its converter writes it):
            // θ_i = pos · base^(−2i/d) / rope_freqs[i].
            guard scaling == nil else {
                throw bad(scalingKey, try gguf.string(scalingKey), "absent when the file has a rope_freqs.weight tensor")
            }
            let half = headDim / 2
            guard info.shape.reduce(1, *) == half else {
                throw GGUFError.invalid(path: gguf.path, problem: "rope_freqs.weight has shape \(info.shape); "
                                        + "expected \(half) factors (head dimension \(headDim) / 2)")
            }
            let ff = try gguf.floats("rope_freqs.weight").map(Double.init)
            guard ff.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw GGUFError.invalid(path: gguf.path, problem: "rope_freqs.weight holds a factor that is not a finite positive number")
            }
            let inv = (0..<half).map { Foundation.pow(Double(Float(ropeBase)), -2.0 * Double($0) / Double(headDim)) }
            scaling = RopeScaling.llama3Matching(divisors: ff, inv: inv) ?? RopeScaling.perFrequency(ff)
        }
        // Biases / norms by what the family's tensors hold (llama: attention_bias puts q, k, v
        // and output biases together; qwen2: q/k/v biases; qwen3: q/k norms).
        func has(_ suffix: String) -> Bool { (try? gguf.tensor(named: "blk.0." + suffix)) != nil }
        let attentionBias = family != .qwen2 && has("attn_output.bias")
        let qkvBias = family == .qwen2 || attentionBias
        self.init(dim: dim, layers: layers, heads: heads, kvHeads: kvHeads, headDim: headDim, ffnDim: ffn,
                  vocabSize: vocab, ropeBase: Float(ropeBase), normEps: Float(eps), tiedEmbeddings: tied,
                  architecture: family, qkvBias: qkvBias, outputBias: attentionBias,
                  mlpBias: family == .llama && has("ffn_gate.bias"), qkNorm: family == .qwen3, ropeScaling: scaling)
        do { try validate() } catch let e as ModelConfigError {
            throw GGUFError.invalid(path: gguf.path, problem: e.description)
        }
        if let problem = tensorTableProblem(gguf.tensors.map { ($0.name, Array($0.shape.reversed())) }) {
            throw PretrainedError.tensorTable(path: gguf.path, problem, architecture: arch)
        }
    }
}

extension GGUFFile {
    /// `<arch>.context_length`: the longest sequence (prompt plus generated tokens, or the
    /// largest rotary position + 1) the model was trained for.
    public func contextLength() throws -> Int {
        let key = "\((try? string("general.architecture")) ?? "llama").context_length"
        let n = try int(key)
        guard n > 0, n <= 1 << 30 else {
            throw GGUFError.invalid(path: path, problem: "metadata '\(key)' is \(n); expected a positive integer")
        }
        return n
    }
}

extension ParameterStore {
    /// All parameters of a GGUF Llama model, dequantised to Float32 into one flat store. The
    /// header and the tensor table are checked before the store is allocated
    /// (`ModelConfig(gguf:)`); every tensor is checked for NaN/±∞ as it is read.
    public static func load(gguf: GGUFFile) throws -> ParameterStore {
        let config = try ModelConfig(gguf: gguf)
        let store = ParameterStore(config: config)
        store.contextLength = try gguf.contextLength()
        // llama.cpp stores llama's q/k rows interleaved (its converter permutes them) but
        // qwen2/qwen3 in Hugging Face's rotate-half order (NEOX rope): permute those here.
        let neox = config.architecture == .qwen2 || config.architecture == .qwen3
        let maxRows = max(config.qDim, config.kvDim)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: neox ? max(1, maxRows * config.dim) : 1)
        defer { scratch.deallocate() }
        for view in store.layout.views {
            // Present with this shape: checked by ModelConfig(gguf:).
            let info = try gguf.tensor(named: view.name)
            if neox, let role = HFLlama.qkRole(ggufName: view.name) {
                try gguf.dequantize(info, into: scratch)
                HFLlama.permuteHFToGGUF(UnsafePointer(scratch), into: store.pointer + view.offset, rows: view.shape[0],
                                        cols: view.count / view.shape[0], heads: store.permutationHeads(role))
            } else {
                try gguf.dequantize(info, into: store.pointer + view.offset)
            }
            try NonFiniteWeightsError.check(store.pointer + view.offset, count: view.count, tensor: view.name,
                                            path: gguf.path)
        }
        return store
    }
}
