import XCTest
import Foundation
@testable import Rollout

final class FeaturesTests: XCTestCase {
    func testFeatureLayers() {
        XCTAssertEqual(Features.featureLayers(L: 30), [7, 15, 22])
        XCTAssertEqual(Features.featureLayers(L: 28), [7, 14, 21])
        XCTAssertEqual(Features.featureLayers(L: 16), [4, 8, 12])
        XCTAssertEqual(Features.featureLayers(L: 2), [1, 1, 1])
        XCTAssertEqual(Features.featureLayers(L: 1), [1, 1, 1])
        XCTAssertEqual(Features.featureLayers(L: 5), [1, 2, 3])
    }

    func testJointNormalisationAndConcatOrder() {
        // 3 tokens, d = 2. Token 0: layers (3,0),(0,0),(0,4) → norm 5.
        // Token 1: all zero → stays zero. Token 2: (1,1),(1,1),(1,1) → each 1/√6.
        let l0: [Float] = [3, 0, 0, 0, 1, 1]
        let l1: [Float] = [0, 0, 0, 0, 1, 1]
        let l2: [Float] = [0, 4, 0, 0, 1, 1]
        let f = Features.normalizedFeatures(layers: [l0, l1, l2], width: 2)
        XCTAssertEqual(f.count, 18)
        XCTAssertEqual(Array(f[0 ..< 6]), [0.6, 0, 0, 0, 0, 0.8])
        XCTAssertEqual(Array(f[6 ..< 12]), [0, 0, 0, 0, 0, 0])
        for x in f[12 ..< 18] { XCTAssertEqual(x, Float(1 / 6.0.squareRoot()), accuracy: 1e-7) }
    }

    /// P = 4, c = 1, G = 2, s = 1 → K = 2, L_full = 8; one layer, d = 2.
    func testBlockSlicingAndPooling() throws {
        let g = try StridedGeometry(P: 4, c: 1, G: 2, s: 1)
        XCTAssertEqual(g.K, 2); XCTAssertEqual(g.fullLength, 8)
        // Row q holds the unit vector (cos θ_q, sin θ_q) with θ_q = q·π/16, scaled by (q+1) so
        // normalisation matters.
        var h = [Float]()
        for q in 0 ..< 8 {
            let th = Double(q) * .pi / 16
            h += [Float(cos(th) * Double(q + 1)), Float(sin(th) * Double(q + 1))]
        }
        func unit(_ q: Int) -> [Float] { let th = Double(q) * .pi / 16; return [Float(cos(th)), Float(sin(th))] }
        XCTAssertEqual(Features.groundTruthRows(g, block: 0), [1, 2])
        XCTAssertEqual(Features.groundTruthRows(g, block: 1), [2, 3])
        XCTAssertEqual(Features.generatedRows(g, block: 0), [4, 6])
        XCTAssertEqual(Features.generatedRows(g, block: 1), [5, 7])

        let last = Features.pooledBlocks(layers: [h], width: 2, geometry: g, pooling: .lastToken)
        XCTAssertEqual(last.D, 2); XCTAssertEqual(last.K, 2)
        assertClose(last.groundTruth, unit(2) + unit(3))
        assertClose(last.generated, unit(6) + unit(7))

        let mean = Features.pooledBlocks(layers: [h], width: 2, geometry: g, pooling: .mean)
        func avg(_ a: Int, _ b: Int) -> [Float] { zip(unit(a), unit(b)).map { ($0 + $1) / 2 } }
        assertClose(mean.groundTruth, avg(1, 2) + avg(2, 3))
        assertClose(mean.generated, avg(4, 6) + avg(5, 7))
        // Mean-pooled features are not unit norm (normalise, then pool).
        let n0 = (mean.generated[0] * mean.generated[0] + mean.generated[1] * mean.generated[1]).squareRoot()
        XCTAssertLessThan(n0, 0.99)

        // GT-only needs just the chunk rows.
        let gtOnly = Features.pooledBlocks(layers: [Array(h[0 ..< 8])], width: 2, geometry: g, pooling: .lastToken,
                                           includeGenerated: false)
        XCTAssertEqual(gtOnly.groundTruth, last.groundTruth)
        XCTAssertEqual(gtOnly.generated, [])
    }

    func assertClose(_ a: [Float], _ b: [Float], _ tol: Float = 1e-6, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: tol, file: file, line: line) }
    }
}
