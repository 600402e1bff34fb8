import Model

/// The frozen critic φ (spec §5): a copy of the initial weights run over the strided sequences
/// with the same key ranges as the policy; hidden states after layers ⌊0.25L⌋, ⌊0.5L⌋, ⌊0.75L⌋,
/// concatenated and L2-normalised per token, then pooled per block. It runs only as deep as its
/// deepest feature layer and never computes the vocabulary projection.
public final class FeatureNetwork {
    public let model: Transformer
    public let layers: [Int]
    public let pooling: Pooling

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
