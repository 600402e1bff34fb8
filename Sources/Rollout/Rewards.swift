/// Reward settings (spec §2.4–2.5, §6, §9).
public struct RewardOptions: Codable, Equatable, Sendable {
    /// α, `alignment_rew_coef` (1.0 in every released config).
    public var alpha: Double
    /// β, `diversity_rew_coef` (swept over {0, 0.5, 1}; 0.5 in the example script).
    public var beta: Double
    /// `use_whitening` (on in all headline configs).
    public var whitening: Bool
    /// How the ground truth is whitened; `.code` (default) is the reference implementation.
    public var gtWhitening: GTWhitening

    public init(alpha: Double = 1, beta: Double = 0.5, whitening: Bool = true, gtWhitening: GTWhitening = .code) {
        self.alpha = alpha; self.beta = beta; self.whitening = whitening; self.gtWhitening = gtWhitening
    }
}

/// Rewards and RLOO advantages of the `n` rollouts of one (group, block).
public struct BlockRewards: Equatable, Sendable {
    /// `2·cos(f̃_i, g̃_i)`.
    public var alignment: [Double]
    /// `2/(n−1)·Σ_{j≠i} ⟨f̃_i, f̃_j⟩` (0 when n = 1).
    public var diversity: [Double]
    /// `α·alignment − β·diversity`.
    public var reward: [Double]
    /// `reward − (α·b_align − β·b_div)` (RLOO, no std normalisation).
    public var advantage: [Double]
    /// Which whitening path was taken.
    public var whitening: WhiteningOutcome

    public var n: Int { reward.count }
    /// The feature-matching proxy `alignment − diversity/2` ("gt − div/2", spec §2.2).
    public var featureMatching: [Double] { zip(alignment, diversity).map { $0 - $1 / 2 } }
}

/// Rewards, whitening and RLOO advantages (spec §2.4–2.5, §6).
public enum Rewards {
    /// Rewards for one (group, block): `generated` is `[n × D]` (sample-major pooled features of
    /// the block's `n` rollouts), `groundTruth` is `[D]` (the block's pooled GT feature).
    /// `jitterSeed`/`jitterKey` key the noise of the whitening retry (use the run seed and an
    /// id unique to the (group, block), so the result is independent of the rank layout).
    public static func block(generated f: [Float], groundTruth g: [Float], n: Int, D: Int,
                             options: RewardOptions, jitterSeed: UInt64 = 0, jitterKey: UInt64 = 0) -> BlockRewards {
        precondition(n > 0 && D > 0, "need n > 0 rollouts of dimension D > 0")
        precondition(f.count == n * D, "generated features: \(f.count) values, expected n·D = \(n * D)")
        precondition(g.count == D, "ground-truth feature: \(g.count) values, expected D = \(D)")
        let w = options.whitening
            ? Whitening.whiten(rollouts: f, groundTruth: g, n: n, D: D, mode: options.gtWhitening,
                               jitterSeed: jitterSeed, jitterKey: jitterKey)
            : Whitening.unwhitened(rollouts: f, groundTruth: g, n: n, D: D)
        let X = w.rollouts, G = w.groundTruth

        var align = [Double](repeating: 0, count: n)
        var gram = [Double](repeating: 0, count: n * n)
        X.withUnsafeBufferPointer { x in
            G.withUnsafeBufferPointer { gt in
                for i in 0 ..< n {
                    align[i] = 2 * cosine(x.baseAddress! + i * D, gt.baseAddress! + i * D, D)
                    for j in i ..< n {
                        let d = dot(x.baseAddress! + i * D, x.baseAddress! + j * D, D)
                        gram[i * n + j] = d; gram[j * n + i] = d
                    }
                }
            }
        }
        var div = [Double](repeating: 0, count: n)
        if n > 1 {
            for i in 0 ..< n {
                var s = 0.0
                for j in 0 ..< n where j != i { s += gram[i * n + j] }
                div[i] = 2 / Double(n - 1) * s
            }
        }
        let reward = zip(align, div).map { options.alpha * $0 - options.beta * $1 }
        let adv = rloo(alignment: align, diversity: div, alpha: options.alpha, beta: options.beta)
        return BlockRewards(alignment: align, diversity: div, reward: reward, advantage: adv, whitening: w.outcome)
    }

    /// RLOO advantages (spec §6): `b_align_i = (Σ align − align_i)/(n−1)`,
    /// `b_div_i = (Σ div − 2·div_i)/(n−2)` if `β ≠ 0` and `n > 2` else 0,
    /// `A_i = α·align_i − β·div_i − (α·b_align_i − β·b_div_i)`.
    /// With `n = 1` there is no other sample: the baseline is 0 and `A = r`.
    public static func rloo(alignment a: [Double], diversity d: [Double], alpha: Double, beta: Double) -> [Double] {
        let n = a.count
        precondition(d.count == n && n > 0, "alignment and diversity must have the same positive length")
        let sa = a.reduce(0, +), sd = d.reduce(0, +)
        return (0 ..< n).map { i in
            let bAlign = n > 1 ? (sa - a[i]) / Double(n - 1) : 0
            let bDiv = (beta != 0 && n > 2) ? (sd - 2 * d[i]) / Double(n - 2) : 0
            return (alpha * a[i] - beta * d[i]) - (alpha * bAlign - beta * bDiv)
        }
    }

    /// Rewards for every block of one chunk-group. `generated` is `[n × K × D]` (sample `i`,
    /// block `k` at `(i·K + k)·D`), `groundTruth` is `[K × D]`. The whitening retry noise is
    /// keyed by `(jitterSeed, groupId·K + k)`.
    public static func group(generated f: [Float], groundTruth g: [Float], n: Int, K: Int, D: Int,
                             options: RewardOptions, jitterSeed: UInt64 = 0, groupId: UInt64 = 0) -> GroupRewards {
        precondition(f.count == n * K * D && g.count == K * D, "group rewards: expected generated [n×K×D] and GT [K×D]")
        var blocks = [BlockRewards]()
        blocks.reserveCapacity(K)
        var x = [Float](repeating: 0, count: n * D)
        for k in 0 ..< K {
            for i in 0 ..< n {
                let src = (i * K + k) * D
                for d in 0 ..< D { x[i * D + d] = f[src + d] }
            }
            blocks.append(block(generated: x, groundTruth: Array(g[k * D ..< (k + 1) * D]), n: n, D: D,
                                options: options, jitterSeed: jitterSeed, jitterKey: groupId &* UInt64(K) &+ UInt64(k)))
        }
        return GroupRewards(n: n, blocks: blocks)
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ D: Int) -> Double {
        var s = 0.0
        for d in 0 ..< D { s += Double(a[d]) * Double(b[d]) }
        return s
    }

    /// `⟨a,b⟩ / max(‖a‖·‖b‖, 1e-8)` (as `torch.nn.functional.cosine_similarity`): 0 for a zero vector.
    static func cosine(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ D: Int) -> Double {
        let ab = dot(a, b, D), aa = dot(a, a, D), bb = dot(b, b, D)
        return ab / max((aa * bb).squareRoot(), 1e-8)
    }
}

/// The block rewards of one chunk-group (`n` samples × `K` blocks).
public struct GroupRewards: Equatable, Sendable {
    public var n: Int
    /// One entry per block.
    public var blocks: [BlockRewards]

    public var K: Int { blocks.count }

    /// Advantage of sample `i`, block `k`.
    public func advantage(sample i: Int, block k: Int) -> Double { blocks[k].advantage[i] }

    /// The `K` block advantages of sample `i` (ready for `StridedGeometry.broadcastToAligned`).
    public func advantages(sample i: Int) -> [Float] { blocks.map { Float($0.advantage[i]) } }
}

/// Logged reward statistics (spec §10.1), kept as sums so ranks can add them up.
///
/// pass@1 = mean over all (group, block, sample); pass@n = mean over (group, block) of the max
/// over the n samples. Tracked for the reward, the alignment ("gt"), the diversity and the
/// feature-matching proxy `gt − div/2`.
public struct RewardStats: Equatable, Sendable, Codable {
    public var samples: Double = 0
    public var blocks: Double = 0
    public var sumReward = 0.0, sumAlignment = 0.0, sumDiversity = 0.0, sumFeatureMatching = 0.0
    public var sumMaxReward = 0.0, sumMaxAlignment = 0.0, sumMaxDiversity = 0.0, sumMaxFeatureMatching = 0.0
    /// Blocks whose whitening needed the jitter retry, or fell back to raw features.
    public var jitteredBlocks = 0.0, unwhitenedBlocks = 0.0

    public init() {}

    public mutating func add(_ b: BlockRewards, whiteningRequested: Bool = true) {
        let fm = b.featureMatching
        samples += Double(b.n); blocks += 1
        sumReward += b.reward.reduce(0, +); sumMaxReward += b.reward.max() ?? 0
        sumAlignment += b.alignment.reduce(0, +); sumMaxAlignment += b.alignment.max() ?? 0
        sumDiversity += b.diversity.reduce(0, +); sumMaxDiversity += b.diversity.max() ?? 0
        sumFeatureMatching += fm.reduce(0, +); sumMaxFeatureMatching += fm.max() ?? 0
        if b.whitening == .whitenedAfterJitter { jitteredBlocks += 1 }
        if whiteningRequested && b.whitening == .unwhitened { unwhitenedBlocks += 1 }
    }

    public mutating func add(_ g: GroupRewards, whiteningRequested: Bool = true) {
        for b in g.blocks { add(b, whiteningRequested: whiteningRequested) }
    }

    public mutating func merge(_ o: RewardStats) {
        let a = packed, b = o.packed
        self = RewardStats(packed: zip(a, b).map { $0 + $1 })
    }

    /// All sums as one array (for an all-reduce), and back.
    public var packed: [Double] {
        [samples, blocks, sumReward, sumAlignment, sumDiversity, sumFeatureMatching,
         sumMaxReward, sumMaxAlignment, sumMaxDiversity, sumMaxFeatureMatching, jitteredBlocks, unwhitenedBlocks]
    }

    public init(packed p: [Double]) {
        precondition(p.count == 12, "RewardStats packs 12 values, got \(p.count)")
        samples = p[0]; blocks = p[1]
        sumReward = p[2]; sumAlignment = p[3]; sumDiversity = p[4]; sumFeatureMatching = p[5]
        sumMaxReward = p[6]; sumMaxAlignment = p[7]; sumMaxDiversity = p[8]; sumMaxFeatureMatching = p[9]
        jitteredBlocks = p[10]; unwhitenedBlocks = p[11]
    }

    private func per(_ s: Double, _ c: Double) -> Double { c > 0 ? s / c : 0 }
    public var rewardPass1: Double { per(sumReward, samples) }
    public var rewardPassN: Double { per(sumMaxReward, blocks) }
    public var alignmentPass1: Double { per(sumAlignment, samples) }
    public var alignmentPassN: Double { per(sumMaxAlignment, blocks) }
    public var diversityPass1: Double { per(sumDiversity, samples) }
    public var diversityPassN: Double { per(sumMaxDiversity, blocks) }
    public var featureMatchingPass1: Double { per(sumFeatureMatching, samples) }
    public var featureMatchingPassN: Double { per(sumMaxFeatureMatching, blocks) }
}
