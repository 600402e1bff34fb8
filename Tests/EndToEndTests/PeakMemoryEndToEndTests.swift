import Foundation
import XCTest

/// Peak resident memory in the metrics of a real run (issue 14 item 7).
final class PeakMemoryEndToEndTests: XCTestCase {
    /// np 2 (a learner, a worker), a random model of some 17 M parameters: every train record
    /// has rank 0's `peak_rss_mb`, never decreasing (a high-water mark), at least the learner's
    /// four touched buffers (weights, gradient, Adam's m and v); `peak_rss_mb_max` is at least
    /// that; the final `memory` record has both ranks' peaks (the worker holds the policy and the
    /// feature network: at least two copies of the weights), and the log names both ranks.
    func testPeakResidentMemoryInTheMetrics() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-e2e-rss-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        var args = ["train"] + TrainerEndToEndTests.tiny + ["--run-dir", dir, "--set", "eval-every=0"]
        args[args.firstIndex(of: "--steps")! + 1] = "2"
        args[args.firstIndex { $0.hasPrefix("model=random:") }!] =
            "model=random:dim=256,layers=4,heads=4,kv-heads=2,ffn=1024,seed=1"
        let out = try MPIRun.run(np: 2, args.filter { $0 != "--quiet" }, timeout: 180)
        XCTAssertTrue(out.succeeded, "\(out)")
        let log = out.stdout + out.stderr
        let countText = try XCTUnwrap(log.range(of: #"\d+ parameters"#, options: .regularExpression).map { log[$0] }, log)
        let parameters = try XCTUnwrap(Double(countText.split(separator: " ")[0]))
        XCTAssertGreaterThan(parameters, 10e6)
        let weightsMiB = parameters * 4 / 1_048_576

        let records = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let train = records.filter { $0["kind"] as? String == "train" }
        XCTAssertEqual(train.count, 2)
        var last = 0.0
        for r in train {
            let mine = try XCTUnwrap(r["peak_rss_mb"] as? Double, "no peak_rss_mb in \(r)")
            let most = try XCTUnwrap(r["peak_rss_mb_max"] as? Double, "no peak_rss_mb_max in \(r)")
            XCTAssertGreaterThan(mine, 4 * weightsMiB)
            XCTAssertGreaterThanOrEqual(mine, last)
            XCTAssertGreaterThanOrEqual(most, mine)
            last = mine
        }
        let memory = try XCTUnwrap(records.last, "no records")
        XCTAssertEqual(memory["kind"] as? String, "memory")
        XCTAssertEqual(memory["step"] as? Int, 2)
        let r0 = try XCTUnwrap(memory["peak_rss_mb_rank0"] as? Double), r1 = try XCTUnwrap(memory["peak_rss_mb_rank1"] as? Double)
        XCTAssertGreaterThanOrEqual(r0, last)
        XCTAssertGreaterThan(r1, 2 * weightsMiB)
        XCTAssertEqual(memory["peak_rss_mb_max"] as? Double, max(r0, r1))
        XCTAssertTrue(log.contains("peak RSS (MiB): rank 0 (learner)") && log.contains("rank 1 (rollout-worker)"), log)
    }
}
