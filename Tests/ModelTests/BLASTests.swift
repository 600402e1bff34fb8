import XCTest
@testable import Model

/// The sgemm wrapper against a naive product, for every transpose combination, including the
/// single-row case that it routes to sgemv.
final class BLASTests: XCTestCase {
    func testSgemmMatchesNaive() {
        var rng = SplitMix64(seed: 11)
        for (m, n, k) in [(1, 7, 5), (1, 1, 9), (3, 4, 5), (1, 16, 1), (2, 1, 3)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = (0..<(m * k)).map { _ in Float(rng.nextUniform() - 0.5) }
                    let b = (0..<(k * n)).map { _ in Float(rng.nextUniform() - 0.5) }
                    var c = (0..<(m * n)).map { _ in Float(rng.nextUniform()) }
                    let c0 = c
                    let lda = transA ? m : k, ldb = transB ? k : n
                    BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b,
                               ldb: ldb, beta: 2, c: &c, ldc: n)
                    for i in 0..<m {
                        for j in 0..<n {
                            var s: Float = 0
                            for p in 0..<k {
                                let av = transA ? a[p * lda + i] : a[i * lda + p]
                                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                                s += av * bv
                            }
                            XCTAssertEqual(c[i * n + j], 0.5 * s + 2 * c0[i * n + j], accuracy: 1e-5,
                                           "m\(m) n\(n) k\(k) tA \(transA) tB \(transB)")
                        }
                    }
                }
            }
        }
    }
}
