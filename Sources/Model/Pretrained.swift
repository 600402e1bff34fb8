import Foundation

public enum PretrainedError: Error, CustomStringConvertible {
    case unsupported(path: String, reason: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    case missingTensor(path: String, tensor: String)

    public var description: String {
        switch self {
        case let .unsupported(path, reason): return "\(path): unsupported model: \(reason)"
        case let .shapeMismatch(path, t, e, f):
            return "\(path): tensor \(t) has shape \(f) (rows×cols), expected \(e)"
        case let .missingTensor(path, t): return "\(path): tensor \(t) is missing"
        }
    }
}

extension ModelConfig {
    /// The model shape from a GGUF file's `llama.*` metadata.
    public init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        guard arch == "llama" else {
            throw PretrainedError.unsupported(path: gguf.path, reason: "architecture '\(arch)' (only llama is implemented)")
        }
        let dim = try gguf.int("llama.embedding_length")
        let heads = try gguf.int("llama.attention.head_count")
        let kvHeads = (try? gguf.int("llama.attention.head_count_kv")) ?? heads
        let headDim = (try? gguf.int("llama.attention.key_length")) ?? dim / heads
        let embd = try gguf.tensor(named: "token_embd.weight")
        let vocab = (try? gguf.int("llama.vocab_size")) ?? embd.shape.last ?? 0
        let tied = (try? gguf.tensor(named: "output.weight")) == nil
        self.init(dim: dim, layers: try gguf.int("llama.block_count"), heads: heads, kvHeads: kvHeads,
                  headDim: headDim, ffnDim: try gguf.int("llama.feed_forward_length"), vocabSize: vocab,
                  ropeBase: Float((try? gguf.double("llama.rope.freq_base")) ?? 10000),
                  normEps: Float(try gguf.double("llama.attention.layer_norm_rms_epsilon")),
                  tiedEmbeddings: tied)
        try validate()
    }
}

extension ParameterStore {
    /// All parameters of a GGUF Llama model, dequantised to Float32 into one flat store.
    public static func load(gguf: GGUFFile) throws -> ParameterStore {
        let store = ParameterStore(config: try ModelConfig(gguf: gguf))
        for view in store.layout.views {
            guard let info = try? gguf.tensor(named: view.name) else {
                throw PretrainedError.missingTensor(path: gguf.path, tensor: view.name)
            }
            let found = Array(info.shape.reversed()) // GGUF lists ne[0] (the row length) first
            guard found == view.shape else {
                throw PretrainedError.shapeMismatch(path: gguf.path, tensor: view.name, expected: view.shape, found: found)
            }
            try gguf.dequantize(info, into: store.pointer + view.offset)
        }
        return store
    }
}
