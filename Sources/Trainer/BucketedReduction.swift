import Distributed
import Model

/// Starts the gradient's reduction bucket by bucket (`ParameterLayout.backwardBuckets`) while the
/// backward runs, and completes it in `finish()`. Every learner starts the same buckets in the
/// same order: blocks L−1 … 0 (as the backward reports them, or all at `finish()` for a learner
/// that had nothing to train on), then the remainder. The reduction of one bucket is an
/// all-reduce, or (sharded optimizer) a reduce-scatter that leaves each learner the sum of its
/// shard's part of the bucket in place.
final class BucketedReduction {
    let grads: ParameterStore
    let buckets: [Range<Int>]
    let startBucket: (Range<Int>) throws -> PendingCollective
    var next = 0
    var pending: [PendingCollective] = []
    var failure: Error?

    init(grads: ParameterStore, startBucket: @escaping (Range<Int>) throws -> PendingCollective) {
        self.grads = grads
        self.startBucket = startBucket
        buckets = grads.layout.backwardBuckets
    }

    /// Every learner ends with the whole summed gradient.
    static func allReduce(comm: Communicator, grads: ParameterStore) -> BucketedReduction {
        BucketedReduction(grads: grads) { r in
            try comm.startAllReduce(grads.pointer + r.lowerBound, count: r.count, op: .sum)
        }
    }

    /// Each learner ends with the sum of its shard's part of every bucket, at the same offsets of
    /// `grads` (the rest of the buffer is left undefined).
    static func reduceScatter(comm: Communicator, grads: ParameterStore, shard: OptimizerShard) -> BucketedReduction {
        BucketedReduction(grads: grads) { r in
            let counts = shard.layout.counts(in: r)
            let own = counts[..<shard.index].reduce(0, +)
            return try comm.startReduceScatter(grads.pointer + r.lowerBound, counts: counts,
                                               into: grads.pointer + r.lowerBound + own, op: .sum)
        }
    }

    /// Block `l` is final: start every bucket up to and including it.
    func blockReady(_ l: Int) {
        start(through: grads.layout.layers.count - 1 - l)
        for p in pending { _ = try? p.test() }  // let MPI progress the earlier ones
    }

    func start(through index: Int) {
        while next <= index && next < buckets.count && failure == nil {
            do {
                pending.append(try startBucket(buckets[next]))
            } catch {
                failure = error
            }
            next += 1
        }
    }

    func finish() throws {
        start(through: buckets.count - 1)
        if let failure { throw failure }
        for p in pending { try p.wait() }
    }
}
