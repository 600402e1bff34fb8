import Foundation

// Writing the flat parameters out in a family's own conventions: a GGUF file as llama.cpp's
// converter (convert_hf_to_gguf.py) writes it, and the names a Hugging Face directory needs.
// What differs between families is data, in `ExportArchitecture.all`.

/// One model family as it is written out.
public struct ExportArchitecture: Equatable, Sendable {
    /// `general.architecture` and the prefix of the GGUF hyper-parameter keys (gguf-py's
    /// `Keys.LLM.*` with `{arch}` replaced), e.g. "llama" → `llama.context_length`.
    public var gguf: String
    /// config.json `architectures[0]` and `model_type`.
    public var hfArchitecture: String
    public var hfModelType: String
    /// How llama.cpp's converter stores the rows of the rotary tensors (`rotaryRows`): true for
    /// llama (q/k rows permuted so RoPE rotates adjacent pairs: `LlamaModel.permute`, the order
    /// the parameter store uses too), false for the families llama.cpp runs with NEOX RoPE
    /// (qwen2, qwen3), whose GGUF rows are Hugging Face's rotate-half order.
    public var ggufInterleavedQK: Bool

    public init(gguf: String, hfArchitecture: String, hfModelType: String, ggufInterleavedQK: Bool) {
        self.gguf = gguf
        self.hfArchitecture = hfArchitecture
        self.hfModelType = hfModelType
        self.ggufInterleavedQK = ggufInterleavedQK
    }

    public static let llama = ExportArchitecture(gguf: "llama", hfArchitecture: "LlamaForCausalLM", hfModelType: "llama",
                                                 ggufInterleavedQK: true)
    public static let qwen2 = ExportArchitecture(gguf: "qwen2", hfArchitecture: "Qwen2ForCausalLM", hfModelType: "qwen2",
                                                 ggufInterleavedQK: false)
    public static let qwen3 = ExportArchitecture(gguf: "qwen3", hfArchitecture: "Qwen3ForCausalLM", hfModelType: "qwen3",
                                                 ggufInterleavedQK: false)

    /// Every family that can be written. The qwen entries only take effect once the parameter
    /// store holds those families (their tensors: `rotaryRows` and `HFLlama`'s name table).
    public static let all: [ExportArchitecture] = [.llama, .qwen2, .qwen3]

    /// The family named `name` (a GGUF `general.architecture` or a config.json `model_type`).
    public static func named(_ name: String) -> ExportArchitecture? {
        all.first { $0.gguf == name || $0.hfModelType == name }
    }

    /// Block tensors (GGUF suffix after `blk.N.`) whose rows follow the rotary pairs of a head, and
    /// how many heads their rows split into. The store keeps them in the interleaved (adjacent
    /// pairs) order; Hugging Face and NEOX-RoPE GGUF files want rotate-half order. q/k biases
    /// (qwen2) have one row per output; q/k norms (qwen3) are one head of `headDim` values.
    public static let rotaryRows: [(suffix: String, heads: @Sendable (ModelConfig) -> Int)] = [
        ("attn_q.weight", { $0.heads }),
        ("attn_k.weight", { $0.kvHeads }),
        ("attn_q.bias", { $0.heads }),
        ("attn_k.bias", { $0.kvHeads }),
        ("attn_q_norm.weight", { _ in 1 }),
        ("attn_k_norm.weight", { _ in 1 }),
    ]

    /// The number of heads `ggufName`'s rows split into when they follow the rotary pairs, else nil.
    public static func rotaryHeads(ggufName name: String, config: ModelConfig) -> Int? {
        guard name.hasPrefix("blk.") else { return nil }
        return rotaryRows.first { name.hasSuffix("." + $0.suffix) }.map { $0.heads(config) }
    }
}

/// The tensor types `saveGGUF` writes.
public enum GGUFOutputType: String, CaseIterable, Sendable {
    case f32, f16, q8_0

    /// llama.cpp's `general.file_type` (LlamaFileType: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7).
    public var fileType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q8_0: return 7
        }
    }

    /// The type of a tensor of GGUF shape `shape`: 1-D tensors (norms, biases) stay F32, as
    /// llama.cpp's converter keeps them; a Q8_0 matrix whose rows are not a multiple of 32 is
    /// written F16 (the converter's fallback).
    public func tensorType(shape: [Int]) -> GGUFTensorType {
        if shape.count <= 1 { return .f32 }
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .q8_0: return shape[0] % 32 == 0 ? .q8_0 : .f16
        }
    }
}

extension ParameterStore {
    /// The model's hyper-parameters as GGUF metadata (gguf-py key names), `general.*` first.
    public func ggufModelMetadata(architecture a: ExportArchitecture, type: GGUFOutputType, name: String,
                                  contextLength: Int) -> [(key: String, value: GGUFValue)] {
        let c = config, p = a.gguf + "."
        var m: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(a.gguf)),
            ("general.type", .string("model")),
            ("general.name", .string(name)),
            ("general.alignment", .uint32(UInt32(GGUFWriter.alignment))),
            ("general.file_type", .uint32(type.fileType)),
            ("general.quantization_version", .uint32(2)),
            (p + "vocab_size", .uint32(UInt32(c.vocabSize))),
            (p + "context_length", .uint32(UInt32(contextLength))),
            (p + "embedding_length", .uint32(UInt32(c.dim))),
            (p + "block_count", .uint32(UInt32(c.layers))),
            (p + "feed_forward_length", .uint32(UInt32(c.ffnDim))),
            (p + "attention.head_count", .uint32(UInt32(c.heads))),
            (p + "attention.head_count_kv", .uint32(UInt32(c.kvHeads))),
            (p + "attention.layer_norm_rms_epsilon", .float32(c.normEps)),
            (p + "rope.freq_base", .float32(c.ropeBase)),
            (p + "rope.dimension_count", .uint32(UInt32(c.headDim))),
        ]
        if c.headDim * c.heads != c.dim {
            m.append((p + "attention.key_length", .uint32(UInt32(c.headDim))))
            m.append((p + "attention.value_length", .uint32(UInt32(c.headDim))))
        }
        if let r = c.ropeScaling, r.kind == .linear {
            m.append((p + "rope.scaling.type", .string("linear")))
            m.append((p + "rope.scaling.factor", .float32(Float(r.factor))))
        }
        return m
    }

    /// Why this store cannot be written as a GGUF file of family `a`, or nil when it can.
    public func ggufExportProblem(architecture a: ExportArchitecture) -> String? {
        let c = config
        if a.gguf != c.architecture.rawValue && !(a.gguf == "llama" && c.architecture == .mistral) {
            return "the model is a \(c.architecture.rawValue) network, not \(a.gguf)"
        }
        return nil
    }

    /// The family a store of architecture `arch` is exported as (mistral is written as llama,
    /// as llama.cpp's converter does for a network without a sliding window in use).
    public static func exportArchitecture(_ arch: ModelArchitecture) -> ExportArchitecture {
        ExportArchitecture.named(arch.rawValue) ?? .llama
    }

    /// Writes this store as a GGUF v3 file (`GGUFWriter`): the model metadata
    /// (`ggufModelMetadata`), then `tokenizer` (the `tokenizer.*` keys), then every tensor under
    /// its GGUF name and shape (the store's shape reversed), of `type` (1-D tensors F32). The
    /// rotary rows are in the family's GGUF order (`ExportArchitecture.ggufInterleavedQK`).
    /// `contextLength` defaults to this store's, else 8192.
    public func saveGGUF(path: String, architecture: ExportArchitecture = .llama, type: GGUFOutputType = .f32,
                         tokenizer: [(key: String, value: GGUFValue)], name: String = "ebft-dist export",
                         contextLength: Int? = nil) throws {
        let c = config
        if let problem = ggufExportProblem(architecture: architecture) {
            throw GGUFError.invalid(path: path, problem: "cannot write: \(problem)")
        }
        var metadata = ggufModelMetadata(architecture: architecture, type: type, name: name,
                                         contextLength: contextLength ?? self.contextLength ?? 8192)
        for t in tokenizer {
            guard t.key.hasPrefix("tokenizer.") else {
                throw GGUFError.invalid(path: path, problem: "cannot write: tokenizer metadata key '\(t.key)' does not start with 'tokenizer.'")
            }
            metadata.append(t)
        }
        let views = layout.views
        var specs = views.map { v -> GGUFTensorSpec in
            let shape = Array(v.shape.reversed())
            return GGUFTensorSpec(name: v.name, shape: shape, type: type.tensorType(shape: shape))
        }
        // Llama 3 (or explicit per-frequency) rope scaling: llama.cpp's `rope_freqs.weight`, the
        // divisor of each default inverse frequency, always F32 (as its converter writes it).
        var ropeDivisors: [Float] = []
        if let r = c.ropeScaling, r.kind != .linear {
            let half = c.headDim / 2
            let inv = (0..<half).map { Foundation.pow(Double(c.ropeBase), -2.0 * Double($0) / Double(c.headDim)) }
            ropeDivisors = r.divisors(inv).map(Float.init)
            specs.append(GGUFTensorSpec(name: "rope_freqs.weight", shape: [half], type: .f32))
        }
        let base = pointer
        try GGUFWriter.write(path: path, metadata: metadata, tensors: specs) { i, out in
            if i == views.count {
                out.update(from: ropeDivisors, count: ropeDivisors.count)
                return
            }
            let v = views[i]
            let src = UnsafePointer(base + v.offset)
            if !architecture.ggufInterleavedQK, let heads = ExportArchitecture.rotaryHeads(ggufName: v.name, config: c) {
                let rows = v.shape[0]
                HFLlama.permuteGGUFToHF(src, into: out, rows: rows, cols: v.count / rows, heads: heads)
            } else {
                out.update(from: src, count: v.count)
            }
        }
    }
}

/// Hugging Face safetensors dtypes `saveHF` writes.
public enum HFOutputDType: String, CaseIterable, Sendable {
    case f32, bf16

    /// The safetensors dtype name.
    public var safetensors: String { self == .f32 ? "F32" : "BF16" }
    /// config.json `torch_dtype`.
    public var torch: String { self == .f32 ? "float32" : "bfloat16" }

    /// Float32 → bfloat16 bits, rounded to nearest even (as PyTorch's `.to(torch.bfloat16)`);
    /// NaN stays a (quiet) NaN.
    public static func bf16Bits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if x.isNaN { return UInt16(b >> 16) | 0x40 }
        return UInt16((b + 0x7fff + ((b >> 16) & 1)) >> 16)
    }
}
