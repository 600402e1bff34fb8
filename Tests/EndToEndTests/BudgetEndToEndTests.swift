import Foundation
import XCTest

/// `flop-budget` (issue 16's comparison on equal compute): every train record carries the
/// step's model FLOPs (`flops`) and the run's so far (`flops_total`), and a run stops after the
/// first step whose total reaches the budget, with its final evaluation and checkpoint there.
/// The counts themselves are checked by hand in `StepCostTests`.
final class BudgetEndToEndTests: XCTestCase {
    func train(_ dir: String) throws -> [[String: Any]] {
        try metrics(dir).filter { $0["kind"] as? String == "train" }
    }

    func number(_ r: [String: Any], _ key: String) throws -> Double { try XCTUnwrap(r[key] as? Double, key) }

    /// The steps and totals of a run: every `flops` equal to `perStep` (nil: whatever they are)
    /// and `flops_total` their running sum.
    func checkTotals(_ records: [[String: Any]], perStep: Double?) throws {
        var sum = 0.0
        for r in records {
            let f = try number(r, "flops")
            if let perStep { XCTAssertEqual(f, perStep, accuracy: 1e-12 * perStep) }
            XCTAssertGreaterThan(f, 0)
            sum += f
            XCTAssertEqual(try number(r, "flops_total"), sum, accuracy: 1e-12 * sum)
        }
    }

    /// EBFT stops at ⌈budget / step cost⌉ steps (here 2.5 steps' worth: 3) even with `steps`
    /// 100, evaluates and checkpoints there, and a run stopped at step 1 and resumed continues
    /// the count and stops at the same step. SFT, whose step costs less, runs ⌈budget / its
    /// step⌉ steps on the same budget.
    func testEBFTAndSFTStopAtTheBudget() throws {
        let tiny = ["train"] + TrainerEndToEndTests.tiny
        let probe = runDir("probe")
        let p = try MPIRun.run(np: 1, tiny.map { $0 == "3" ? "1" : $0 } + ["--run-dir", probe], timeout: 120)
        XCTAssertTrue(p.succeeded, "\(p)")
        let one = try train(probe)
        XCTAssertEqual(one.count, 1)
        let f = try number(one[0], "flops")
        XCTAssertEqual(try number(one[0], "flops_total"), f)
        let budget = 2.5 * f
        let args = tiny.map { $0 == "3" ? "100" : $0 } + ["--set", "flop-budget=\(budget)"]

        let a = runDir("ebft")
        let out = try MPIRun.run(np: 2, args + ["--run-dir", a], timeout: 120)
        XCTAssertTrue(out.succeeded, "\(out)")
        let steps = try train(a)
        XCTAssertEqual(steps.compactMap { $0["step"] as? Int }, [1, 2, 3])
        try checkTotals(steps, perStep: f)
        let evals = try metrics(a).filter { $0["kind"] as? String == "eval" }.compactMap { $0["step"] as? Int }
        XCTAssertEqual(evals, [0, 2, 3], "eval-every 2, and the final evaluation where the budget ends the run")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: a + "/checkpoints").filter { $0.hasPrefix("step-") },
                       ["step-000003"])

        // Stopped after step 1, resumed: the count continues from the checkpoint's records.
        let b = runDir("resumed")
        let first = try MPIRun.run(np: 2, args + ["--run-dir", b, "--stop-after", "1"], timeout: 120)
        XCTAssertTrue(first.succeeded, "\(first)")
        let rest = try MPIRun.run(np: 2, ["train", "--resume", b, "--quiet"], timeout: 120)
        XCTAssertTrue(rest.succeeded, "\(rest)")
        let resumed = try train(b)
        XCTAssertEqual(resumed.compactMap { $0["step"] as? Int }, [1, 2, 3])
        try checkTotals(resumed, perStep: f)

        // SFT on the same budget.
        let s = runDir("sft")
        let sft = try MPIRun.run(np: 1, args + ["--set", "method=sft", "--set", "eval-every=0", "--run-dir", s], timeout: 180)
        XCTAssertTrue(sft.succeeded, "\(sft)")
        let sftSteps = try train(s)
        let fs = try number(XCTUnwrap(sftSteps.first), "flops")
        XCTAssertLessThan(fs, f, "an SFT step samples nothing and has no feature pass")
        XCTAssertEqual(sftSteps.count, Int((budget / fs).rounded(.up)))
        try checkTotals(sftSteps, perStep: fs)
        XCTAssertGreaterThanOrEqual(try number(sftSteps.last!, "flops_total"), budget)
    }

    /// RLVR's steps cost what its completions cost, so it runs, without `steps`, until its
    /// count reaches the budget: the step before the last is under it, the last at or over it;
    /// the final evaluation is at that step. A negative budget is refused.
    func testRLVRStopsWhenItsCountReachesTheBudget() throws {
        let tiny = ["train"] + TrainerEndToEndTests.tiny + ["--task", "translation", "--method", "rlvr",
                                                             "--set", "rlvr-questions=4", "--set", "rlvr-max-new-tokens=6"]
        let probe = runDir("probe")
        let p = try MPIRun.run(np: 1, tiny.map { $0 == "3" ? "1" : $0 } + ["--run-dir", probe], timeout: 120)
        XCTAssertTrue(p.succeeded, "\(p)")
        let budget = 2.5 * (try number(XCTUnwrap(try train(probe).first), "flops"))
        let d = runDir("rlvr")
        let out = try MPIRun.run(np: 2, tiny.map { $0 == "3" ? "0" : $0 } + ["--set", "flop-budget=\(budget)", "--run-dir", d],
                                 timeout: 180)
        XCTAssertTrue(out.succeeded, "\(out)")
        XCTAssertTrue(out.stderr.contains("flop-budget") && out.stderr.contains("RLVR steps"), "\(out)")
        let steps = try train(d)
        XCTAssertGreaterThanOrEqual(steps.count, 2)
        try checkTotals(steps, perStep: nil)
        XCTAssertGreaterThanOrEqual(try number(steps.last!, "flops_total"), budget)
        XCTAssertLessThan(try number(steps[steps.count - 2], "flops_total"), budget)
        let last = try XCTUnwrap(steps.last?["step"] as? Int)
        let evals = try metrics(d).filter { $0["kind"] as? String == "eval" }.compactMap { $0["step"] as? Int }
        XCTAssertEqual(evals.last, last, "the final evaluation is where the budget ends the run")

        let bad = try MPIRun.run(np: 1, tiny + ["--set", "flop-budget=-1", "--run-dir", runDir("bad")], timeout: 60)
        XCTAssertFalse(bad.succeeded)
        XCTAssertTrue(bad.stderr.contains("flop-budget"), "\(bad)")
    }
}
