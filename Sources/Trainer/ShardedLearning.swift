import Distributed
import Foundation
import Learner
import Model
import Rollout

/// This learner's part of the optimizer when its state is sharded over the learners
/// (`shard-optimizer`, ZeRO stage 1): shard `index` of `layout`. Adam's moments for the shard
/// are in the trainer's `PolicyOptimizer` (of `range.count` elements); the shard's summed
/// gradient is reduce-scattered in place, into the shard's own range of the gradient buffer.
public final class OptimizerShard {
    public let layout: ShardLayout
    public let index: Int

    public init(count: Int, learners: Int, index: Int) {
        layout = ShardLayout(count: count, shards: learners)
        self.index = index
    }

    public var range: Range<Int> { layout.range(index) }
}

extension Trainer {
    /// Sharded learning (ZeRO stage 1): the backward with its gradient reduce-scattered bucket
    /// by bucket (in place: afterwards only the shard's range of the buffer holds a sum).
    /// Returns the learner's statistics; adds the bytes moved to `bytes`.
    func shardedBackward(_ learner: PolicyLearner, _ batch: [Experience], _ rl: RLVRRollout, chunks: Int,
                         shard: OptimizerShard, comm lc: Communicator, step t: Int,
                         times: inout PhaseTimes, bytes: inout Double) throws -> LearnerStats {
        let reducer = BucketedReduction.reduceScatter(comm: lc, grads: learner.grads, shard: shard)
        let ls = try times.time("backward") {
            let s = learn(learner, batch, rl, chunks: chunks) { l in reducer.blockReady(l) }
            try reducer.failure.map { throw $0 }
            return s
        }
        watchdog?.enter("gradient reduce-scatter", step: t, waitingOn: roles.learnerRanks)
        try times.time("allreduce") { try reducer.finish() }
        bytes += Double(learner.grads.count * 4)
        return ls
    }

    /// Clip and AdamW on this learner's shard (global norms from all-reduced per-block partial
    /// sums), the whole gradient buffer zeroed for the next step, then the updated parameters
    /// are all-gathered so every learner holds them all.
    func shardedUpdate(_ optimizer: inout PolicyOptimizer, grads: ParameterStore, shard: OptimizerShard,
                       comm lc: Communicator, step t: Int,
                       times: inout PhaseTimes, bytes: inout Double) throws -> PolicyOptimizer.Result {
        let p = context.policy.parameters
        let result = try times.time("optimizer") {
            let r = try optimizer.shardedStep(params: p.pointer, shardGrads: grads.pointer + shard.range.lowerBound,
                                              shard: shard.range, totalCount: p.count) { try lc.allReduce(&$0, op: .sum) }
            grads.pointer.update(repeating: 0, count: grads.count)
            return r
        }
        watchdog?.enter("parameter all-gather", step: t, waitingOn: roles.learnerRanks)
        try times.time("allreduce") { try lc.allGather(inPlace: p.pointer, counts: shard.layout.counts) }
        bytes += Double(p.count * 4)
        return result
    }

    /// Checkpoints of a sharded run hold the whole optimizer state, as unsharded ones do (any
    /// number of learners resumes them): learner 0 receives every other learner's moments
    /// (collective over the learners). Returns the full state on rank 0, nil elsewhere and when
    /// the optimizer is not sharded.
    func gatherShardedMoments() throws -> AdamW? {
        guard let shard, let lc = groups.learners, let opt = optimizer else { return nil }
        watchdog?.enter("gather optimizer state", step: stepsDone, waitingOn: lc.rank == 0 ? roles.learnerRanks : [0])
        defer { watchdog?.leave() }
        if lc.rank != 0 {
            for buffer in [opt.adam.m, opt.adam.v] {
                try buffer.withUnsafeBytes { try Self.sendInParts($0, to: 0, comm: lc) }
            }
            return nil
        }
        var full = AdamW(count: shard.layout.count, config: opt.adam.config)
        full.step = opt.adam.step
        let mine = shard.range
        full.m.replaceSubrange(mine, with: opt.adam.m)
        full.v.replaceSubrange(mine, with: opt.adam.v)
        for i in 1..<shard.layout.shards {
            let r = shard.layout.range(i)
            try full.m.withUnsafeMutableBufferPointer { try Self.receiveInParts($0.baseAddress! + r.lowerBound, count: r.count, from: i, comm: lc) }
            try full.v.withUnsafeMutableBufferPointer { try Self.receiveInParts($0.baseAddress! + r.lowerBound, count: r.count, from: i, comm: lc) }
        }
        return full
    }

    /// After learner 0 has loaded a checkpoint's whole optimizer state into its optimizer:
    /// every learner gets the parameters and its shard of the moments (learner 0 keeps its own
    /// shard only). Collective over the learners. Returns the learner's sharded optimizer.
    func scatterShardedState(shard: OptimizerShard, comm lc: Communicator) throws -> PolicyOptimizer? {
        guard var opt = optimizer else { return nil }
        let p = context.policy.parameters
        try lc.broadcast(p.pointer, count: p.count, root: 0)
        opt.adam.step = try lc.broadcast(opt.adam.step, root: 0)
        if lc.rank == 0 {
            precondition(opt.adam.count == shard.layout.count, "learner 0 must hold the whole optimizer state")
            for i in 1..<shard.layout.shards {
                let r = shard.layout.range(i)
                for buffer in [opt.adam.m, opt.adam.v] {
                    try buffer.withUnsafeBytes {
                        try Self.sendInParts(UnsafeRawBufferPointer(rebasing: $0[(r.lowerBound * 4)..<(r.upperBound * 4)]), to: i, comm: lc)
                    }
                }
            }
            opt.adam.m = Array(opt.adam.m[shard.range])
            opt.adam.v = Array(opt.adam.v[shard.range])
        } else {
            let n = shard.range.count
            opt.adam.m = [Float](repeating: 0, count: n)
            opt.adam.v = [Float](repeating: 0, count: n)
            try opt.adam.m.withUnsafeMutableBufferPointer { try Self.receiveInParts($0.baseAddress!, count: n, from: 0, comm: lc) }
            try opt.adam.v.withUnsafeMutableBufferPointer { try Self.receiveInParts($0.baseAddress!, count: n, from: 0, comm: lc) }
        }
        return opt
    }

    /// Point-to-point transfers of large float buffers, in messages of at most 64 Mi floats.
    static let partFloats = 1 << 26
    static let shardTag = 0

    static func sendInParts(_ bytes: UnsafeRawBufferPointer, to dest: Int, comm: Communicator) throws {
        let n = bytes.count / 4
        for r in stride(from: 0, to: n, by: partFloats).map({ $0 ..< min(n, $0 + partFloats) }) {
            try comm.send(UnsafeRawBufferPointer(rebasing: bytes[(r.lowerBound * 4)..<(r.upperBound * 4)]), to: dest, tag: shardTag)
        }
    }

    static func receiveInParts(_ dst: UnsafeMutablePointer<Float>, count n: Int, from source: Int, comm: Communicator) throws {
        for r in stride(from: 0, to: n, by: partFloats).map({ $0 ..< min(n, $0 + partFloats) }) {
            let m = try comm.receive(from: source, tag: shardTag, expectedSize: r.count * 4)
            m.bytes.withUnsafeBytes { UnsafeMutableRawPointer(dst + r.lowerBound).copyMemory(from: $0.baseAddress!, byteCount: r.count * 4) }
        }
    }
}
