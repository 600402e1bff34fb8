import Foundation
import XCTest

/// `bench step --calibration-out`, `plan` and `train --learners auto` as commands (issue 15
/// item 4); the arithmetic itself is in TrainerTests/PlannerTests.
final class PlanEndToEndTests: XCTestCase {
    static let tiny = [
        "--preset", "small",
        "--set", "model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1",
        "--set", "chunk-length=32", "--set", "chunks-per-step=4", "--set", "samples-per-chunk=4",
        "--set", "eval-every=0", "--set", "eval-down-every=0",
    ]

    func directory(_ name: String) throws -> String { runDir(name, create: true) }

    func testCalibrationPlanAndAutoLearners() throws {
        let dir = try directory("cal")
        let cal = dir + "/cal.json"
        let bench = try MPIRun.run(np: 1, ["bench", "step"] + Self.tiny + ["--steps", "2", "--calibration-out", cal], timeout: 180)
        XCTAssertTrue(bench.succeeded, "\(bench)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: cal), "\(bench)")

        let plan = try MPIRun.runDirect(["plan", "--calibration", cal, "--ranks", "3", "--json"] + Self.tiny, timeout: 60)
        XCTAssertTrue(plan.succeeded, "\(plan)")
        let json = try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as! [String: Any]
        let splits = json["splits"] as! [[String: Any]]
        // L = 1, 2 and colocated 3; the recommendation is the fastest of them.
        XCTAssertEqual(splits.map { $0["learners"] as! Int }, [1, 2, 3])
        XCTAssertEqual(splits.map { $0["colocated"] as! Bool }, [false, false, true])
        let steps = splits.map { $0["step"] as! Double }
        XCTAssertEqual((json["recommended"] as! [String: Any])["step"] as! Double, steps.min())
        let separate = splits.filter { !($0["colocated"] as! Bool) }
        let auto = json["auto_learners"] as! Int
        XCTAssertEqual(auto, separate.min { ($0["step"] as! Double) < ($1["step"] as! Double) }!["learners"] as! Int)

        // train --learners auto with that calibration picks what plan says and records it.
        let run = dir + "/run"
        let train = try MPIRun.run(np: 3, ["train"] + Self.tiny + ["--steps", "1", "--learners", "auto", "--quiet",
                                                                   "--set", "plan-calibration=\(cal)", "--run-dir", run], timeout: 240)
        XCTAssertTrue(train.succeeded, "\(train)")
        XCTAssertTrue(train.stderr.contains("learners auto: \(auto) learner"), "\(train)")
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/plan.json"))) as! [String: Any]
        XCTAssertEqual(record["learners"] as? Int, auto)
        XCTAssertEqual(record["predicted_step"] as! Double, separate.first { $0["learners"] as! Int == auto }!["step"] as! Double,
                       accuracy: 1e-9 * (record["predicted_step"] as! Double))
        let yaml = try String(contentsOfFile: run + "/config.yaml", encoding: .utf8)
        XCTAssertTrue(yaml.contains("\nlearners: \(auto)\n"), yaml)
    }

    func testBadInputIsRefused() throws {
        let dir = try directory("bad")
        let missing = try MPIRun.runDirect(["plan", "--calibration", dir + "/absent.json", "--ranks", "2"] + Self.tiny)
        XCTAssertFalse(missing.succeeded)
        XCTAssertTrue(missing.stderr.contains("cannot read calibration file"), "\(missing)")
        try Data("{\"format\": \"ebft-dist plan calibration v1\"}".utf8).write(to: URL(fileURLWithPath: dir + "/part.json"))
        let partial = try MPIRun.runDirect(["plan", "--calibration", dir + "/part.json", "--ranks", "2"] + Self.tiny)
        XCTAssertFalse(partial.succeeded)
        XCTAssertTrue(partial.stderr.contains("missing field"), "\(partial)")
        let learners = try MPIRun.runDirect(["train", "--learners", "some"] + Self.tiny)
        XCTAssertFalse(learners.succeeded)
        XCTAssertTrue(learners.stderr.contains("--learners must be a positive integer or auto"), "\(learners)")
    }
}
