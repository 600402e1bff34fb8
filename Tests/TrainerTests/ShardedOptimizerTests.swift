import XCTest
@testable import Distributed
@testable import Learner
@testable import Model
@testable import Trainer

/// Optimizer state sharded over L learners (ZeRO stage 1, issue 14 item 6) against the
/// unsharded optimizer, both driven through the in-process communicator exactly as the trainer
/// drives them: per-rank gradients reduced bucket by bucket (all-reduce, or reduce-scatter into
/// each learner's shard), clip + AdamW (the whole buffer, or the shard with all-reduced
/// per-block norms), then the all-gather of the updated parameters.
final class ShardedOptimizerTests: XCTestCase {
    /// 3 blocks, V = 301: 111 872 parameters (padded layout), not divisible by 3, so 3 shards
    /// are uneven, and every shard boundary cuts a `GradClip` block.
    let config = ModelConfig(dim: 64, layers: 3, heads: 4, kvHeads: 2, headDim: 16, ffnDim: 96, vocabSize: 301)
    let steps = 4
    let adamConfig = AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)

    /// A deterministic value in [−1, 1) for (step, rank, element).
    static func noise(_ t: Int, _ r: Int, _ i: Int) -> Float {
        var x = UInt64(t &* 1_000_003 &+ r &* 7919 &+ 1) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(i) &* 0xBF58_476D_1CE4_E5B9
        x ^= x >> 31; x = x &* 0x94D0_49BB_1331_11EB; x ^= x >> 29
        return Float(x >> 40) / Float(1 << 23) - 1
    }

    /// Step t's gradient on rank r: noise times a per-step magnitude (steps 0 and 2 are clipped
    /// at max norm 1, steps 1 and 3 are not).
    func fillGradient(_ g: ParameterStore, step t: Int, rank r: Int) {
        let scale: Float = [0.05, 1e-4, 0.02, 2e-4][t % 4]
        for i in 0..<g.count { g.pointer[i] = scale * Self.noise(t, r, i) }
    }

    func initialParameters(_ p: ParameterStore) {
        for i in 0..<p.count { p.pointer[i] = 0.1 * Self.noise(99, 0, i) }
    }

    func simulateBackward(_ blocks: Int, _ ready: (Int) -> Void) { for l in (0..<blocks).reversed() { ready(l) } }

    struct Trace {
        var params: [[Float]] = []        // after each step
        var updates: [[Float]] = []       // |p_before − p_after| per step
        var gradNorms: [Double] = []
        var momentNorms: [Double] = []
        var m: [Float] = []
        var v: [Float] = []
        var allRanksEqual = true
    }

    func unsharded(learners L: Int) throws -> Trace {
        try LocalCommunicator.run(ranks: L) { comm -> Trace in
            let p = ParameterStore(config: self.config), g = ParameterStore(config: self.config)
            self.initialParameters(p)
            var opt = PolicyOptimizer(parameterCount: p.count, adam: self.adamConfig, schedule: .constant(peak: 1e-3),
                                      maxGradNorm: 1, threads: 2)
            var trace = Trace()
            for t in 0..<self.steps {
                self.fillGradient(g, step: t, rank: comm.rank)
                let reducer = BucketedReduction.allReduce(comm: comm, grads: g)
                self.simulateBackward(self.config.layers) { reducer.blockReady($0) }
                try reducer.finish()
                let before = Array(UnsafeBufferPointer(start: p.pointer, count: p.count))
                let r = opt.step(params: p, grads: g)
                let after = Array(UnsafeBufferPointer(start: p.pointer, count: p.count))
                trace.params.append(after)
                trace.updates.append(zip(before, after).map { abs($0 - $1) })
                trace.gradNorms.append(r.gradNorm)
                trace.momentNorms.append(r.momentNorm ?? .nan)
            }
            trace.m = opt.adam.m; trace.v = opt.adam.v
            return trace
        }[0]
    }

    func sharded(learners L: Int, threads: Int) throws -> Trace {
        let traces = try LocalCommunicator.run(ranks: L) { comm -> Trace in
            let p = ParameterStore(config: self.config), g = ParameterStore(config: self.config)
            self.initialParameters(p)
            let shard = OptimizerShard(count: p.count, learners: L, index: comm.rank)
            var opt = PolicyOptimizer(parameterCount: shard.range.count, adam: self.adamConfig,
                                      schedule: .constant(peak: 1e-3), maxGradNorm: 1, threads: threads)
            var trace = Trace()
            for t in 0..<self.steps {
                self.fillGradient(g, step: t, rank: comm.rank)
                let reducer = BucketedReduction.reduceScatter(comm: comm, grads: g, shard: shard)
                self.simulateBackward(self.config.layers) { reducer.blockReady($0) }
                try reducer.finish()
                let r = try opt.shardedStep(params: p.pointer, shardGrads: g.pointer + shard.range.lowerBound, shard: shard.range,
                                            totalCount: p.count) { try comm.allReduce(&$0, op: .sum) }
                try comm.allGather(inPlace: p.pointer, counts: shard.layout.counts)
                trace.params.append(Array(UnsafeBufferPointer(start: p.pointer, count: p.count)))
                trace.gradNorms.append(r.gradNorm)
                trace.momentNorms.append(r.momentNorm ?? .nan)
            }
            // The moments as a checkpoint gathers them: the shards in order.
            let ms = try comm.allGather(bytes: opt.adam.m.withUnsafeBytes { Array($0) })
            let vs = try comm.allGather(bytes: opt.adam.v.withUnsafeBytes { Array($0) })
            func floats(_ b: [[UInt8]]) -> [Float] {
                b.flatMap { bytes in bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
            }
            trace.m = floats(ms); trace.v = floats(vs)
            return trace
        }
        var t = traces[0]
        t.allRanksEqual = traces.allSatisfy { $0.params == t.params }
        return t
    }

    func testShardLayoutIsContiguousAndUneven() {
        let s = ShardLayout(count: 10, shards: 3)
        XCTAssertEqual(s.boundaries, [0, 3, 6, 10])
        XCTAssertEqual(s.counts, [3, 3, 4])
        XCTAssertEqual(s.counts(in: 2..<7), [1, 3, 1])
        XCTAssertEqual(s.counts(in: 6..<10), [0, 0, 4])
        XCTAssertEqual(ShardLayout(count: 5, shards: 1).counts, [5])
    }

    func testShardedEqualsUnshardedForOneTwoThreeLearners() throws {
        let count = ParameterStore(config: config).count
        // The flat layout pads every tensor to 16 floats, so the count is even; 3 shards are
        // uneven, and for 2 and 3 every boundary falls inside a `GradClip` block.
        XCTAssertTrue(count % 3 != 0, "the test needs uneven shards, count \(count)")
        for L in 2...3 {
            for b in ShardLayout(count: count, shards: L).boundaries.dropFirst().dropLast() {
                XCTAssertNotEqual(b % GradClip.blockSize, 0, "boundary \(b) of \(L) shards does not cut a block")
            }
        }
        XCTAssertGreaterThan(count, 4 * GradClip.blockSize, "shard boundaries must cut blocks")
        let eps32 = Double(Float.ulpOfOne), eps64 = Double.ulpOfOne
        for L in 1...3 {
            let ref = try unsharded(learners: L)
            for threads in [1, 3] {
                let got = try sharded(learners: L, threads: threads)
                XCTAssertTrue(got.allRanksEqual, "L = \(L): the learners' parameters differ after the all-gather")
                // The gradient sums are identical (both reduce in rank order); the norm's Double sum
                // differs only where a shard boundary cuts a block: bound n·ε64·Σ g² with n the
                // number of terms added (blocks + pieces), relative to the norm² (all terms ≥ 0).
                let blocks = (count + GradClip.blockSize - 1) / GradClip.blockSize
                for t in 0..<steps {
                    let n2 = ref.gradNorms[t] * ref.gradNorms[t]
                    let bound = Double(blocks + 2 * L) * eps64 * n2 / (2 * ref.gradNorms[t])
                    XCTAssertEqual(got.gradNorms[t], ref.gradNorms[t], accuracy: bound, "L = \(L), step \(t)")
                    if L == 1 { XCTAssertEqual(got.gradNorms[t], ref.gradNorms[t], "one shard is the unsharded sum") }
                }
                // Everything after the norm is element-wise and the same arithmetic wherever a slice
                // starts, and the summed gradients are identical: the only input that can differ is
                // the Float clip scale formed from the norm. Where every step's scale agrees, the
                // parameters and moments must agree bit for bit.
                let sameScales = (0..<steps).allSatisfy {
                    GradClip.scale(norm: got.gradNorms[$0], maxNorm: 1) == GradClip.scale(norm: ref.gradNorms[$0], maxNorm: 1)
                }
                XCTAssertEqual(got.m.count, count)
                if sameScales {
                    for t in 0..<steps { XCTAssertTrue(got.params[t] == ref.params[t], "L = \(L), threads \(threads), step \(t): parameters differ") }
                    XCTAssertTrue(got.m == ref.m && got.v == ref.v, "L = \(L): gathered moments differ from the unsharded ones")
                } else {
                    // A scale one ulp apart (relative ε32) moves m and √v by ε32 relative, so an
                    // update by at most 2ε32 of itself (4ε32 with rounding), and each step's result
                    // may round to the neighbouring Float (ulp(p) ≤ ε32·|p|); summed over the steps.
                    for t in 0..<steps {
                        for i in 0..<count {
                            var tol = 0.0
                            for s in 0...t { tol += 4 * eps32 * Double(ref.updates[s][i]) + eps32 * Double(abs(ref.params[s][i])) }
                            let d = abs(Double(got.params[t][i]) - Double(ref.params[t][i]))
                            if d > tol { XCTFail("L = \(L), threads \(threads), step \(t), element \(i): \(got.params[t][i]) vs \(ref.params[t][i]) (tolerance \(tol))"); return }
                        }
                    }
                }
                // ‖m‖ over the shards (for the gradient-noise estimate): the same blocked Double sum
                // of identical moments, so the norm's bound above applies.
                if sameScales {
                    for t in 0..<steps {
                        let bound = Double(blocks + 2 * L) * eps64 * ref.momentNorms[t] / 2
                        XCTAssertEqual(got.momentNorms[t], ref.momentNorms[t], accuracy: bound, "L = \(L), step \(t)")
                    }
                }
            }
        }
    }

    /// The test above would pass vacuously if nothing moved: the steps change the parameters,
    /// and the clipped steps were clipped.
    func testTheComparisonIsNotVacuous() throws {
        let ref = try unsharded(learners: 2)
        XCTAssertGreaterThan(ref.gradNorms[0], 1, "step 0 must be clipped")
        XCTAssertLessThan(ref.gradNorms[1], 1, "step 1 must not be clipped")
        XCTAssertGreaterThan(ref.updates[0].max()!, 1e-4)
    }
}
