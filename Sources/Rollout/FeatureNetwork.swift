import Model

/// The frozen critic φ (spec §5): a copy of the initial weights run over the strided sequences
/// with the same key ranges as the policy; hidden states after layers ⌊0.25L⌋, ⌊0.5L⌋, ⌊0.75L⌋,
/// concatenated and L2-normalised per token, then pooled per block. It runs only as deep as its
/// deepest feature layer and never computes the vocabulary projection.
public final class FeatureNetwork {
    public let model: Transformer
    public let layers: [Int]
    public let pooling: Pooling
    /// One forward of the chunk shared by all samples (`StridedGeometry.sharedLayout`); false =
    /// one full strided sequence per sample, the chunk computed n times.
    public var sharedPrefix = true

    public init(model: Transformer, pooling: Pooling = .lastToken) {
        self.model = model
        self.layers = Features.featureLayers(L: model.config.layers)
        self.pooling = pooling
    }

    /// Feature width D = 3·d.
    public var width: Int { layers.count * model.config.dim }

    /// Pooled features of one chunk-group: the ground truth of every block ([K × D], from the
    /// chunk rows, which see only the chunk) and every sample's generated blocks ([n × K × D],
    /// sample i block k at (i·K + k)·D).
    public func features(chunk: [Int32], rollouts: ChunkRollouts, geometry g: StridedGeometry)
        -> (groundTruth: [Float], generated: [Float]) {
        if sharedPrefix { return sharedFeatures(chunk: chunk, rollouts: rollouts, geometry: g) }
        let n = rollouts.tokens.count, S = g.fullLength, d = model.config.dim, D = width, K = g.K
        var tokens = [Int32]()
        tokens.reserveCapacity(n * S)
        for i in 0..<n {
            precondition(rollouts.tokens[i].count == g.G * K, "rollout \(i) has \(rollouts.tokens[i].count) tokens")
            tokens += chunk
            tokens += rollouts.tokens[i]
        }
        let hidden = model.hiddenStates(tokens: tokens, layout: g.layout(tDone: g.G), layers: layers)
        var groundTruth = [Float]()
        var generated = [Float](repeating: 0, count: n * K * D)
        for i in 0..<n {
            let pooled = Features.withBuffers(hidden) { full -> PooledBlocks in
                let mine = full.map { UnsafeBufferPointer(rebasing: $0[(i * S * d)..<((i + 1) * S * d)]) }
                return Features.pooledBlocks(layers: mine, width: d, geometry: g, pooling: pooling)
            }
            if i == 0 { groundTruth = pooled.groundTruth }
            generated.replaceSubrange((i * K * D)..<((i + 1) * K * D), with: pooled.generated)
        }
        return (groundTruth, generated)
    }
}

extension FeatureNetwork {
    /// `features` over one shared-prefix sequence `chunk ++ gen₀ ++ … ++ gen_{n−1}`: every row
    /// sees what it sees in its own strided sequence, so the pooled features are the per-sample
    /// path's up to Float32 summation order, for P + n·G·K tokens instead of n·(P + G·K).
    func sharedFeatures(chunk: [Int32], rollouts: ChunkRollouts, geometry g: StridedGeometry)
        -> (groundTruth: [Float], generated: [Float]) {
        let n = rollouts.tokens.count, d = model.config.dim, D = width, K = g.K, G = g.G
        precondition(n >= 1, "a chunk-group needs at least one rollout")
        precondition(chunk.count == g.P, "chunk has \(chunk.count) tokens, expected P=\(g.P)")
        var tokens = chunk
        tokens.reserveCapacity(g.sharedLength(samples: n))
        for i in 0..<n {
            precondition(rollouts.tokens[i].count == G * K, "rollout \(i) has \(rollouts.tokens[i].count) tokens")
            tokens += rollouts.tokens[i]
        }
        let hidden = model.hiddenStates(tokens: tokens, layout: g.sharedLayout(samples: n), layers: layers)
        var groundTruth = [Float](repeating: 0, count: K * D)
        var generated = [Float](repeating: 0, count: n * K * D)
        Features.withBuffers(hidden) { bufs in
            groundTruth.withUnsafeMutableBufferPointer { o in
                for k in 0..<K {
                    Features.pool(layers: bufs, width: d, rows: Features.groundTruthRows(g, block: k), pooling: pooling,
                                  into: o.baseAddress! + k * D)
                }
            }
            generated.withUnsafeMutableBufferPointer { o in
                for i in 0..<n {
                    for k in 0..<K {
                        let rows = (0..<G).map { g.sharedIndex(sample: i, t: $0, k: k) }
                        Features.pool(layers: bufs, width: d, rows: rows, pooling: pooling, into: o.baseAddress! + (i * K + k) * D)
                    }
                }
            }
        }
        return (groundTruth, generated)
    }
}
