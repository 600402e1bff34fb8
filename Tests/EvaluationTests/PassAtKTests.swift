import XCTest
@testable import Evaluation

final class PassAtKTests: XCTestCase {
    func testHandComputedCases() throws {
        XCTAssertEqual(try PassAtK.estimate(n: 4, c: 1, k: 1), 0.25, accuracy: 1e-12)
        XCTAssertEqual(try PassAtK.estimate(n: 4, c: 1, k: 4), 1.0, accuracy: 1e-12)
        // 1 − C(3,2)/C(5,2) = 1 − 3/10
        XCTAssertEqual(try PassAtK.estimate(n: 5, c: 2, k: 2), 0.7, accuracy: 1e-12)
        XCTAssertEqual(try PassAtK.estimate(n: 10, c: 0, k: 3), 0.0)
        XCTAssertEqual(try PassAtK.estimate(n: 10, c: 10, k: 3), 1.0)
        // 1 − C(7,3)/C(10,3) = 1 − 35/120
        XCTAssertEqual(try PassAtK.estimate(n: 10, c: 3, k: 3), 1 - 35.0 / 120.0, accuracy: 1e-12)
        // pass@1 is the fraction correct.
        XCTAssertEqual(try PassAtK.estimate(n: 200, c: 37, k: 1), 37.0 / 200.0, accuracy: 1e-12)
    }

    func testLargeNIsStable() throws {
        // C(1000, 100) overflows Double; the product form does not.
        let p = try PassAtK.estimate(n: 1000, c: 5, k: 100)
        // 1 − Π_{i=996}^{1000} (1 − 100/i)
        var prod = 1.0
        for i in 996...1000 { prod *= 1 - 100.0 / Double(i) }
        XCTAssertEqual(p, 1 - prod, accuracy: 1e-12)
        XCTAssertTrue(p > 0.40 && p < 0.42)
    }

    func testErrors() {
        XCTAssertThrowsError(try PassAtK.estimate(n: 4, c: 1, k: 5)) { e in
            guard case PassAtKError.invalidCounts(4, 1, 5, _) = e else { return XCTFail("\(e)") }
            XCTAssertTrue((e as? LocalizedError)?.errorDescription?.contains("k exceeds") ?? false)
        }
        XCTAssertThrowsError(try PassAtK.estimate(n: 4, c: 5, k: 1))
        XCTAssertThrowsError(try PassAtK.estimate(n: 4, c: -1, k: 1))
        XCTAssertThrowsError(try PassAtK.estimate(n: 0, c: 0, k: 1))
        XCTAssertThrowsError(try PassAtK.estimate(n: 4, c: 1, k: 0))
        XCTAssertThrowsError(try PassAtK.mean([], k: 1)) { XCTAssertEqual($0 as? PassAtKError, .noProblems) }
    }

    func testMeansOverProblems() throws {
        let outcomes: [[Bool]] = [[true, false, false, false], [false, false, false, false], [true, true, false, false, false]]
        XCTAssertEqual(try PassAtK.mean(outcomes: outcomes, k: 1), (0.25 + 0 + 0.4) / 3, accuracy: 1e-12)
        XCTAssertEqual(try PassAtK.mean(outcomes: outcomes, k: 2), ((1 - 3.0 / 6.0) + 0 + 0.7) / 3, accuracy: 1e-12)
        XCTAssertEqual(try PassAtK.meanCorrectness(outcomes), 3.0 / 13.0, accuracy: 1e-12)
        XCTAssertEqual(try PassAtK.anyCorrect(outcomes), 2.0 / 3.0, accuracy: 1e-12)
    }
}
