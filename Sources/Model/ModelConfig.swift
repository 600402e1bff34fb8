import Foundation

/// The model families the one transformer implements. They differ only in options of
/// `ModelConfig` (biases, q/k norms, rope scaling, head size); the family names the
/// Hugging Face `model_type` / GGUF `general.architecture` a model is read from and written as.
public enum ModelArchitecture: String, Codable, CaseIterable, Sendable {
    case llama, qwen2, qwen3, mistral
}

/// Rotary frequency scaling (Hugging Face `rope_scaling` / `rope_parameters`).
public struct RopeScaling: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// Every inverse frequency divided by `factor` (position interpolation).
        case linear
        /// Llama 3.1: low frequencies divided by `factor`, high ones kept, the band between
        /// interpolated (`lowFreqFactor`, `highFreqFactor`, `originalMaxPositionEmbeddings`).
        case llama3
        /// Each inverse frequency i divided by `factors[i]`: llama.cpp's `rope_freqs.weight`
        /// tensor read from a GGUF file whose factors match no parametrised kind.
        case factors
    }
    public var kind: Kind
    public var factor: Double
    public var lowFreqFactor: Double
    public var highFreqFactor: Double
    public var originalMaxPositionEmbeddings: Int
    /// The per-frequency divisors of kind `factors` (nil for the other kinds).
    public var factors: [Double]? = nil

    public init(kind: Kind, factor: Double, lowFreqFactor: Double = 1, highFreqFactor: Double = 4,
                originalMaxPositionEmbeddings: Int = 8192) {
        self.kind = kind
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }

    /// Scales the default inverse frequencies `base^(−2i/hd)` (index i = rotary pair), as
    /// transformers' `_compute_linear_scaling_rope_parameters` / `_compute_llama3_parameters`.
    public func apply(_ inv: [Double]) -> [Double] {
        switch kind {
        case .linear:
            return inv.map { $0 / factor }
        case .llama3:
            let old = Double(originalMaxPositionEmbeddings)
            let lowWavelen = old / lowFreqFactor, highWavelen = old / highFreqFactor
            return inv.map { f in
                let wavelen = 2 * Double.pi / f
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / factor }
                let smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
                return (1 - smooth) * f / factor + smooth * f
            }
        case .factors:
            let ff = factors ?? []
            return inv.indices.map { i in i < ff.count ? inv[i] / ff[i] : inv[i] }
        }
    }

    /// Explicit per-frequency divisors (llama.cpp's `rope_freqs.weight`).
    public static func perFrequency(_ factors: [Double]) -> RopeScaling {
        var r = RopeScaling(kind: .factors, factor: factors.max() ?? 1)
        r.factors = factors
        return r
    }

    /// The divisor of each default inverse frequency, `inv[i] / apply(inv)[i]`: what llama.cpp's
    /// converter writes as `rope_freqs.weight` for this scaling.
    public func divisors(_ inv: [Double]) -> [Double] {
        zip(inv, apply(inv)).map { $0 / $1 }
    }

    /// The Llama 3 parametrisation that reproduces per-frequency divisors `ff` (read as Float32,
    /// possibly computed in Float32 by the writer) of the default inverse frequencies `inv`, if
    /// one with the published low/high frequency factors 1 and 4 does, else nil. The factor is the
    /// largest divisor; the original context is solved from a divisor inside the interpolated
    /// band when there is one (else the Llama 3 releases' contexts and powers of two are tried:
    /// all that satisfy the divisors give the same frequencies).
    public static func llama3Matching(divisors ff: [Double], inv: [Double]) -> RopeScaling? {
        guard ff.count == inv.count, let factor = ff.max(), factor > 1 else { return nil }
        let low = 1.0, high = 4.0
        var candidates: [Int] = []
        for (d, f) in zip(ff, inv) where d > 1 && d < factor {
            // 1/d = (1 − s)/factor + s  and  s = (old/wavelen − low)/(high − low).
            let s = (1 / d - 1 / factor) / (1 - 1 / factor)
            let old = (2 * Double.pi / f) * (low + s * (high - low))
            if old.isFinite, old >= 1, old < 1e9 { candidates.append(Int(old.rounded())) }
            break
        }
        candidates += [8192, 4096, 2048, 16384, 32768, 131072] + (4...24).map { 1 << $0 }
        for original in candidates {
            let r = RopeScaling(kind: .llama3, factor: factor, lowFreqFactor: low, highFreqFactor: high,
                                originalMaxPositionEmbeddings: original)
            // A Float32 writer: each divisor within a few ulps (2⁻²³ relative) of the exact one.
            if zip(r.divisors(inv), ff).allSatisfy({ abs($0 - $1) <= 1e-6 * $0 }) { return r }
        }
        return nil
    }

    func validate() throws {
        func fail(_ s: String) -> ModelConfigError { ModelConfigError(message: "rope scaling: " + s) }
        if kind == .factors {
            guard let ff = factors, !ff.isEmpty, ff.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw fail("per-frequency factors must be finite and positive")
            }
            return
        }
        guard factor.isFinite, factor >= 1 else { throw fail("factor \(factor) must be a finite number ≥ 1") }
        if kind == .llama3 {
            guard lowFreqFactor.isFinite, highFreqFactor.isFinite, lowFreqFactor > 0, highFreqFactor > lowFreqFactor else {
                throw fail("low_freq_factor \(lowFreqFactor) and high_freq_factor \(highFreqFactor) must satisfy "
                           + "0 < low < high")
            }
            guard originalMaxPositionEmbeddings > 0 else {
                throw fail("original_max_position_embeddings \(originalMaxPositionEmbeddings) must be positive")
            }
        }
    }
}

/// Shape of a decoder of the Llama family (RMSNorm, RoPE on adjacent pairs, grouped-query
/// attention, SwiGLU feed-forward, optionally tied embeddings) with the options of Qwen2
/// (q/k/v biases), Qwen3 (per-head q/k RMSNorm), Llama 3 (rope scaling, attention/MLP biases)
/// and Mistral. Decodes configs written before the options existed (they default off).
public struct ModelConfig: Codable, Equatable, Sendable {
    public var dim: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffnDim: Int
    public var vocabSize: Int
    public var ropeBase: Float
    public var normEps: Float
    /// When true the output head is `token_embd.weight`; otherwise `output.weight` [vocab, dim].
    public var tiedEmbeddings: Bool
    /// The family the model is read from and written as (no effect on the maths by itself).
    public var architecture: ModelArchitecture = .llama
    /// Biases on the q, k and v projections (Qwen2; Llama `attention_bias`).
    public var qkvBias: Bool = false
    /// Bias on the attention output projection (Llama `attention_bias`).
    public var outputBias: Bool = false
    /// Biases on gate, up and down projections (Llama `mlp_bias`).
    public var mlpBias: Bool = false
    /// Per-head RMSNorm of q and k (weights of length `headDim`) before RoPE (Qwen3).
    public var qkNorm: Bool = false
    /// Rotary frequency scaling, nil for none.
    public var ropeScaling: RopeScaling? = nil

    public init(dim: Int, layers: Int, heads: Int, kvHeads: Int, headDim: Int, ffnDim: Int,
                vocabSize: Int, ropeBase: Float = 10000, normEps: Float = 1e-5,
                tiedEmbeddings: Bool = true, architecture: ModelArchitecture = .llama,
                qkvBias: Bool = false, outputBias: Bool = false, mlpBias: Bool = false, qkNorm: Bool = false,
                ropeScaling: RopeScaling? = nil) {
        self.dim = dim
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.ffnDim = ffnDim
        self.vocabSize = vocabSize
        self.ropeBase = ropeBase
        self.normEps = normEps
        self.tiedEmbeddings = tiedEmbeddings
        self.architecture = architecture
        self.qkvBias = qkvBias
        self.outputBias = outputBias
        self.mlpBias = mlpBias
        self.qkNorm = qkNorm
        self.ropeScaling = ropeScaling
    }

    enum CodingKeys: String, CodingKey {
        case dim, layers, heads, kvHeads, headDim, ffnDim, vocabSize, ropeBase, normEps, tiedEmbeddings
        case architecture, qkvBias, outputBias, mlpBias, qkNorm, ropeScaling
    }

    /// The options added after the first checkpoints default to off when absent.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(dim: try c.decode(Int.self, forKey: .dim), layers: try c.decode(Int.self, forKey: .layers),
                  heads: try c.decode(Int.self, forKey: .heads), kvHeads: try c.decode(Int.self, forKey: .kvHeads),
                  headDim: try c.decode(Int.self, forKey: .headDim), ffnDim: try c.decode(Int.self, forKey: .ffnDim),
                  vocabSize: try c.decode(Int.self, forKey: .vocabSize),
                  ropeBase: try c.decode(Float.self, forKey: .ropeBase),
                  normEps: try c.decode(Float.self, forKey: .normEps),
                  tiedEmbeddings: try c.decode(Bool.self, forKey: .tiedEmbeddings),
                  architecture: try c.decodeIfPresent(ModelArchitecture.self, forKey: .architecture) ?? .llama,
                  qkvBias: try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? false,
                  outputBias: try c.decodeIfPresent(Bool.self, forKey: .outputBias) ?? false,
                  mlpBias: try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false,
                  qkNorm: try c.decodeIfPresent(Bool.self, forKey: .qkNorm) ?? false,
                  ropeScaling: try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling))
    }

    /// The inverse rotary frequency of each pair i < headDim/2: `ropeBase^(−2i/headDim)`, scaled
    /// by `ropeScaling`.
    public var ropeInverseFrequencies: [Double] {
        let half = headDim / 2
        let inv = (0..<half).map { Foundation.pow(Double(ropeBase), -2.0 * Double($0) / Double(headDim)) }
        return ropeScaling?.apply(inv) ?? inv
    }

    /// SmolLM2-135M(-Instruct).
    public static let smolLM2_135M = ModelConfig(
        dim: 576, layers: 30, heads: 9, kvHeads: 3, headDim: 64, ffnDim: 1536,
        vocabSize: 49152, ropeBase: 100000, normEps: 1e-5, tiedEmbeddings: true)

    /// A tiny model for unit tests.
    public static func tiny(dim: Int = 32, layers: Int = 2, heads: Int = 4, kvHeads: Int = 2,
                            ffnDim: Int = 48, vocabSize: Int = 61, ropeBase: Float = 10000,
                            tiedEmbeddings: Bool = true) -> ModelConfig {
        ModelConfig(dim: dim, layers: layers, heads: heads, kvHeads: kvHeads,
                    headDim: dim / heads, ffnDim: ffnDim, vocabSize: vocabSize,
                    ropeBase: ropeBase, normEps: 1e-5, tiedEmbeddings: tiedEmbeddings)
    }

    public var qDim: Int { heads * headDim }
    public var kvDim: Int { kvHeads * headDim }
    /// Query heads per KV head.
    public var groupSize: Int { heads / kvHeads }

    /// Parameters of one transformer block.
    public var parametersPerLayer: Int {
        2 * dim + qDim * dim + 2 * kvDim * dim + dim * qDim + 3 * ffnDim * dim + biasesAndNormsPerLayer
    }

    /// The optional per-block vectors: biases and q/k norm weights.
    public var biasesAndNormsPerLayer: Int {
        (qkvBias ? qDim + 2 * kvDim : 0) + (outputBias ? dim : 0) + (mlpBias ? 2 * ffnDim + dim : 0)
            + (qkNorm ? 2 * headDim : 0)
    }

    /// All parameters (the flat buffer's length).
    public var parameterCount: Int {
        vocabSize * dim * (tiedEmbeddings ? 1 : 2) + layers * parametersPerLayer + dim
    }

    /// Parameters that take part in matrix products per token (blocks' linear layers and the
    /// output head; not the embedding lookup or the norms).
    public var matmulParameters: Int {
        layers * (qDim * dim + 2 * kvDim * dim + dim * qDim + 3 * ffnDim * dim) + vocabSize * dim
    }

    /// Forward FLOPs per token: `2·matmulParameters` plus attention (`QKᵀ` and `P·V`:
    /// `4·layers·heads·headDim` per visible key). `contextLength` is the mean number of keys a
    /// query sees (≈ S/2 for causal attention over S tokens). Training (forward + backward)
    /// costs 3× this.
    public func flopsPerToken(contextLength: Int) -> Double {
        2 * Double(matmulParameters) + 4 * Double(layers * heads * headDim) * Double(contextLength)
    }

    /// Checks that the shape is consistent; the message says which field is wrong.
    public func validate() throws {
        func fail(_ s: String) -> ModelConfigError { ModelConfigError(message: s) }
        if dim <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0 || ffnDim <= 0
            || vocabSize <= 0 {
            throw fail("all sizes must be positive: \(self)")
        }
        if heads % kvHeads != 0 {
            throw fail("heads (\(heads)) must be a multiple of kvHeads (\(kvHeads))")
        }
        if headDim % 2 != 0 { throw fail("headDim (\(headDim)) must be even for RoPE") }
        try ropeScaling?.validate()
        if let r = ropeScaling, r.kind == .factors, r.factors?.count != headDim / 2 {
            throw fail("rope scaling: \(r.factors?.count ?? 0) per-frequency factors for headDim/2 = \(headDim / 2) frequencies")
        }
        if let problem = familyProblem { throw fail(problem) }
        if !(ropeBase > 1) || !ropeBase.isFinite { throw fail("ropeBase (\(ropeBase)) must be a finite number > 1") }
        if !(normEps > 0) || !normEps.isFinite { throw fail("normEps (\(normEps)) must be a finite number > 0") }
        if vocabSize > Int(Int32.max) { throw fail("vocabSize \(vocabSize) too large") }
        for (name, value) in [("dim", dim), ("layers", layers), ("heads", heads), ("kvHeads", kvHeads),
                              ("headDim", headDim), ("ffnDim", ffnDim)] where value > Self.maxSize {
            throw fail("\(name) = \(value) is absurd (more than \(Self.maxSize))")
        }
        // In Double: the Int products of absurd sizes could overflow.
        let d = Double(dim), q = Double(heads * headDim), kv = Double(kvHeads * headDim)
        let perLayer = 2 * d + 2 * q * d + 2 * kv * d + 3 * Double(ffnDim) * d + Double(biasesAndNormsPerLayer)
        let total = Double(vocabSize) * d * (tiedEmbeddings ? 1 : 2) + Double(layers) * perLayer + d
        if total > Double(Self.maxParameters) {
            throw fail("\(layers) layers of d=\(dim), ffn=\(ffnDim), vocab \(vocabSize) make "
                       + "\(total) parameters, more than \(Self.maxParameters) (4 TiB of Float32)")
        }
    }

    /// Why the options are not a network of `architecture` (as its Hugging Face modelling code
    /// builds it), or nil: llama has q/k/v/o biases together (`attention_bias`) and MLP biases
    /// (`mlp_bias`); qwen2 q/k/v biases only; qwen3 q/k norms and optionally `attention_bias`;
    /// mistral none of them.
    public var familyProblem: String? {
        let has = "qkvBias \(qkvBias), outputBias \(outputBias), mlpBias \(mlpBias), qkNorm \(qkNorm)"
        switch architecture {
        case .llama where qkvBias != outputBias || qkNorm:
            return "a llama model has q/k/v and output biases together and no q/k norm (\(has))"
        case .qwen2 where !qkvBias || outputBias || mlpBias || qkNorm:
            return "a qwen2 model has q/k/v biases and no other bias or q/k norm (\(has))"
        case .qwen3 where !qkNorm || qkvBias != outputBias || mlpBias:
            return "a qwen3 model has q/k norms, q/k/v/o biases together or none, no MLP bias (\(has))"
        case .mistral where qkvBias || outputBias || mlpBias || qkNorm:
            return "a mistral model has no biases and no q/k norm (\(has))"
        default:
            return nil
        }
    }

    /// The largest size of any one dimension (and of the layer count) `validate` accepts.
    public static let maxSize = 1 << 24
    /// The largest parameter count `validate` accepts (2⁴⁰ floats = 4 TiB).
    public static let maxParameters = 1 << 40
}

public struct ModelConfigError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "invalid model config: \(message)" }
}
