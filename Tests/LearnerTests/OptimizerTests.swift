import XCTest
import Foundation
@testable import Learner

final class AdamWTests: XCTestCase {
    func testHandComputedTwoSteps() {
        // p = 1, g = 0.5 then −0.2, lr 0.1, betas (0.9, 0.95), eps 1e-8:
        // step 1: m̂ = 0.5, v̂ = 0.25 → p = 1 − 0.1·0.5/(0.5 + 1e-8) = 0.900000002
        // step 2: m = 0.025, v = 0.013875, bc1 = 0.19, bc2 = 0.0975 → p = 0.8651203448
        var opt = AdamW(count: 1)
        var p: [Float] = [1]
        opt.update(params: &p, grads: [0.5], lr: 0.1)
        XCTAssertEqual(p[0], 0.900000002, accuracy: 1e-6)
        XCTAssertEqual(opt.m[0], 0.05, accuracy: 1e-8)
        XCTAssertEqual(opt.v[0], 0.0125, accuracy: 1e-9)
        opt.update(params: &p, grads: [-0.2], lr: 0.1)
        XCTAssertEqual(p[0], 0.8651203448, accuracy: 1e-6)
        XCTAssertEqual(opt.m[0], 0.025, accuracy: 1e-8)
        XCTAssertEqual(opt.v[0], 0.013875, accuracy: 1e-9)
        XCTAssertEqual(opt.step, 2)

        // With decoupled weight decay 0.1: p ← p·(1 − 0.01) first → 0.890000002, 0.8462203448.
        var wd = AdamW(count: 1, config: AdamWConfig(weightDecay: 0.1))
        var q: [Float] = [1]
        wd.update(params: &q, grads: [0.5], lr: 0.1)
        XCTAssertEqual(q[0], 0.890000002, accuracy: 1e-6)
        wd.update(params: &q, grads: [-0.2], lr: 0.1)
        XCTAssertEqual(q[0], 0.8462203448, accuracy: 1e-6)
    }

    func testVectorPathMatchesScalarReference() {
        // 19 elements: two SIMD8 blocks and a scalar tail.
        let n = 19
        var p = (0 ..< n).map { Float(sin(Double($0))) }
        var ref = p.map(Double.init)
        var mr = [Double](repeating: 0, count: n), vr = mr
        let cfg = AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01)
        var opt = AdamW(count: n, config: cfg)
        for t in 1 ... 5 {
            let g = (0 ..< n).map { Float(cos(Double($0 * t)) * 0.1) }
            let lr = 1e-2 * Double(t)
            opt.update(params: &p, grads: g, lr: Float(lr))
            for i in 0 ..< n {
                let gi = Double(g[i])
                ref[i] *= 1 - lr * 0.01
                mr[i] = 0.9 * mr[i] + 0.1 * gi
                vr[i] = 0.95 * vr[i] + 0.05 * gi * gi
                ref[i] -= lr / (1 - pow(0.9, Double(t))) * mr[i] / (vr[i].squareRoot() / (1 - pow(0.95, Double(t))).squareRoot() + 1e-8)
            }
        }
        for i in 0 ..< n { XCTAssertEqual(Double(p[i]), ref[i], accuracy: 1e-5, "element \(i)") }
    }

    func testZeroLearningRateLeavesParametersButAdvancesMoments() {
        var opt = AdamW(count: 3)
        var p: [Float] = [1, 2, 3]
        opt.update(params: &p, grads: [1, 1, 1], lr: 0)
        XCTAssertEqual(p, [1, 2, 3])
        XCTAssertEqual(opt.m, [0.1, 0.1, 0.1])
        XCTAssertEqual(opt.step, 1)
    }
}

final class LRScheduleTests: XCTestCase {
    func testConstantWithWarmupFollowsHuggingFace() {
        let s = LRSchedule.constantWithWarmup(peak: 1e-6, warmupSteps: 4)
        XCTAssertEqual((0 ..< 7).map { s.lr(step: $0) }, [0, 0.25e-6, 0.5e-6, 0.75e-6, 1e-6, 1e-6, 1e-6])
        let none = LRSchedule.constantWithWarmup(peak: 2, warmupSteps: 0)
        XCTAssertEqual(none.lr(step: 0), 2)
        XCTAssertEqual(LRSchedule.constant(peak: 3).lr(step: 10), 3)
    }

    func testWarmupSteps() {
        XCTAssertEqual(LRSchedule.warmupSteps(maxSteps: 100), 3)
        XCTAssertEqual(LRSchedule.warmupSteps(maxSteps: 1563), 47)      // ceil(46.89)
        XCTAssertEqual(LRSchedule.warmupSteps(maxSteps: 34), 2)         // ceil(1.02)
        XCTAssertEqual(LRSchedule.warmupSteps(maxSteps: 33), 1)
        XCTAssertEqual(LRSchedule.warmupSteps(maxSteps: 0), 0)
    }

    func testCodable() throws {
        let s = LRSchedule.constantWithWarmup(peak: 1e-6, warmupSteps: 47)
        XCTAssertEqual(try JSONDecoder().decode(LRSchedule.self, from: JSONEncoder().encode(s)), s)
    }
}

final class GradClipTests: XCTestCase {
    func testNormAndClip() {
        var g: [Float] = [3, 4, 0, 0, 0]                                  // norm 5
        let n = GradClip.clip(&g, maxNorm: 1)
        XCTAssertEqual(n, 5)
        let s = Float(1 / (5 + 1e-6))
        XCTAssertEqual(g, [3 * s, 4 * s, 0, 0, 0])
        XCTAssertEqual(g.withUnsafeBufferPointer { GradClip.globalNorm($0.baseAddress!, count: 5) }, 1, accuracy: 1e-6)

        var small: [Float] = [0.3, 0.4]                                   // norm 0.5 ≤ 1: untouched
        XCTAssertEqual(GradClip.clip(&small, maxNorm: 1), 0.5, accuracy: 1e-7)
        XCTAssertEqual(small, [0.3, 0.4])

        var big = [Float](repeating: 1e-3, count: 1_000_001)              // exercises both loops
        let norm = GradClip.clip(&big, maxNorm: 0.5)
        XCTAssertEqual(norm, 1e-3 * 1_000_001.0.squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(big.withUnsafeBufferPointer { GradClip.globalNorm($0.baseAddress!, count: $0.count) }, 0.5, accuracy: 1e-5)
    }

    func testNonFiniteNormLeavesGradientAlone() {
        var g: [Float] = [1, .nan, 2]
        XCTAssert(GradClip.clip(&g, maxNorm: 1).isNaN)
        XCTAssertEqual(g[0], 1); XCTAssertEqual(g[2], 2)
        var h: [Float] = [.infinity, 1]
        XCTAssertEqual(GradClip.clip(&h, maxNorm: 1), .infinity)
    }
}
