import XCTest
@testable import Model

final class RandomTests: XCTestCase {
    func testUniformMomentsOverManyKeys() {
        // U[0,1): mean 1/2, variance 1/12. Keys vary in every word (not just the last).
        var sum = 0.0, sumSq = 0.0, lo = 1.0, hi = 0.0
        let n = 100_000
        for i in 0..<n {
            let u = CounterRNG.uniform(seed: 43, UInt64(i % 7), UInt64(i / 7 % 4), UInt64(i / 28 % 127), UInt64(i / 3556))
            XCTAssert(u >= 0 && u < 1)
            sum += u; sumSq += u * u; lo = min(lo, u); hi = max(hi, u)
        }
        let mean = sum / Double(n), variance = sumSq / Double(n) - mean * mean
        XCTAssertEqual(mean, 0.5, accuracy: 0.005)                  // σ_mean ≈ 0.0009
        XCTAssertEqual(variance, 1.0 / 12.0, accuracy: 0.002)
        XCTAssertLessThan(lo, 0.001); XCTAssertGreaterThan(hi, 0.999)
    }

    func testDecilesAreBalanced() {
        var counts = [Int](repeating: 0, count: 10)
        for t in 0..<50_000 { counts[Int(CounterRNG.uniform(seed: 1, 0, 0, 0, UInt64(t)) * 10)] += 1 }
        for c in counts { XCTAssertEqual(Double(c), 5000, accuracy: 300) }   // ≈ 4.4σ
    }

    func testNeighbouringKeysGiveDistinctOutputs() {
        var seen = Set<UInt64>()
        var total = 0
        for a in 0..<8 as Range<UInt64> { for b in 0..<8 as Range<UInt64> { for c in 0..<8 as Range<UInt64> { for d in 0..<8 as Range<UInt64> {
            seen.insert(CounterRNG.bits(seed: 0, a, b, c, d)); total += 1
        } } } }
        for s in 0..<64 as Range<UInt64> { seen.insert(CounterRNG.bits(seed: s + 1, 0, 0, 0, 0)); total += 1 }
        XCTAssertEqual(seen.count, total)
        // Swapping key words changes the output.
        XCTAssertNotEqual(CounterRNG.bits(seed: 7, 1, 2, 3, 4), CounterRNG.bits(seed: 7, 2, 1, 3, 4))
        XCTAssertNotEqual(CounterRNG.bits(seed: 7, 1, 2, 3, 4), CounterRNG.bits(seed: 7, 1, 2, 4, 3))
        // Pure function of the key.
        XCTAssertEqual(CounterRNG.uniform(seed: 9, 1, 2, 3, 4), CounterRNG.uniform(seed: 9, 1, 2, 3, 4))
    }

    func testAdjacentOutputsAreUncorrelated() {
        let n = 50_000
        var sxy = 0.0
        var prev = CounterRNG.uniform(seed: 3, 5, 0, 0, 0) - 0.5
        for t in 1..<n {
            let u = CounterRNG.uniform(seed: 3, 5, 0, 0, UInt64(t)) - 0.5
            sxy += prev * u; prev = u
        }
        XCTAssertEqual(sxy / Double(n) * 12, 0, accuracy: 0.02)    // lag-1 correlation
    }

    func testNormalMoments() {
        var s1 = 0.0, s2 = 0.0, s4 = 0.0
        let n = 100_000
        for i in 0..<n {
            let z = CounterRNG.normal(seed: 11, 1, UInt64(i), 0, 0)
            XCTAssert(z.isFinite)
            s1 += z; s2 += z * z; s4 += z * z * z * z
        }
        XCTAssertEqual(s1 / Double(n), 0, accuracy: 0.015)
        XCTAssertEqual(s2 / Double(n), 1, accuracy: 0.02)
        XCTAssertEqual(s4 / Double(n), 3, accuracy: 0.15)           // kurtosis of a Gaussian
    }

    func testSplitMix64KnownSequence() {
        // Reference values of SplitMix64 seeded with 0 (published test vector).
        var g = SplitMix64(seed: 0)
        XCTAssertEqual(g.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(g.next(), 0x6E78_9E6A_A1B9_65F4)
        XCTAssertEqual(g.next(), 0x06C4_5D18_8009_454F)
    }

    func testSplitMix64IntsAndPermutations() {
        var g = SplitMix64(seed: 5)
        var counts = [Int](repeating: 0, count: 3)
        for _ in 0..<30_000 { counts[g.nextInt(below: 3)] += 1 }
        for c in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 400) }
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42), c = SplitMix64(seed: 43)
        let p = a.permutation(100)
        XCTAssertEqual(p.sorted(), Array(0..<100))
        XCTAssertEqual(p, b.permutation(100))
        XCTAssertNotEqual(p, c.permutation(100))
        XCTAssertNotEqual(p, Array(0..<100))
        var d = SplitMix64(seed: 1)
        XCTAssertEqual(d.permutation(0), [])
        XCTAssertEqual(d.permutation(1), [0])
    }

    func testSamplingKeyAndDerivedStreams() {
        XCTAssertEqual(CounterRNG.samplingUniform(seed: 43, chunk: 5, sample: 2, block: 126, token: 7),
                       CounterRNG.uniform(seed: 43, 5, 2, 126, 7))
        let derived = CounterRNG.Stream.allCases.map { CounterRNG.derive(43, $0) }
        XCTAssertEqual(Set(derived).count, derived.count)
        XCTAssertFalse(derived.contains(43))
        XCTAssertNotEqual(CounterRNG.derive(43, .shuffle), CounterRNG.derive(44, .shuffle))
    }
}
