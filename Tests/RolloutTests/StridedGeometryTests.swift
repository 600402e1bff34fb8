import XCTest
import Foundation
@testable import Rollout
import Model

final class StridedGeometryTests: XCTestCase {
    /// The dense mask of spec §4.3, written as literally as the pseudo-code (tests only).
    func naiveMask(_ g: StridedGeometry, tDone: Int) -> [[Bool]] {
        let S = g.P + tDone * g.K
        var M = [[Bool]](repeating: [Bool](repeating: false, count: S), count: S)
        for q in 0 ..< g.P { for key in 0 ... q { M[q][key] = true } }
        for t in 0 ..< tDone {
            for k in 0 ..< g.K {
                let q = g.P + t * g.K + k
                let e = min(g.c + k * g.s, g.P - g.G)
                for key in 0 ..< e { M[q][key] = true }
                M[q][q] = true
                for tp in 0 ..< t { M[q][g.P + tp * g.K + k] = true }
            }
        }
        return M
    }

    func testToyExampleOfSection4_10() throws {
        let g = try StridedGeometry(P: 12, c: 2, G: 2, s: 2)
        XCTAssertEqual(g.K, 5)
        XCTAssertEqual(g.fullLength, 22)
        XCTAssertEqual((0 ..< 5).map { g.anchor($0) }, [2, 4, 6, 8, 10])
        XCTAssertEqual((0 ..< 5).map { g.groundTruth($0) }, [2 ..< 4, 4 ..< 6, 6 ..< 8, 8 ..< 10, 10 ..< 12])
        XCTAssertEqual((0 ..< 5).map { g.index(t: 0, k: $0) }, [12, 13, 14, 15, 16])
        XCTAssertEqual((12 ... 16).map { g.position(of: $0) }, [2, 4, 6, 8, 10])
        XCTAssertEqual((0 ..< 5).map { g.predictionRow(t: 0, k: $0) }, [1, 3, 5, 7, 9])
        XCTAssertEqual((0 ..< 5).map { g.index(t: 1, k: $0) }, [17, 18, 19, 20, 21])
        XCTAssertEqual((17 ... 21).map { g.position(of: $0) }, [3, 5, 7, 9, 11])
        XCTAssertEqual((0 ..< 5).map { g.predictionRow(t: 1, k: $0) }, [12, 13, 14, 15, 16])
        XCTAssert(g.token(at: 19) == (1, 2))

        let l = g.layout(tDone: 2)
        XCTAssertEqual(l.count, 22)
        XCTAssertEqual(l.visibleKeys(of: 19), [0, 1, 2, 3, 4, 5, 14, 19])
        XCTAssertEqual(l.positions.map(Int.init), (0 ..< 22).map { g.position(of: $0) })
        for q in 0 ..< 12 { XCTAssertEqual(l.visibleKeys(of: q), Array(0 ... q)) }
    }

    func testLayoutMatchesNaiveMaskForEveryQuery() throws {
        for (P, c, G, s) in [(12, 2, 2, 2), (13, 1, 3, 3), (20, 4, 4, 2), (9, 3, 1, 1), (16, 8, 8, 8)] {
            let g = try StridedGeometry(P: P, c: c, G: G, s: s)
            for tDone in 0 ... G {
                let l = g.layout(tDone: tDone)
                let M = naiveMask(g, tDone: tDone)
                XCTAssertEqual(l.count, M.count)
                for q in 0 ..< M.count {
                    let naive = (0 ..< M.count).filter { M[q][$0] }
                    XCTAssertEqual(l.visibleKeys(of: q), naive, "P=\(P) c=\(c) G=\(G) s=\(s) tDone=\(tDone) q=\(q)")
                    XCTAssertEqual(Int(l.positions[q]), g.position(of: q))
                }
                if tDone == 0 { XCTAssert(l.isCausal) }
            }
        }
    }

    func testAlignedPredictionRows() throws {
        let g = try StridedGeometry(P: 12, c: 2, G: 2, s: 2)
        let rows = g.alignedPredictionRows()
        XCTAssertEqual(rows.count, 21)
        // chunk: plain shift; step 0: a_k − 1; step 1: previous token of the same block.
        XCTAssertEqual(rows, Array(0 ..< 11) + [1, 3, 5, 7, 9] + [12, 13, 14, 15, 16])
        let pairs = g.alignedPairs()
        XCTAssertEqual(pairs.map(\.label), Array(1 ..< 22))
        XCTAssertEqual(pairs.map(\.row), rows)
        // A generated label is scored by the row one rotary position before it (its block's
        // previous token, or the last token of its prefix).
        for (row, label) in pairs where label >= g.P {
            XCTAssertEqual(g.position(of: row) + 1, g.position(of: label))
        }
        // Every generated label's row is its predictionRow.
        for t in 0 ..< g.G { for k in 0 ..< g.K {
            XCTAssertEqual(rows[g.alignedIndex(t: t, k: k)], g.predictionRow(t: t, k: k))
        } }
        // And it equals the §4.5 concat: logits[0:P−1] ++ logits[a_k − 1] ++ logits[P : L_full − K].
        for (P, c, G, s) in [(20, 4, 4, 2), (13, 1, 3, 3)] {
            let h = try StridedGeometry(P: P, c: c, G: G, s: s)
            let concat = Array(0 ..< P - 1) + (0 ..< h.K).map { h.anchor($0) - 1 } + Array(P ..< h.fullLength - h.K)
            XCTAssertEqual(h.alignedPredictionRows(), concat)
        }
    }

    func testPaperShapes() throws {
        let code = try StridedGeometry(P: 1024, c: 8, G: 8, s: 8)
        XCTAssertEqual(code.K, 127); XCTAssertEqual(code.fullLength, 2040)
        XCTAssertEqual(code.groundTruth(126), 1016 ..< 1024)           // the last block ends at P
        let translation = try StridedGeometry(P: 1024, c: 4, G: 4, s: 2)
        XCTAssertEqual(translation.K, 509); XCTAssertEqual(translation.fullLength, 3060)
        XCTAssertEqual(translation.groundTruth(508), 1020 ..< 1024)
        XCTAssertEqual(code.layout(tDone: 8).count, 2040)
    }

    func testExtendAndBroadcast() throws {
        let g = try StridedGeometry(P: 12, c: 2, G: 2, s: 2)
        let m = Array(100 ..< 112)
        let e = g.extend(m)
        XCTAssertEqual(e.count, 22)
        XCTAssertEqual(Array(e[0 ..< 12]), m)
        XCTAssertEqual(Array(e[12...]), [102, 104, 106, 108, 110, 103, 105, 107, 109, 111])
        for q in 12 ..< 22 { XCTAssertEqual(e[q], m[g.position(of: q)]) }

        let b = g.broadcastToAligned([1, 2, 3, 4, 5] as [Float], fill: 0)
        XCTAssertEqual(b.count, 21)
        XCTAssertEqual(b, [Float](repeating: 0, count: 11) + [1, 2, 3, 4, 5, 1, 2, 3, 4, 5])
    }

    func testInvalidGeometries() {
        XCTAssertThrowsError(try StridedGeometry(P: 12, c: 3, G: 2, s: 2)) { e in
            XCTAssertEqual(e as? StridedGeometryError, .notDivisible(P: 12, c: 3, G: 2, s: 2))
            let text = "\(e)"
            XCTAssert(text.contains("P=12") && text.contains("s=2") && text.contains("G=2") && text.contains("c=3"), text)
        }
        XCTAssertThrowsError(try StridedGeometry(P: 12, c: 0, G: 2, s: 2)) {
            XCTAssertEqual($0 as? StridedGeometryError, .notPositive(P: 12, c: 0, G: 2, s: 2))
        }
        XCTAssertThrowsError(try StridedGeometry(P: 12, c: 2, G: 2, s: 0))
        XCTAssertThrowsError(try StridedGeometry(P: 12, c: 8, G: 8, s: 1)) {
            XCTAssertEqual($0 as? StridedGeometryError, .tooShort(P: 12, c: 8, G: 8))
        }
        XCTAssertNoThrow(try StridedGeometry(P: 4, c: 2, G: 2, s: 5))   // K = 1
    }

    func testCodableRoundTripValidates() throws {
        let g = try StridedGeometry(P: 20, c: 4, G: 4, s: 2)
        let data = try JSONEncoder().encode(g)
        XCTAssertEqual(try JSONDecoder().decode(StridedGeometry.self, from: data), g)
        let bad = #"{"P":12,"c":3,"G":2,"s":2}"#.data(using: .utf8)!
        XCTAssertThrowsError(try JSONDecoder().decode(StridedGeometry.self, from: bad))
    }
}
