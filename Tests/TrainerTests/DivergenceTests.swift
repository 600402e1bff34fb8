import XCTest
@testable import Trainer

/// `DivergenceDetector` on hand-made sequences; the z-scores are checked against closed forms.
final class DivergenceTests: XCTestCase {
    static let V = 49152

    func detector(maxBad: Int = 3, window: Int = 4, z: Double = 5) -> DivergenceDetector {
        DivergenceDetector(maxBadSteps: maxBad, window: window, spikeZ: z, vocabularySize: Self.V)
    }

    /// A step with CE `ce`, a healthy gradient and a CE term.
    func step(_ s: Int, ce: Double, grad: Double = 1, expects: Bool = true) -> DivergenceDetector.Observation {
        .init(step: s, ce: ce, loss: 0.03 * ce, gradNorm: grad, expectsGradient: expects)
    }

    func testZScoreIsPopulationZAgainstTheWindowOfEarlierSteps() {
        var d = detector(window: 4)
        XCTAssertEqual(d.minHistory, 4)
        for (i, ce) in [1.0, 2, 3, 4].enumerated() {
            let v = d.observe(step(i + 1, ce: ce))
            XCTAssertFalse(v.isBad)
            XCTAssertNil(v.z, "no z-score before \(d.minHistory) steps")
        }
        // Window 1, 2, 3, 4: mean 2.5, population variance 1.25, so z(5) = 2.5/√1.25 = √5.
        XCTAssertEqual(d.zScore(5)!, 5.0.squareRoot(), accuracy: 1e-12)
        let v5 = d.observe(step(5, ce: 5))
        XCTAssertEqual(v5.z!, 5.0.squareRoot(), accuracy: 1e-12)
        XCTAssertFalse(v5.isBad)
        // The window slid to 2, 3, 4, 5: mean 3.5, the same variance; z(10) = 6.5/√1.25 ≈ 5.81 > 5.
        XCTAssertEqual(d.history, [2, 3, 4, 5])
        let v6 = d.observe(step(6, ce: 10))
        XCTAssertEqual(v6.z!, 6.5 / 1.25.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(v6.anomalies, [.lossSpike])
        XCTAssertEqual(v6.consecutiveBad, 1)
        XCTAssertFalse(v6.stop)
        XCTAssertTrue(v6.reasons[0].contains("CE 10 is 5.814 standard deviations above the mean 3.5 of the last 4 good steps (spike-z = 5)"),
                      v6.reasons[0])
        // A spike does not enter the window; a drop is never a spike (one-sided).
        XCTAssertEqual(d.history, [2, 3, 4, 5])
        let v7 = d.observe(step(7, ce: 0.5))
        XCTAssertEqual(v7.z!, -3 / 1.25.squareRoot(), accuracy: 1e-12)
        XCTAssertFalse(v7.isBad)
        XCTAssertEqual(v7.consecutiveBad, 0)
    }

    func testNearlyConstantCEHasAStandardDeviationFloor() {
        // A random model sits at ln V with tiny noise: the std is floored at 1 % of the mean.
        var d = detector(window: 8)
        for i in 1...8 { XCTAssertFalse(d.observe(step(i, ce: 10.8)).isBad) }
        let floor = 0.01 * 10.8
        let small = d.observe(step(9, ce: 10.9))
        XCTAssertEqual(small.z!, 0.1 / floor, accuracy: 1e-9)
        XCTAssertFalse(small.isBad, "0.1 nats above a flat CE is not a spike")
        let big = d.observe(step(10, ce: 11.5))
        // Window: seven 10.8 and one 10.9; its std (0.033) is below the floor 1 % of the mean.
        let mean = (7 * 10.8 + 10.9) / 8
        XCTAssertEqual(big.z!, (11.5 - mean) / (0.01 * mean), accuracy: 1e-9)
        XCTAssertEqual(big.anomalies, [.lossSpike])
        // All-zero window: no division by zero, z = 0.
        var zeros = detector(window: 2)
        _ = zeros.observe(step(1, ce: 0))
        _ = zeros.observe(step(2, ce: 0))
        XCTAssertEqual(zeros.observe(step(3, ce: 1)).z, 0)
    }

    func testMinimumHistoryIsEightOrTheWindow() {
        var d = detector(window: 32)
        XCTAssertEqual(d.minHistory, 8)
        for i in 1...7 { _ = d.observe(step(i, ce: 2 + 0.01 * Double(i % 2))) }
        let early = d.observe(step(8, ce: 15))
        XCTAssertNil(early.z, "7 steps of history: no z-score yet")
        XCTAssertFalse(early.isBad)
        XCTAssertNotNil(d.observe(step(9, ce: 2)).z)
    }

    func testCEAboveTwiceLnVIsBad() {
        var d = detector()
        let limit = 2 * log(Double(Self.V))
        XCTAssertEqual(d.ceLimit, limit, accuracy: 1e-12)
        XCTAssertFalse(d.observe(step(1, ce: limit * 0.999)).isBad)
        let v = d.observe(step(2, ce: 367_050))
        XCTAssertEqual(v.anomalies, [.ceLimit])
        XCTAssertEqual(v.reasons, ["CE 3.67e+05 exceeds 21.61 (2·ln V, V = 49152)"])
    }

    func testZeroGradientIsDeadOnlyWhenTheLossHasAGradient() {
        var d = detector()
        let dead = d.observe(step(1, ce: log(Double(Self.V)), grad: 0, expects: true))
        XCTAssertEqual(dead.anomalies, [.deadGradient])
        XCTAssertTrue(dead.reasons[0].contains("gradient norm is exactly 0"), dead.reasons[0])
        // RLVR with every completion rewarded alike: all advantages 0, no CE term.
        let legit = d.observe(.init(step: 2, ce: nil, loss: 0, gradNorm: 0, expectsGradient: false))
        XCTAssertFalse(legit.isBad)
        XCTAssertEqual(legit.consecutiveBad, 0)
        XCTAssertFalse(d.observe(step(3, ce: 3, grad: 1e-30)).isBad, "tiny but non-zero is alive")
    }

    func testStopsAfterMaxBadStepsInARow() {
        var d = detector(maxBad: 3)
        var verdicts: [DivergenceDetector.Verdict] = []
        // bad, bad, good, bad, bad, bad: the good step resets the count; the 6th stops.
        for (i, ce) in [100.0, 100, 3, 100, 100, 100].enumerated() { verdicts.append(d.observe(step(i + 1, ce: ce))) }
        XCTAssertEqual(verdicts.map(\.consecutiveBad), [1, 2, 0, 1, 2, 3])
        XCTAssertEqual(verdicts.map(\.stop), [false, false, false, false, false, true])
        let m = verdicts[5].stopMessage!
        for part in ["step 6: CE 100 exceeds 21.61 (2·ln V, V = 49152)", "3 bad steps in a row (steps 4–6)",
                     "max-bad-steps = 3"] {
            XCTAssertTrue(m.contains(part), "'\(part)' not in: \(m)")
        }
        // A loss that jumps and stays high keeps being flagged (bad steps stay out of the window).
        var plateau = detector(maxBad: 3, window: 8)
        for i in 1...8 { _ = plateau.observe(step(i, ce: i % 2 == 0 ? 2.1 : 1.9)) }
        let high = (9...11).map { plateau.observe(step($0, ce: 4)) }
        XCTAssertEqual(high.map(\.anomalies), [[.lossSpike], [.lossSpike], [.lossSpike]])
        XCTAssertEqual(high[0].z!, 20, accuracy: 1e-9)  // (4 − 2)/0.1
        XCTAssertTrue(high[2].stop)
    }

    func testMaxBadStepsZeroReportsButNeverStops() {
        var d = detector(maxBad: 0)
        for i in 1...50 {
            let v = d.observe(step(i, ce: 1e5, grad: 0))
            XCTAssertEqual(v.anomalies, [.ceLimit, .deadGradient])
            XCTAssertEqual(v.consecutiveBad, i)
            XCTAssertFalse(v.stop)
        }
    }

    func testNonFiniteStopsAtOnceWhateverMaxBadSteps() {
        for maxBad in [0, 3] {
            var d = detector(maxBad: maxBad)
            let v = d.observe(.init(step: 4, ce: 3, loss: 1, gradNorm: .nan, expectsGradient: true))
            XCTAssertEqual(v.anomalies, [.nonFinite])
            XCTAssertTrue(v.stop)
            XCTAssertTrue(v.stopMessage!.hasPrefix("step 4: the gradient norm is nan; the update was skipped"), v.stopMessage!)
            var e = detector(maxBad: maxBad)
            XCTAssertEqual(e.observe(.init(step: 1, ce: .infinity, loss: .infinity, gradNorm: 1, expectsGradient: true)).anomalies,
                           [.nonFinite, .nonFinite])
        }
    }

    func testReplayRebuildsTheSameState() {
        let ces: [Double] = [2, 2.1, 1.9, 2.05, 1.95, 2, 2.02, 1.98, 50, 2.01, 9, 2, 30, 30]
        var straight = detector(maxBad: 5, window: 8)
        let all = ces.enumerated().map { straight.observe(step($0.offset + 1, ce: $0.element)) }
        for k in [0, 5, 9, 11, 13] {
            var resumed = detector(maxBad: 5, window: 8)
            for i in 0..<k { resumed.replay(ce: ces[i], bad: all[i].isBad) }
            for i in k..<ces.count {
                let v = resumed.observe(step(i + 1, ce: ces[i]))
                XCTAssertEqual(v.anomalies, all[i].anomalies, "resumed after \(k), step \(i + 1)")
                XCTAssertEqual(v.z, all[i].z, "resumed after \(k), step \(i + 1)")
                XCTAssertEqual(v.consecutiveBad, all[i].consecutiveBad)
            }
        }
        XCTAssertTrue(all[8].isBad && all[12].isBad && all[13].isBad)
    }

    func testConfigFieldsValidateAndRoundTrip() throws {
        var c = TrainConfig()
        XCTAssertEqual(c.maxBadSteps, 3)
        try c.apply(override: "max-bad-steps=0")
        try c.apply(override: "spike-window=16")
        try c.apply(override: "spike-z=4.5")
        try c.validate()
        XCTAssertEqual(try TrainConfig.load(yamlText: try c.yaml(), source: "test"), c)
        XCTAssertThrowsError(try c.apply(override: "max-bad-steps=2.5")) { XCTAssertTrue("\($0)".contains("integer"), "\($0)") }
        for (field, value) in [("max-bad-steps", "-1"), ("spike-window", "1"), ("spike-z", "0")] {
            var bad = c
            try bad.apply(override: "\(field)=\(value)")
            XCTAssertThrowsError(try bad.validate()) { e in
                XCTAssertTrue("\(e)".contains("'\(field)'"), "\(e)")
            }
        }
    }
}
