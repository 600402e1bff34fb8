import XCTest
import Foundation
@testable import Model

final class SamplingTests: XCTestCase {
    // logits [1, 2, 3, 0] at T = 1: p = [0.087144, 0.236883, 0.643914, 0.032059],
    // CDF in id order 0.087144, 0.324027, 0.967941, 1.
    let logits: [Float] = [1, 2, 3, 0]
    let p: [Double] = {
        let e = [exp(-2.0), exp(-1.0), 1.0, exp(-3.0)]
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }()

    func testInverseCDFInTokenOrder() {
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, uniform: 0.0).token, 0)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, uniform: 0.05).token, 0)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, uniform: 0.088).token, 1)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, uniform: 0.32).token, 1)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, uniform: 0.33).token, 2)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, uniform: 0.96).token, 2)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, uniform: 0.97).token, 3)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, uniform: 0.999999).token, 3)
        let r = Sampling.pick(logits: logits, temperature: 1, uniform: 0.5)
        XCTAssertEqual(r.token, 2)
        XCTAssertEqual(Double(r.logProb), log(p[2]), accuracy: 1e-6)   // -0.440190
    }

    func testTemperature() {
        // logits [0, 2 ln 3] / 2 = [0, ln 3] → p = [1/4, 3/4].
        let l: [Float] = [0, Float(2 * log(3.0))]
        XCTAssertEqual(Sampling.pick(logits: l, temperature: 2, uniform: 0.24).token, 0)
        let r = Sampling.pick(logits: l, temperature: 2, uniform: 0.26)
        XCTAssertEqual(r.token, 1)
        XCTAssertEqual(Double(r.logProb), log(0.75), accuracy: 1e-6)
        // At T = 1 the same uniform 0.26 falls in token 1 too, but with p = 9/10 for token 1.
        XCTAssertEqual(Double(Sampling.pick(logits: l, temperature: 1, uniform: 0.26).logProb), log(0.9), accuracy: 1e-6)
        XCTAssertEqual(Sampling.pick(logits: l, temperature: 1, uniform: 0.09).token, 0)
    }

    func testTopPNucleus() {
        // topP 0.7: sorted 2 (0.644), 1 (0.237) → mass 0.881 ≥ 0.7 → keep {1, 2};
        // renormalised p1 = 0.268941, p2 = 0.731059, walked in id order.
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 0.7, uniform: 0.0).token, 1)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 0.7, uniform: 0.26).token, 1)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 0.7, uniform: 0.28).token, 2)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 0.7, uniform: 0.9999).token, 2)
        // The log-prob is the untruncated policy log-prob, not the renormalised one.
        XCTAssertEqual(Double(Sampling.pick(logits: logits, temperature: 1, topP: 0.7, uniform: 0.1).logProb),
                       log(p[1]), accuracy: 1e-6)
        // topP 0.5 < p(top) → only the top token survives, whatever the uniform.
        for u in [0.0, 0.3, 0.99] {
            XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 0.5, uniform: u).token, 2)
        }
        // Tiny topP still keeps the top token.
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 1e-6, uniform: 0.99).token, 2)
        // Mass exactly reached by the first three sorted tokens: topP 0.95 keeps {0, 1, 2}
        // (0.644 + 0.237 + 0.087 = 0.968 ≥ 0.95), so token 3 is never picked.
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 0.95, uniform: 0.9999).token, 2)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 0.96, uniform: 0.9999).token, 2)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 1, topP: 0.97, uniform: 0.9999).token, 3)
    }

    func testTopPTiesPreferLowerIds() {
        // Two equal top tokens with p ≈ 0.4223 each: topP 0.3 keeps only the lower id.
        let l: [Float] = [0, 1, 1]
        for u in [0.0, 0.5, 0.99] {
            XCTAssertEqual(Sampling.pick(logits: l, temperature: 1, topP: 0.3, uniform: u).token, 1)
        }
        XCTAssertEqual(Sampling.pick(logits: l, temperature: 1, topP: 0.5, uniform: 0.49).token, 1)
        XCTAssertEqual(Sampling.pick(logits: l, temperature: 1, topP: 0.5, uniform: 0.51).token, 2)
    }

    func testGreedy() {
        let l: [Float] = [0.5, 3, 3, -1]
        let r = Sampling.pick(logits: l, temperature: 0, topP: 0.1, uniform: 0.99)
        XCTAssertEqual(r.token, 1)                                   // lower id among the maxima
        let lse = log(exp(0.5) + 2 * exp(3.0) + exp(-1.0))
        XCTAssertEqual(Double(r.logProb), 3 - lse, accuracy: 1e-6)
        XCTAssertEqual(Sampling.pick(logits: logits, temperature: 0, uniform: 0).token, 2)
    }

    func testMaskedLogitsAreNeverPicked() {
        let l: [Float] = [-.infinity, 0, -.infinity, 0, -.infinity]
        var seen = Set<Int32>()
        for i in 0..<100 { seen.insert(Sampling.pick(logits: l, temperature: 0.7, uniform: Double(i) / 100).token) }
        XCTAssertEqual(seen, [1, 3])
        XCTAssertEqual(Double(Sampling.pick(logits: l, temperature: 1, uniform: 0.3).logProb), log(0.5), accuracy: 1e-6)
    }

    func testFrequenciesFollowTheDistribution() {
        // Deterministic over a uniform grid: the fraction of grid points mapping to each token
        // equals its probability up to the grid spacing.
        let n = 10_000
        var counts = [Int](repeating: 0, count: 4)
        for i in 0..<n {
            counts[Int(Sampling.pick(logits: logits, temperature: 1, uniform: (Double(i) + 0.5) / Double(n)).token)] += 1
        }
        for v in 0..<4 { XCTAssertEqual(Double(counts[v]) / Double(n), p[v], accuracy: 2e-4) }
        // And with counter-RNG uniforms, roughly.
        counts = [0, 0, 0, 0]
        for t in 0..<20_000 {
            let u = CounterRNG.uniform(seed: 43, 0, 0, 0, UInt64(t))
            counts[Int(Sampling.pick(logits: logits, temperature: 1, uniform: u).token)] += 1
        }
        for v in 0..<4 { XCTAssertEqual(Double(counts[v]) / 20_000, p[v], accuracy: 0.015) }
    }

    /// The nucleus by a full sort of the whole vocabulary, as the specification states it.
    func naiveTopP(_ logits: [Float], T: Float, topP: Float, uniform: Double) -> Int32 {
        let m = logits.map { $0 / T }.max()!
        let e = logits.map { exp($0 / T - m) }
        let sum = e.reduce(0.0) { $0 + Double($1) }
        let order = e.indices.sorted { e[$0] > e[$1] || (e[$0] == e[$1] && $0 < $1) }
        var kept: [Int] = [], mass = 0.0
        for i in order { kept.append(i); mass += Double(e[i]); if mass >= Double(topP) * sum { break } }
        kept.sort()
        var cum = 0.0
        for i in kept { cum += Double(e[i]); if cum > uniform * mass { return Int32(i) } }
        return Int32(kept.last!)
    }

    func testTopPCutoffSearchMatchesFullSort() {
        var g = SplitMix64(seed: 99)
        let vocab = 1000
        let shapes: [[Float]] = [
            (0 ..< vocab).map { _ in Float(g.nextNormal() * 3) },                  // peaked-ish
            (0 ..< vocab).map { _ in Float(g.nextNormal() * 0.1) },                // nearly flat
            [0] + [Float](repeating: Float(log(1e-3)), count: vocab - 1),          // top + a long tail at 1e-3
            [0] + [Float](repeating: Float(log(1e-6)), count: vocab - 1),          // top + a tail below 1e-4
            (0 ..< vocab).map { Float($0 % 7) },                                   // many ties
        ]
        for (si, l) in shapes.enumerated() {
            for topP: Float in [0.1, 0.5, 0.9, 0.95, 0.999] {
                for T: Float in [0.6, 1] {
                    for k in 0 ..< 4 {
                        let u = CounterRNG.uniform(seed: 1, UInt64(si), UInt64(k), 0, 0)
                        XCTAssertEqual(Sampling.pick(logits: l, temperature: T, topP: topP, uniform: u).token,
                                       naiveTopP(l, T: T, topP: topP, uniform: u), "shape \(si) topP \(topP) T \(T) u \(u)")
                    }
                }
            }
        }
    }
}
