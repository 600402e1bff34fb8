import Foundation
import XCTest

/// The learning-rate choice of scripts/compare.sh (`compare.sh rates`) and its table
/// (scripts/lr_table.py), on kept runs whose scores are chosen so that each choice can be worked
/// out by hand: the largest rate within one SE of the best, each method by its own objective
/// (EBFT held-out raw feature matching, SFT validation CE, RLVR its reward over its last 10
/// steps), and the next rate of the ladder while the best is at the edge of the rates tried.
final class CompareRatesScriptTests: XCTestCase {
    private var root: URL!
    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rates-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("runs"), withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// A kept learning-rate run: evals at step 0 and at the end, one train record per reward.
    private func run(_ name: String, ce: Double = 3, fm: Double = 0.5, fmSE: Double = 0,
                     rewards: [Double] = [0, 0]) throws {
        let dir = root.appendingPathComponent("runs/\(name)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var records: [[String: Any]] = [
            ["step": 0, "kind": "eval", "eval_ce": 4.0, "eval_feature_matching_raw_pass1": 0.4,
             "eval_feature_matching_raw_pass1_se": 0.0],
        ]
        for (i, r) in rewards.enumerated() {
            records.append(["step": i + 1, "kind": "train", "reward": r, "flops_total": 1e12 * Double(i + 1)])
        }
        records.append(["step": rewards.count, "kind": "eval", "eval_ce": ce, "eval_feature_matching_raw_pass1": fm,
                        "eval_feature_matching_raw_pass1_se": fmSE])
        let text = try records.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
            .joined(separator: "\n") + "\n"
        try text.write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        try "1 s\n".write(to: dir.appendingPathComponent("DONE"), atomically: true, encoding: .utf8)
    }

    private func diverged(_ name: String) throws {
        let dir = root.appendingPathComponent("runs/\(name)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "training diverged: loss is NaN\n".write(to: dir.appendingPathComponent("FAILED"), atomically: true, encoding: .utf8)
    }

    private func shell(_ command: String) throws -> String {
        try ScriptRunner.run("/bin/bash", ["-c", command], environment: [
            "BIN": "/bin/true", "OUT": root.appendingPathComponent("out").path, "REPORT_DIR": root.path,
            "TASKS": "t1 t2", "LRS": "1e-5 3e-5 1e-4", "LADDER": "3e-6 1e-5 3e-5 1e-4 3e-4",
        ])
    }

    func testChoiceAndNextRate() throws {
        // t1 EBFT: the best is 3e-5 (0.60 ± 0.02); 1e-4 (0.59) is within one SE of it and larger.
        try run("lr-t1-ebft-1e-5", fm: 0.50, fmSE: 0.01)
        try run("lr-t1-ebft-3e-5", fm: 0.60, fmSE: 0.02)
        try run("lr-t1-ebft-1e-4", fm: 0.59, fmSE: 0.01)
        // t1 SFT: the lowest CE is at the top of the grid, so 3e-4 is tried next.
        try run("lr-t1-sft-1e-5", ce: 3.0)
        try run("lr-t1-sft-3e-5", ce: 2.9)
        try run("lr-t1-sft-1e-4", ce: 2.8)
        // t1 RLVR: 1e-5's last 10 rewards alternate 0.4 / 0.6 (mean 0.5, SE √(0.1/9)/√10 = 0.0333)
        // after 5 steps at 0, which do not count (counted, its mean would be 1/3 and 3e-5 the best);
        // 3e-5's 0.48 is within one SE of 0.5: 3e-5 is chosen, and as the best (1e-5) is the
        // bottom of the rates tried, 3e-6 is next.
        try run("lr-t1-rlvr-1e-5", rewards: Array(repeating: 0, count: 5) + (0..<10).map { $0 % 2 == 0 ? 0.4 : 0.6 })
        try run("lr-t1-rlvr-3e-5", rewards: Array(repeating: 0.48, count: 12))
        try run("lr-t1-rlvr-1e-4", rewards: Array(repeating: 0.2, count: 12))
        // …whose 1e-4 row is a twin: another run's weights, evaluated only (its wall time says so).
        try "trained as lr-t0-rlvr-1e-4 (the same questions and budget), evaluated on t1\n".write(
            to: root.appendingPathComponent("runs/lr-t1-rlvr-1e-4/TWIN"), atomically: true, encoding: .utf8)
        // t2 EBFT: the best is the top of the grid, 1e-4, but 3e-4 diverged: nothing more to try.
        try run("lr-t2-ebft-1e-5", fm: 0.50, fmSE: 0.001)
        try run("lr-t2-ebft-3e-5", fm: 0.60, fmSE: 0.001)
        try run("lr-t2-ebft-1e-4", fm: 0.70, fmSE: 0.001)
        try diverged("lr-t2-ebft-3e-4")

        let lines = Set(try shell("scripts/compare.sh rates").split(separator: "\n").map(String.init))
        XCTAssertTrue(lines.contains("t1 ebft 1e-4 -"), "\(lines)")
        XCTAssertTrue(lines.contains("t1 sft 1e-4 3e-4"), "\(lines)")
        XCTAssertTrue(lines.contains("t1 rlvr 3e-5 3e-6"), "\(lines)")
        XCTAssertTrue(lines.contains("t2 ebft 1e-4 -"), "\(lines)")
        // t2's SFT and RLVR have no runs: no choice.
        XCTAssertTrue(lines.contains("t2 sft "), "\(lines)")

        let table = try shell("scripts/compare.sh rates 2>/dev/null | scripts/lr_table.py \"$REPORT_DIR/runs\" 10")
            .split(separator: "\n").map(String.init)
        XCTAssertTrue(table.contains { $0.hasPrefix("| t1 | rlvr | **3e-5** | 12 |") && $0.contains("| 0.4800 ± 0.0000 * |") },
                      table.joined(separator: "\n"))
        XCTAssertTrue(table.contains { $0.hasPrefix("| t1 | rlvr | 1e-5 | 15 |") && $0.contains("| 0.5000 ± 0.0333 * |") },
                      table.joined(separator: "\n"))
        XCTAssertTrue(table.contains { $0.hasPrefix("| t2 | ebft | 3e-4 | diverged |") }, table.joined(separator: "\n"))
        XCTAssertTrue(table.contains { $0.hasPrefix("| t1 | rlvr | 1e-4 | 12 |")
            && $0.hasSuffix("| 1 s (evaluation only; trained as lr-t0-rlvr-1e-4) |") }, table.joined(separator: "\n"))
        XCTAssertTrue(table.contains { $0.hasPrefix("| t1 | rlvr | 1e-5 |") && $0.hasSuffix("| 1 s |") },
                      table.joined(separator: "\n"))
        XCTAssertTrue(table.contains { $0.hasPrefix("| t1 | ebft | **1e-4** | 2 |") && $0.contains("0.5900 ± 0.0100 *") },
                      table.joined(separator: "\n"))
    }
}
