import Foundation
import XCTest

/// scripts/twin_metrics.py: the metrics of code's RLVR row, evaluated from qa-code's run
/// (scripts/compare.sh, `twin`). The evaluation-only run resumed from qa-code's checkpoint holds
/// qa-code's train records, qa-code's step-0 evaluation (on the wrong task's data) and its own
/// evaluations at the checkpoint's step; code's base row of the same seed gives step 0.
final class TwinMetricsScriptTests: XCTestCase {
    private var root: URL!
    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("twin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    private func write(_ name: String, _ records: [[String: Any]]) throws -> String {
        let text = try records.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: .sortedKeys), as: UTF8.self) }
            .joined(separator: "\n") + "\n"
        let path = root.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func read(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    private func merge(_ run: String, _ base: String) throws -> (status: Int32, stdout: String, stderr: String) {
        try ScriptRunner.outcome("/usr/bin/env", ["python3", "scripts/twin_metrics.py", run, base])
    }

    private let base: [[String: Any]] = [
        ["step": 0, "kind": "eval", "eval_ce": 2.9, "eval_feature_matching_raw_pass1": 0.55],
        ["step": 0, "kind": "downstream", "pass_at_1": 0.1],
        ["step": 0, "kind": "memory", "peak_rss": 1e9],
    ]

    func testStepZeroFromTheBaseRowTrainingAndFinalEvaluationsKept() throws {
        let run = try write("run.jsonl", [
            ["step": 0, "kind": "eval", "eval_ce": 3.1, "eval_feature_matching_raw_pass1": 0.57],  // qa-code's data
            ["step": 1, "kind": "train", "reward": 0.2, "flops_total": 1e12],
            ["step": 2, "kind": "train", "reward": 0.3, "flops_total": 2e12],
            ["step": 3, "kind": "train", "reward": 0.4, "flops_total": 3e12],
            ["step": 3, "kind": "eval", "eval_ce": 2.8, "eval_feature_matching_raw_pass1": 0.56],
            ["step": 3, "kind": "downstream", "pass_at_1": 0.2],
            ["step": 3, "kind": "memory", "peak_rss": 2e9],
        ])
        let b = try write("base.jsonl", base)
        let r = try merge(run, b)
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try read(run)
        XCTAssertEqual(out.map { $0["kind"] as? String }, ["eval", "train", "train", "train", "eval", "downstream", "memory"])
        XCTAssertEqual(out.map { $0["step"] as? Int }, [0, 1, 2, 3, 3, 3, 3])
        XCTAssertEqual(out[0]["eval_ce"] as? Double, 2.9)  // code's base row, not qa-code's 3.1
        XCTAssertEqual(out[3]["flops_total"] as? Double, 3e12)
        XCTAssertEqual(out[4]["eval_ce"] as? Double, 2.8)
        // Merging again changes nothing: an interrupted comparison can redo it.
        XCTAssertEqual(try merge(run, b).status, 0)
        XCTAssertEqual(try read(run).map { $0["eval_ce"] as? Double }, out.map { $0["eval_ce"] as? Double })
    }

    func testRefusesARunThatTrainedOrWasNotResumed() throws {
        let b = try write("base.jsonl", base)
        // Evaluations after the last train record: the run trained on its own, it is not an evaluation.
        let trained = try write("trained.jsonl", [
            ["step": 1, "kind": "train", "reward": 0.2],
            ["step": 2, "kind": "eval", "eval_ce": 2.8],
        ])
        let r = try merge(trained, b)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("after step 1"), r.stderr)
        // No train records: not resumed from a checkpoint.
        let fresh = try write("fresh.jsonl", [["step": 0, "kind": "eval", "eval_ce": 2.8]])
        XCTAssertNotEqual(try merge(fresh, b).status, 0)
        // No evaluation at the checkpoint's step.
        let none = try write("none.jsonl", [["step": 1, "kind": "train", "reward": 0.2]])
        XCTAssertNotEqual(try merge(none, b).status, 0)
        // A base row without a step-0 evaluation.
        let ok = try write("ok.jsonl", [["step": 1, "kind": "train"], ["step": 1, "kind": "eval", "eval_ce": 2.8]])
        let noBase = try write("nobase.jsonl", [["step": 0, "kind": "downstream", "pass_at_1": 0.1]])
        let n = try merge(ok, noBase)
        XCTAssertNotEqual(n.status, 0)
        XCTAssertTrue(n.stderr.contains("base run"), n.stderr)
    }
}
