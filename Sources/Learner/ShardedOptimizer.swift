import Dispatch
import Model

/// Contiguous shards of a flat buffer of `count` elements over `shards` owners (ZeRO stage 1:
/// learner i keeps Adam's moments and does the update for shard i only). Shard i is
/// `boundaries[i] ..< boundaries[i + 1]` with `boundaries[i] = ⌊i·count/shards⌋`: sizes differ
/// by at most one element when `count` is not divisible.
public struct ShardLayout: Equatable, Sendable {
    public let count: Int
    public let boundaries: [Int]

    public init(count: Int, shards: Int) {
        precondition(count >= 0 && shards >= 1, "a shard layout needs count ≥ 0 and at least one shard")
        self.count = count
        boundaries = (0...shards).map { $0 * count / shards }
    }

    public var shards: Int { boundaries.count - 1 }

    public func range(_ i: Int) -> Range<Int> { boundaries[i] ..< boundaries[i + 1] }

    /// Elements per shard.
    public var counts: [Int] { (0..<shards).map { range($0).count } }

    /// Per shard, how many elements of `r` it holds (the counts of a reduce-scatter of `r`).
    public func counts(in r: Range<Int>) -> [Int] { (0..<shards).map { range($0).clamped(to: r).count } }
}

extension PolicyOptimizer {
    /// One sharded step (ZeRO stage 1). `params` is the whole flat parameter buffer, `shardGrads`
    /// the summed gradient of `shard` only (`adam.count` elements, e.g. from a reduce-scatter),
    /// and `reduce` sums a vector of Doubles element-wise over all shard owners (an all-reduce;
    /// the identity with one owner). Only `params[shard]` is updated; the caller all-gathers.
    ///
    /// The global norms are blocked as `GradClip` blocks the whole buffer (blocks of
    /// `GradClip.blockSize` from element 0 of the *whole* buffer): each owner sums its part of
    /// every block it touches, the per-block partial sums are all-reduced, and every owner adds
    /// the blocks in order. A block inside one shard has exactly the unsharded block's sum, so
    /// the results do not depend on the thread count and differ from the unsharded ones only by
    /// the rounding of the (at most shards − 1) blocks cut by a shard boundary. The element-wise
    /// update is the fused kernel's, which does not depend on where a slice starts.
    /// `shardGrads` is left as it was (the next reduce-scatter overwrites it).
    public mutating func shardedStep(params: UnsafeMutablePointer<Float>, shardGrads: UnsafeMutablePointer<Float>,
                                     shard: Range<Int>, totalCount: Int,
                                     reduce: (inout [Double]) throws -> Void) rethrows -> Result {
        precondition(maxGradNorm > 0, "maxGradNorm must be positive, got \(maxGradNorm)")
        precondition(shard.count == adam.count && shard.upperBound <= totalCount, "the shard does not match the optimizer")
        let th = max(1, threads ?? BLAS.threads)
        let lr = schedule.lr(step: adam.step)
        let bs = GradClip.blockSize
        let blocks = (totalCount + bs - 1) / bs
        // The global blocks this shard touches, and the local range of each.
        let firstBlock = shard.lowerBound / bs
        let pieces: [Range<Int>] = shard.isEmpty ? [] : (firstBlock ... (shard.upperBound - 1) / bs).map { b in
            (max(b * bs, shard.lowerBound) - shard.lowerBound) ..< (min((b + 1) * bs, shard.upperBound) - shard.lowerBound)
        }
        var g2 = [Double](repeating: 0, count: blocks)
        g2.withUnsafeMutableBufferPointer { out in
            let out = out, g = UnsafePointer(shardGrads)
            ShardedPieces.forEach(pieces.count, threads: th) { i in
                let p = pieces[i]
                out[firstBlock + i] = GradClip.blockSumOfSquares(g + p.lowerBound, count: p.count)
            }
        }
        try reduce(&g2)
        var sum = 0.0
        for s in g2 { sum += s }
        let norm = sum.squareRoot()
        guard norm.isFinite else {
            adam.step += 1
            return Result(gradNorm: norm, learningRate: lr, applied: false, momentNorm: nil)
        }
        adam.step += 1
        let k = AdamW.Coefficients(lr: Float(lr), step: adam.step, config: adam.config)
        let scale = GradClip.scale(norm: norm, maxNorm: maxGradNorm)
        var m2 = [Double](repeating: 0, count: blocks)
        adam.m.withUnsafeMutableBufferPointer { mb in
            adam.v.withUnsafeMutableBufferPointer { vb in
                m2.withUnsafeMutableBufferPointer { out in
                    let mp = mb.baseAddress!, vp = vb.baseAddress!, out = out
                    let pp = params + shard.lowerBound
                    ShardedPieces.forEach(pieces.count, threads: th) { i in
                        let p = pieces[i], s = p.lowerBound
                        AdamW.fusedKernel(params: pp + s, grads: shardGrads + s, m: mp + s, v: vp + s, count: p.count,
                                          gradScale: scale, zeroGrads: false, k: k)
                        out[firstBlock + i] = GradClip.blockSumOfSquares(mp + s, count: p.count)
                    }
                }
            }
        }
        try reduce(&m2)
        var msum = 0.0
        for s in m2 { msum += s }
        return Result(gradNorm: norm, learningRate: lr, applied: true, momentNorm: msum.squareRoot())
    }
}

/// Runs `body(i)` for i in 0..<n on up to `threads` threads, `GradClip.piece` items at a time
/// (who computes an item never changes its result).
enum ShardedPieces {
    static func forEach(_ n: Int, threads: Int, _ body: (Int) -> Void) {
        let per = GradClip.piece
        let chunks = (n + per - 1) / per
        let workers = max(1, min(threads, chunks))
        if workers == 1 { for i in 0..<n { body(i) }; return }
        let next = PieceCounter(count: chunks)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let c = next.take() { for i in (c * per) ..< min(n, (c + 1) * per) { body(i) } }
        }
    }
}
