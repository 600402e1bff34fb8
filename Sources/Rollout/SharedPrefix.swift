import Model

/// The shared-prefix sequence of one chunk and `m` of its samples (issue 15): the chunk once,
/// then each sample's generated tokens (step-major, as in its own strided sequence),
///
///     chunk x[0 ..< P]  ++  gen₀[0 ..< G·K]  ++  gen₁  ++ … ++  gen_{m−1}       (length P + m·G·K)
///
/// Generated token (t, k) of sample i sits at `P + i·G·K + t·K + k`, sees the chunk prefix
/// `[0, a_k)`, the earlier tokens of its own block of the same sample and itself, at rotary
/// position `a_k + t` — exactly what it sees in the sample's own strided sequence (spec §4.3),
/// so every row's activations equal those of the per-sample layout and the chunk rows (which
/// see only the chunk) are computed once instead of m times. In the backward the chunk's
/// key/value gradients collect the contributions of all m continuations inside the attention
/// backward before the prefix is backpropagated through, once. With m = 1 this is
/// `layout(tDone: G)`.
extension StridedGeometry {
    /// `P + m·G·K`.
    public func sharedLength(samples m: Int) -> Int { P + m * G * K }

    /// Index of generated token (t, k) of sample `i` in the shared sequence: `P + i·G·K + t·K + k`.
    @inlinable public func sharedIndex(sample i: Int, t: Int, k: Int) -> Int { index(t: t, k: k) + i * G * K }

    /// The row whose logits predict generated token (t, k) of sample `i` (spec §4.5): the chunk
    /// row `a_k − 1` for `t = 0` (shared by all samples), the block's previous token of the same
    /// sample otherwise.
    public func sharedPredictionRow(sample i: Int, t: Int, k: Int) -> Int {
        t == 0 ? predictionRow(t: 0, k: k) : sharedIndex(sample: i, t: t - 1, k: k)
    }

    /// Attention of the shared sequence of `m` samples (see the type comment).
    public func sharedLayout(samples m: Int) -> AttentionLayout {
        precondition(m >= 1, "a shared-prefix sequence needs at least one sample, got \(m)")
        var l = AttentionLayout()
        l.reserve(sharedLength(samples: m))
        for q in 0 ..< P { l.append(position: q, prefixEnd: q + 1, extras: []) }
        var extras = [Int]()
        extras.reserveCapacity(G)
        for i in 0 ..< m {
            for t in 0 ..< G {
                for k in 0 ..< K {
                    extras.removeAll(keepingCapacity: true)
                    for tp in 0 ... t { extras.append(sharedIndex(sample: i, t: tp, k: k)) }
                    l.append(position: anchor(k) + t, prefixEnd: anchor(k), extras: extras)
                }
            }
        }
        return l
    }

    /// Splits `n` samples of one chunk into consecutive groups whose continuations have at
    /// most `maxTokens` tokens (G·K per sample; at least one sample per group, so a sample longer
    /// than the limit still runs, as in the per-sample path), sizes as even as possible. A group's
    /// sequence is its chunk plus its continuations, at most P + `maxTokens` rows: the chunk's
    /// activations are held beside the continuations' — what computing the chunk once costs —
    /// and it is recomputed once per group.
    public func sharedGroupSizes(samples n: Int, maxTokens: Int) -> [Int] {
        precondition(n >= 0, "sample count must be ≥ 0")
        guard n > 0 else { return [] }
        let fit = max(1, maxTokens / (G * K))
        let groups = (n + fit - 1) / fit
        return (0 ..< groups).map { n / groups + ($0 < n % groups ? 1 : 0) }
    }
}
