import Model

/// A geometry that cannot be used for strided sampling (spec §4.1).
public enum StridedGeometryError: Error, Equatable, CustomStringConvertible {
    case notPositive(P: Int, c: Int, G: Int, s: Int)
    case tooShort(P: Int, c: Int, G: Int)
    case notDivisible(P: Int, c: Int, G: Int, s: Int)

    public var description: String {
        switch self {
        case let .notPositive(P, c, G, s):
            return "strided geometry needs positive sizes: chunk length P=\(P), context c=\(c), block length G=\(G), stride s=\(s)"
        case let .tooShort(P, c, G):
            return "strided geometry: context c=\(c) plus block length G=\(G) exceeds the chunk length P=\(P); use c + G <= P"
        case let .notDivisible(P, c, G, s):
            return "strided geometry: (P - G - c) = \(P - G - c) is not a multiple of the stride s=\(s) (P=\(P), c=\(c), G=\(G)); choose sizes with (P - G - c) mod s == 0 so the last block ends at P"
        }
    }
}

/// Where everything sits in a strided EBFT sequence (spec §4).
///
/// A chunk `x` of length `P` yields `K = (P − G − c)/s + 1` blocks with anchors
/// `a_k = c + k·s`. The strided sequence `z` has length `L_full = P + G·K`: the chunk, then
/// the generated tokens step-major, token `t` of block `k` at `P + t·K + k`.
public struct StridedGeometry: Equatable, Hashable, Sendable, Codable {
    /// Chunk length.
    public let P: Int
    /// First anchor (shortest context).
    public let c: Int
    /// Block length (tokens generated per block).
    public let G: Int
    /// Stride between anchors.
    public let s: Int
    /// Number of blocks.
    public let K: Int

    public init(P: Int, c: Int, G: Int, s: Int) throws {
        guard P > 0, c > 0, G > 0, s > 0 else { throw StridedGeometryError.notPositive(P: P, c: c, G: G, s: s) }
        guard c + G <= P else { throw StridedGeometryError.tooShort(P: P, c: c, G: G) }
        guard (P - G - c) % s == 0 else { throw StridedGeometryError.notDivisible(P: P, c: c, G: G, s: s) }
        self.P = P; self.c = c; self.G = G; self.s = s
        K = (P - G - c) / s + 1
    }

    private enum CodingKeys: String, CodingKey { case P, c, G, s }

    public init(from decoder: Decoder) throws {
        let v = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(P: v.decode(Int.self, forKey: .P), c: v.decode(Int.self, forKey: .c),
                      G: v.decode(Int.self, forKey: .G), s: v.decode(Int.self, forKey: .s))
    }

    public func encode(to encoder: Encoder) throws {
        var v = encoder.container(keyedBy: CodingKeys.self)
        try v.encode(P, forKey: .P); try v.encode(c, forKey: .c)
        try v.encode(G, forKey: .G); try v.encode(s, forKey: .s)
    }

    /// Length of a full strided sequence, `P + G·K`.
    public var fullLength: Int { P + G * K }

    /// Anchor of block `k`: the first ground-truth position it predicts, `c + k·s`.
    @inlinable public func anchor(_ k: Int) -> Int { c + k * s }

    /// The ground-truth positions of block `k` in the chunk, `a_k ..< a_k + G`.
    public func groundTruth(_ k: Int) -> Range<Int> {
        precondition(k >= 0 && k < K, "block \(k) out of range 0..<\(K)")
        return anchor(k) ..< anchor(k) + G
    }

    /// Index in the strided sequence of generated token `t` of block `k`: `P + t·K + k`.
    @inlinable public func index(t: Int, k: Int) -> Int {
        precondition(t >= 0 && t < G && k >= 0 && k < K, "token (t=\(t), k=\(k)) out of range G=\(G), K=\(K)")
        return P + t * K + k
    }

    /// The (t, k) of a generated index `q >= P`.
    public func token(at q: Int) -> (t: Int, k: Int) {
        precondition(q >= P && q < fullLength, "index \(q) is not a generated token (P=\(P), L_full=\(fullLength))")
        return ((q - P) / K, (q - P) % K)
    }

    /// The largest rotary position a strided sequence uses: the chunk's last token (P − 1) or
    /// the last block's last generated token (a_{K−1} + G − 1, which is also P − 1 because the
    /// last block ends at P). A model needs a context length of at least `maxPosition + 1`.
    public var maxPosition: Int { max(P - 1, anchor(K - 1) + G - 1) }

    /// Rotary position of index `q`: `q` in the chunk, `a_k + t` for generated token (t, k).
    public func position(of q: Int) -> Int {
        if q < P { return q }
        let (t, k) = token(at: q)
        return anchor(k) + t
    }

    /// The row whose logits predict generated token (t, k) (spec §4.5): the prefix's last
    /// token `a_k − 1` for `t = 0`, the block's previous token `P + (t−1)·K + k` otherwise.
    public func predictionRow(t: Int, k: Int) -> Int {
        precondition(t >= 0 && t < G && k >= 0 && k < K, "token (t=\(t), k=\(k)) out of range G=\(G), K=\(K)")
        return t == 0 ? anchor(k) - 1 : P + (t - 1) * K + k
    }

    /// For a whole strided sequence (spec §4.5): element `q` (q = 0 ..< L_full − 1) is the row
    /// whose logits predict the label `z[q + 1]`. Rows `0 ..< P−1` predict the chunk (plain
    /// shift); the next `K` predict step-0 tokens from `a_k − 1`; the rest predict
    /// `z[q + 1]` from `q + 1 − K`.
    public func alignedPredictionRows() -> [Int] {
        var rows = [Int]()
        rows.reserveCapacity(fullLength - 1)
        for q in 0 ..< P - 1 { rows.append(q) }
        for k in 0 ..< K { rows.append(anchor(k) - 1) }
        for label in P + K ..< fullLength { rows.append(label - K) }
        return rows
    }

    /// The aligned list as (logits row, label index) pairs: `(alignedPredictionRows()[q], q + 1)`
    /// for q = 0 ..< L_full − 1 — the row whose logits score the token at `z[label]`.
    public func alignedPairs() -> [(row: Int, label: Int)] {
        alignedPredictionRows().enumerated().map { (row: $0.element, label: $0.offset + 1) }
    }

    /// Index into the aligned label list (length `L_full − 1`) of generated token (t, k):
    /// `P − 1 + t·K + k` — where its log-prob and its advantage sit (spec §6).
    @inlinable public func alignedIndex(t: Int, k: Int) -> Int { index(t: t, k: k) - 1 }

    /// Attention over the first `P + tDone·K` tokens of a strided sequence (spec §4.3–4.4):
    /// chunk rows plain causal; generated token (t, k) sees its prefix `[0, a_k)`, the
    /// earlier tokens of its own block and itself, at rotary position `a_k + t`.
    public func layout(tDone: Int) -> AttentionLayout {
        precondition(tDone >= 0 && tDone <= G, "tDone \(tDone) out of range 0...\(G)")
        var l = AttentionLayout()
        l.reserve(P + tDone * K)
        for q in 0 ..< P { l.append(position: q, prefixEnd: q + 1, extras: []) }
        var extras = [Int]()
        extras.reserveCapacity(G)
        for t in 0 ..< tDone {
            for k in 0 ..< K {
                extras.removeAll(keepingCapacity: true)
                for tp in 0 ... t { extras.append(P + tp * K + k) }
                l.append(position: anchor(k) + t, prefixEnd: anchor(k), extras: extras)
            }
        }
        return l
    }

    /// Extends a per-position array over the chunk (length `P`: answer mask, doc ids, …) to
    /// the whole strided sequence (spec §4.7): generated token (t, k) gets `m[a_k + t]`.
    public func extend<T>(_ m: [T]) -> [T] {
        precondition(m.count == P, "per-position array has \(m.count) entries, expected P=\(P)")
        var out = m
        out.reserveCapacity(fullLength)
        for t in 0 ..< G { for k in 0 ..< K { out.append(m[anchor(k) + t]) } }
        return out
    }

    /// Broadcasts block values (`[K]`, e.g. the advantages of one sample) to the aligned label
    /// list (length `L_full − 1`): `v[k]` at `P − 1 + t·K + k` for every t, `fill` elsewhere
    /// (the chunk predictions).
    public func broadcastToAligned<T>(_ v: [T], fill: T) -> [T] {
        precondition(v.count == K, "block array has \(v.count) entries, expected K=\(K)")
        var out = [T](repeating: fill, count: P - 1)
        out.reserveCapacity(fullLength - 1)
        for _ in 0 ..< G { out.append(contentsOf: v) }
        return out
    }
}
