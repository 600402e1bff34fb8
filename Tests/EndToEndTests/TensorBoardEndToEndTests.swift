import Foundation
import XCTest

/// The TensorBoard event file of a real run, read back by the `tensorboard` package.
final class TensorBoardEndToEndTests: XCTestCase {
    /// Tests/reference/tensorboard_check.py's verdict on `runDir`.
    func check(_ runDir: String) throws -> [String: Any] {
        let script = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent()
            .appendingPathComponent("../reference/tensorboard_check.py").standardized.path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, runDir]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let v = try JSONSerialization.jsonObject(with: outData) as? [String: Any] else {
            XCTFail("tensorboard_check.py failed (run scripts/install-deps.sh?): \(String(decoding: errData, as: UTF8.self))")
            throw NSError(domain: "tensorboard_check", code: Int(p.terminationStatus))
        }
        return v
    }

    /// np 2 (a learner and a worker sharing the run directory), stopped after step 2 and
    /// resumed to step 3, with evaluations: one event file, written by rank 0 alone, holding
    /// every number of metrics.jsonl at its step (train and eval records, the carried-over ones
    /// included) — and `report` still reads the run.
    func testEventFileMirrorsMetricsAcrossAResume() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-e2e-tb-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let first = try MPIRun.run(np: 2, ["train"] + TrainerEndToEndTests.tiny + ["--run-dir", dir, "--stop-after", "2"],
                                   timeout: 120)
        XCTAssertTrue(first.succeeded, "\(first)")
        var v = try check(dir)
        XCTAssertEqual(v["errors"] as? [String], [])
        XCTAssertEqual(v["files"] as? Int, 1)
        let afterFirst = try XCTUnwrap(v["scalars"] as? Int)
        XCTAssertGreaterThan(afterFirst, 20)

        let rest = try MPIRun.run(np: 2, ["train", "--resume", dir, "--quiet"], timeout: 120)
        XCTAssertTrue(rest.succeeded, "\(rest)")
        v = try check(dir)
        XCTAssertEqual(v["errors"] as? [String], [])
        XCTAssertEqual(v["files"] as? Int, 1)
        XCTAssertGreaterThan(try XCTUnwrap(v["scalars"] as? Int), afterFirst)
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(text.contains("\"kind\":\"eval\""), text)
        XCTAssertTrue(text.contains("\"step\":3,\"kind\":\"train\""), text)

        let report = try MPIRun.runDirect(["report", dir, "--out", dir + "/report"], timeout: 60)
        XCTAssertTrue(report.succeeded, "\(report)")
    }
}
