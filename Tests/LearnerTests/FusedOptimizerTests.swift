import Foundation
import XCTest
@testable import Learner

/// The fused optimizer pass (norm, then clip + AdamW + zeroing in one pass, across threads)
/// against a straightforward implementation of the published equations.
final class FusedOptimizerTests: XCTestCase {
    /// Three pieces of work for the threads (the last one short), a partial last block and a
    /// tail that is not a multiple of 8.
    let count = (2 * GradClip.piece + 5) * GradClip.blockSize + 1237

    func gradient(_ t: Int, scale: Float) -> [Float] {
        (0 ..< count).map { scale * Float(sin(Double($0 % 9973) * 0.37 + Double(t))) * Float(1 + $0 % 5) }
    }

    /// The reference: plain loops, one step of `torch.nn.utils.clip_grad_norm_` then
    /// `torch.optim.AdamW`, each quantity computed as the equations write it.
    struct Reference {
        var p: [Float], m: [Float], v: [Float]
        var step = 0
        let cfg: AdamWConfig

        mutating func update(grads g0: [Float], lr: Double, maxNorm: Double) -> Double {
            var sq = 0.0
            for x in g0 { sq += Double(x) * Double(x) }
            let norm = sq.squareRoot()
            let coef = maxNorm / (norm + 1e-6)
            let g = coef < 1 ? g0.map { $0 * Float(coef) } : g0
            step += 1
            let bc1 = 1 - pow(cfg.beta1, Double(step)), bc2 = 1 - pow(cfg.beta2, Double(step))
            for i in p.indices {
                p[i] *= Float(1 - lr * cfg.weightDecay)
                m[i] = Float(cfg.beta1) * m[i] + Float(1 - cfg.beta1) * g[i]
                v[i] = Float(cfg.beta2) * v[i] + Float(1 - cfg.beta2) * g[i] * g[i]
                let denom = v[i].squareRoot() / Float(bc2.squareRoot()) + Float(cfg.eps)
                p[i] -= Float(lr / bc1) * m[i] / denom
            }
            return norm
        }
    }

    /// Largest |a − b| relative to max(|b|, floor) over the elements (the floor keeps elements
    /// near zero, where a rounding of a larger term dominates, from counting as large); by
    /// default 10⁻³·max|b|.
    func worst(_ a: [Float], _ b: [Float], floor: Float? = nil) -> Float {
        let floor = floor ?? 1e-3 * (b.map(abs).max() ?? 0)
        return zip(a, b).map { abs($0 - $1) / max(abs($1), floor) }.max() ?? 0
    }

    func testFusedStepEqualsReferenceAdamW() {
        let cfg = AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01)
        let p0 = (0 ..< count).map { Float(cos(Double($0) * 0.01)) * 0.05 }
        var ref = Reference(p: p0, m: [Float](repeating: 0, count: count), v: [Float](repeating: 0, count: count), cfg: cfg)
        var opt = PolicyOptimizer(parameterCount: count, adam: cfg, schedule: .constantWithWarmup(peak: 1e-3, warmupSteps: 2),
                                  maxGradNorm: 1.0, threads: 2)
        var p = p0
        var lrSum = 0.0
        // Large gradients (clipped) and small ones (not clipped).
        for (t, scale) in [(0, Float(0.5)), (1, 1e-4), (2, 0.05), (3, 2e-5)] {
            let g = gradient(t, scale: scale)
            var gf = g
            let lr = opt.schedule.lr(step: opt.adam.step)
            let refNorm = ref.update(grads: g, lr: lr, maxNorm: 1.0)
            let r = p.withUnsafeMutableBufferPointer { pp in
                gf.withUnsafeMutableBufferPointer { opt.step(params: pp.baseAddress!, grads: $0.baseAddress!) }
            }
            XCTAssertTrue(r.applied)
            XCTAssertEqual(r.learningRate, lr)
            XCTAssertEqual(r.gradNorm, refNorm, accuracy: 1e-12 * refNorm, "step \(t)")
            XCTAssertEqual(t == 0 || t == 2, refNorm > 1, "the test means to clip steps 0 and 2 only")
            XCTAssertTrue(gf.allSatisfy { $0 == 0 }, "the gradient is zeroed for the next accumulation")
            // Float rounding: a few ulps (2⁻²³ ≈ 1.2e-7) relative.
            // A parameter near zero is the sum of the updates so far: each is at most about lr,
            // and rounds at that scale.
            lrSum += lr
            XCTAssertLessThan(worst(p, ref.p, floor: Float(lrSum)), 1e-6, "params after step \(t)")
            XCTAssertLessThan(worst(opt.adam.m, ref.m), 1e-6, "m after step \(t)")
            XCTAssertLessThan(worst(opt.adam.v, ref.v), 1e-6, "v after step \(t)")
            var m2 = 0.0
            for x in ref.m { m2 += Double(x) * Double(x) }
            XCTAssertEqual(try XCTUnwrap(r.momentNorm), m2.squareRoot(), accuracy: 1e-6 * m2.squareRoot())
            XCTAssertEqual(r.momentNorm, opt.adam.m.withUnsafeBufferPointer { GradClip.globalNorm($0.baseAddress!, count: count) })
        }
        XCTAssertEqual(opt.adam.step, 4)
    }

    /// 1, 2, 3 and 5 threads cut the buffer at different blocks: the same bits everywhere.
    func testResultsDoNotDependOnThreads() {
        var runs: [([Float], [Float], [Float], [Double])] = []
        for threads in [1, 2, 3, 5] {
            var opt = PolicyOptimizer(parameterCount: count, adam: AdamWConfig(weightDecay: 0.1),
                                      schedule: .constant(peak: 1e-2), maxGradNorm: 0.3, threads: threads)
            var p = (0 ..< count).map { Float($0 % 101) * 0.001 }
            var norms: [Double] = []
            for t in 0 ..< 3 {
                var g = gradient(t, scale: 0.01)
                let r = p.withUnsafeMutableBufferPointer { pp in
                    g.withUnsafeMutableBufferPointer { opt.step(params: pp.baseAddress!, grads: $0.baseAddress!) }
                }
                norms += [r.gradNorm, r.momentNorm ?? -1]
            }
            runs.append((p, opt.adam.m, opt.adam.v, norms))
        }
        for r in runs.dropFirst() {
            XCTAssertTrue(r.0 == runs[0].0 && r.1 == runs[0].1 && r.2 == runs[0].2, "parameters or moments differ")
            XCTAssertEqual(r.3, runs[0].3)
        }
    }

    func testBlockedSumOfSquares() {
        let g = gradient(0, scale: 1)
        var naive = 0.0
        for x in g { naive += Double(x) * Double(x) }
        let sums = [1, 2, 3, 4, 8].map { th in
            g.withUnsafeBufferPointer { GradClip.sumOfSquares($0.baseAddress!, count: count, threads: th) }
        }
        XCTAssertEqual(Set(sums).count, 1, "\(sums)")
        XCTAssertEqual(sums[0], naive, accuracy: 1e-12 * naive)
        // Fewer elements than a block, and none.
        let small: [Float] = [3, 4]
        XCTAssertEqual(small.withUnsafeBufferPointer { GradClip.globalNorm($0.baseAddress!, count: 2, threads: 4) }, 5)
        XCTAssertEqual(small.withUnsafeBufferPointer { GradClip.sumOfSquares($0.baseAddress!, count: 0, threads: 2) }, 0)
    }

    /// A non-finite gradient: no update, the step still counts, the gradient is zeroed.
    func testNonFiniteGradientSkipsTheUpdate() {
        var opt = PolicyOptimizer(parameterCount: count, adam: AdamWConfig(), schedule: .constant(peak: 1e-2),
                                  maxGradNorm: 1, threads: 2)
        var p = [Float](repeating: 1, count: count)
        var g = gradient(0, scale: 1)
        g[count - 3] = .nan
        let r = p.withUnsafeMutableBufferPointer { pp in
            g.withUnsafeMutableBufferPointer { opt.step(params: pp.baseAddress!, grads: $0.baseAddress!) }
        }
        XCTAssertFalse(r.applied)
        XCTAssertTrue(r.gradNorm.isNaN)
        XCTAssertNil(r.momentNorm)
        XCTAssertEqual(opt.adam.step, 1)
        XCTAssertTrue(p.allSatisfy { $0 == 1 } && opt.adam.m.allSatisfy { $0 == 0 })
        XCTAssertTrue(g.allSatisfy { $0 == 0 })
    }
}
