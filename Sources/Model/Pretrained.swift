import Foundation

public enum PretrainedError: Error, CustomStringConvertible {
    case unsupported(path: String, reason: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    case missingTensor(path: String, tensor: String)
    case tensorTable(path: String, TensorTableProblem)

    public var description: String {
        switch self {
        case let .unsupported(path, reason): return "\(path): unsupported model: \(reason)"
        case let .shapeMismatch(path, t, e, f):
            return "\(path): tensor \(t) has shape \(f) (rows×cols), expected \(e)"
        case let .missingTensor(path, t): return "\(path): tensor \(t) is missing"
        case let .tensorTable(path, problem): return "\(path): " + problem.describe(countKey: "llama.block_count")
        }
    }
}

extension ModelConfig {
    /// The model shape from a GGUF file's `llama.*` metadata, checked before any use (no value
    /// is divided by or allocated with before it is known to be sane) and then checked against
    /// the tensor table (`tensorTableProblem`): names, shapes and the block count. Allocates
    /// nothing that grows with the header's values.
    public init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        guard arch == "llama" else {
            throw PretrainedError.unsupported(path: gguf.path, reason: "architecture '\(arch)' (only llama is implemented)")
        }
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
        let dim = try positive("llama.embedding_length")
        let heads = try positive("llama.attention.head_count")
        let kvHeads = try positive("llama.attention.head_count_kv", default: heads)
        guard kvHeads <= heads, heads % kvHeads == 0 else {
            throw bad("llama.attention.head_count_kv", kvHeads,
                      "a divisor of llama.attention.head_count (\(heads)) for grouped-query attention")
        }
        let headDim: Int
        if gguf.metadata["llama.attention.key_length"] != nil {
            headDim = try positive("llama.attention.key_length")
        } else {
            guard dim % heads == 0 else {
                throw bad("llama.embedding_length", dim, "a multiple of llama.attention.head_count (\(heads)) "
                          + "when llama.attention.key_length is absent")
            }
            headDim = dim / heads
        }
        guard headDim % 2 == 0 else {
            throw bad("llama.attention.key_length", headDim, "an even head size (RoPE rotates pairs)")
        }
        let valueLength = try positive("llama.attention.value_length", default: headDim)
        guard valueLength == headDim else {
            throw bad("llama.attention.value_length", valueLength, "the key length \(headDim)")
        }
        let ropeDims = try positive("llama.rope.dimension_count", default: headDim)
        guard ropeDims == headDim else {
            throw bad("llama.rope.dimension_count", ropeDims,
                      "the head size \(headDim) (partial rotary embeddings are not supported)")
        }
        let layers = try gguf.int("llama.block_count")
        guard layers > 0 else { throw bad("llama.block_count", layers, "a positive integer") }
        let ffn = try positive("llama.feed_forward_length")
        let eps = try number("llama.attention.layer_norm_rms_epsilon")
        guard eps > 0, eps < 1 else { throw bad("llama.attention.layer_norm_rms_epsilon", eps, "a number in (0, 1)") }
        let ropeBase = try number("llama.rope.freq_base", default: 10000)
        guard ropeBase > 1 else { throw bad("llama.rope.freq_base", ropeBase, "a number > 1") }
        _ = try gguf.contextLength()
        let embd = try gguf.tensor(named: "token_embd.weight")
        let vocab: Int
        if gguf.metadata["llama.vocab_size"] != nil {
            vocab = try gguf.int("llama.vocab_size")
            guard vocab > 0, vocab <= Int(Int32.max) else {
                throw bad("llama.vocab_size", vocab, "a positive integer < 2³¹")
            }
        } else {
            vocab = embd.shape.last ?? 0
            guard vocab > 0 else {
                throw GGUFError.invalid(path: gguf.path, problem: "token_embd.weight has shape \(embd.shape): no vocabulary")
            }
        }
        let tied = (try? gguf.tensor(named: "output.weight")) == nil
        self.init(dim: dim, layers: layers, heads: heads, kvHeads: kvHeads, headDim: headDim, ffnDim: ffn,
                  vocabSize: vocab, ropeBase: Float(ropeBase), normEps: Float(eps), tiedEmbeddings: tied)
        do { try validate() } catch let e as ModelConfigError {
            throw GGUFError.invalid(path: gguf.path, problem: e.description)
        }
        if let problem = tensorTableProblem(gguf.tensors.map { ($0.name, Array($0.shape.reversed())) }) {
            throw PretrainedError.tensorTable(path: gguf.path, problem)
        }
    }
}

extension GGUFFile {
    /// `llama.context_length`: the longest sequence (prompt plus generated tokens, or the
    /// largest rotary position + 1) the model was trained for.
    public func contextLength() throws -> Int {
        let key = "llama.context_length"
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
        for view in store.layout.views {
            // Present with this shape: checked by ModelConfig(gguf:).
            let info = try gguf.tensor(named: view.name)
            try gguf.dequantize(info, into: store.pointer + view.offset)
            try NonFiniteWeightsError.check(store.pointer + view.offset, count: view.count, tensor: view.name,
                                            path: gguf.path)
        }
        return store
    }
}
