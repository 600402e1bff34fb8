/// How the `G` token features of a block become one vector (spec §5.5).
public enum Pooling: String, Codable, Sendable, CaseIterable {
    /// The feature of the block's last token (`t = G − 1`), unit norm. Code tasks.
    case lastToken
    /// The mean of the `G` token features (norm ≤ 1). Translation.
    case mean
}

/// The pooled features of one strided sequence: one `D`-vector per block, `[K × D]` row-major.
public struct PooledBlocks: Equatable, Sendable {
    public var D: Int
    public var K: Int
    /// Ground-truth block `k` = pooled features of chunk positions `a_k ..< a_k + G`.
    public var groundTruth: [Float]
    /// Generated block `k` = pooled features of positions `P + t·K + k`, t = 0 ..< G.
    public var generated: [Float]
}

/// Feature-network outputs turned into block features (spec §5.3–5.5), on plain buffers.
///
/// Hidden states come as one `[S × d]` row-major buffer per selected layer (3 layers in the
/// `concat` method). A token's feature is the concatenation of its rows across the layers
/// (`D = layers·d`), L2-normalised jointly (one norm over all `D` values; a zero vector stays
/// zero: the norm is clamped at 1e-12 like `torch.nn.functional.normalize`). Normalisation is
/// per token, so it commutes with selecting rows: only the rows a pooling needs are touched.
public enum Features {
    /// The residual-stream layers whose outputs are concatenated: `max(1, min(L, ⌊q·L⌋))` for
    /// `q = 0.25, 0.5, 0.75` (hidden state `h_ℓ` = output of layer ℓ, `h_0` = embeddings).
    /// `L = 30 → [7, 15, 22]`, `L = 28 → [7, 14, 21]`, `L = 16 → [4, 8, 12]`.
    public static func featureLayers(L: Int) -> [Int] {
        precondition(L >= 1, "layer count must be positive, got \(L)")
        return [1, 2, 3].map { quarter in max(1, min(L, (quarter * L) / 4)) }
    }

    /// Writes the jointly normalised concatenated feature of token `row` into `out[0 ..< D]`.
    public static func normalizedFeature(layers: [UnsafeBufferPointer<Float>], width d: Int, row: Int,
                                         into out: UnsafeMutablePointer<Float>) {
        precondition(!layers.isEmpty && d > 0, "need at least one layer and a positive width")
        var sumSq = 0.0
        for (l, h) in layers.enumerated() {
            precondition((row + 1) * d <= h.count, "row \(row) beyond layer \(l)'s \(h.count / d) rows")
            let src = h.baseAddress! + row * d
            let dst = out + l * d
            for j in 0 ..< d {
                let x = src[j]
                dst[j] = x
                sumSq += Double(x) * Double(x)
            }
        }
        let scale = Float(1 / max(sumSq.squareRoot(), 1e-12))
        for j in 0 ..< layers.count * d { out[j] *= scale }
    }

    /// All `S` normalised token features, `[S × D]` with `D = layers.count · d`.
    public static func normalizedFeatures(layers: [[Float]], width d: Int) -> [Float] {
        precondition(!layers.isEmpty && d > 0, "need at least one layer and a positive width")
        let S = layers[0].count / d
        precondition(layers.allSatisfy { $0.count == S * d }, "layers must all be [S × d]")
        let D = layers.count * d
        var out = [Float](repeating: 0, count: S * D)
        withBuffers(layers) { bufs in
            out.withUnsafeMutableBufferPointer { o in
                for q in 0 ..< S { normalizedFeature(layers: bufs, width: d, row: q, into: o.baseAddress! + q * D) }
            }
        }
        return out
    }

    /// Pools the normalised features of `rows` (in block order, t = 0 ..< G) into `out[0 ..< D]`.
    public static func pool(layers: [UnsafeBufferPointer<Float>], width d: Int, rows: [Int],
                            pooling: Pooling, into out: UnsafeMutablePointer<Float>) {
        precondition(!rows.isEmpty, "a block has at least one token")
        let D = layers.count * d
        switch pooling {
        case .lastToken:
            normalizedFeature(layers: layers, width: d, row: rows[rows.count - 1], into: out)
        case .mean:
            var acc = [Double](repeating: 0, count: D)
            var tmp = [Float](repeating: 0, count: D)
            tmp.withUnsafeMutableBufferPointer { t in
                for r in rows {
                    normalizedFeature(layers: layers, width: d, row: r, into: t.baseAddress!)
                    for j in 0 ..< D { acc[j] += Double(t[j]) }
                }
            }
            let inv = 1 / Double(rows.count)
            for j in 0 ..< D { out[j] = Float(acc[j] * inv) }
        }
    }

    /// Rows of ground-truth block `k`: chunk positions `a_k ..< a_k + G` (spec §5.4).
    public static func groundTruthRows(_ g: StridedGeometry, block k: Int) -> [Int] { Array(g.groundTruth(k)) }

    /// Rows of generated block `k`: `P + t·K + k` for t = 0 ..< G (spec §5.4).
    public static func generatedRows(_ g: StridedGeometry, block k: Int) -> [Int] {
        (0 ..< g.G).map { g.index(t: $0, k: k) }
    }

    /// Pooled ground-truth and generated features of every block of one strided sequence whose
    /// per-layer hidden states (`[S × d]`, `S = L_full` after a forward with `tDone = G`) are
    /// given. With `includeGenerated == false` only the chunk rows are needed (`S >= P`).
    public static func pooledBlocks(layers: [UnsafeBufferPointer<Float>], width d: Int,
                                    geometry g: StridedGeometry, pooling: Pooling,
                                    includeGenerated: Bool = true) -> PooledBlocks {
        let D = layers.count * d
        var gt = [Float](repeating: 0, count: g.K * D)
        var gen = [Float](repeating: 0, count: includeGenerated ? g.K * D : 0)
        gt.withUnsafeMutableBufferPointer { o in
            for k in 0 ..< g.K {
                pool(layers: layers, width: d, rows: groundTruthRows(g, block: k), pooling: pooling, into: o.baseAddress! + k * D)
            }
        }
        if includeGenerated {
            gen.withUnsafeMutableBufferPointer { o in
                for k in 0 ..< g.K {
                    pool(layers: layers, width: d, rows: generatedRows(g, block: k), pooling: pooling, into: o.baseAddress! + k * D)
                }
            }
        }
        return PooledBlocks(D: D, K: g.K, groundTruth: gt, generated: gen)
    }

    /// Array convenience for `pooledBlocks(layers:width:geometry:pooling:includeGenerated:)`.
    public static func pooledBlocks(layers: [[Float]], width d: Int, geometry g: StridedGeometry,
                                    pooling: Pooling, includeGenerated: Bool = true) -> PooledBlocks {
        withBuffers(layers) { pooledBlocks(layers: $0, width: d, geometry: g, pooling: pooling, includeGenerated: includeGenerated) }
    }

    /// Runs `body` with unsafe buffer views of every array (nested, so all stay valid).
    public static func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) -> R) -> R {
        func go(_ i: Int, _ acc: [UnsafeBufferPointer<Float>]) -> R {
            if i == arrays.count { return body(acc) }
            return arrays[i].withUnsafeBufferPointer { go(i + 1, acc + [$0]) }
        }
        return go(0, [])
    }
}
