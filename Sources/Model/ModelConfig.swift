/// Shape of a Llama-family decoder (RMSNorm, RoPE on adjacent pairs, grouped-query attention,
/// SwiGLU feed-forward, optionally tied embeddings).
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

    public init(dim: Int, layers: Int, heads: Int, kvHeads: Int, headDim: Int, ffnDim: Int,
                vocabSize: Int, ropeBase: Float = 10000, normEps: Float = 1e-5,
                tiedEmbeddings: Bool = true) {
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
        2 * dim + qDim * dim + 2 * kvDim * dim + dim * qDim + 3 * ffnDim * dim
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
        if !(ropeBase > 1) || !ropeBase.isFinite { throw fail("ropeBase (\(ropeBase)) must be a finite number > 1") }
        if !(normEps > 0) || !normEps.isFinite { throw fail("normEps (\(normEps)) must be a finite number > 0") }
        if vocabSize > Int(Int32.max) { throw fail("vocabSize \(vocabSize) too large") }
        for (name, value) in [("dim", dim), ("layers", layers), ("heads", heads), ("kvHeads", kvHeads),
                              ("headDim", headDim), ("ffnDim", ffnDim)] where value > Self.maxSize {
            throw fail("\(name) = \(value) is absurd (more than \(Self.maxSize))")
        }
        // In Double: the Int products of absurd sizes could overflow.
        let d = Double(dim), q = Double(heads * headDim), kv = Double(kvHeads * headDim)
        let perLayer = 2 * d + 2 * q * d + 2 * kv * d + 3 * Double(ffnDim) * d
        let total = Double(vocabSize) * d * (tiedEmbeddings ? 1 : 2) + Double(layers) * perLayer + d
        if total > Double(Self.maxParameters) {
            throw fail("\(layers) layers of d=\(dim), ffn=\(ffnDim), vocab \(vocabSize) make "
                       + "\(total) parameters, more than \(Self.maxParameters) (4 TiB of Float32)")
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
