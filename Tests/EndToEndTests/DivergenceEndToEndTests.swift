import Foundation
import XCTest

/// Divergence without NaN (issue 10, defect 7): `ebft-dist train` under mpirun stops every rank
/// with a clear error when the steps go bad, and reports bad steps in the progress line and
/// metrics.jsonl.
final class DivergenceEndToEndTests: XCTestCase {
    static let tiny = [
        "--preset", "small", "--steps", "8",
        "--set", "model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1",
        "--set", "chunk-length=32", "--set", "chunks-per-step=4", "--set", "samples-per-chunk=4",
        "--set", "eval-every=0",
    ]

    func trainRecords(_ dir: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }.filter { $0["kind"] as? String == "train" }
    }

    /// lr 1e4: AdamW's first real update (step 2; step 1 has lr 0 in the warm-up) moves every
    /// weight by about 1e4, so from step 3 on the model is wrecked whatever the CPU or BLAS:
    /// its CE is absurd (far above 2·ln V), or its residual stream overflows the final norm and
    /// the gradient is exactly 0 with CE at ln V, or a value is non-finite. Each of these is a
    /// bad step, so with max-bad-steps = 3 the run must stop by step 5, on both ranks (1 learner,
    /// 1 rollout worker), with exit code 4 and one message naming the step, the quantity and the
    /// threshold. The verdict asserts the kind of failure, never a value.
    func testAbsurdLearningRateStopsEveryRankWithAClearError() throws {
        let dir = runDir("lr1e4")
        let out = try MPIRun.run(np: 2, ["train"] + Self.tiny + ["--set", "learning-rate=1e4", "--run-dir", dir],
                                 timeout: 180)
        XCTAssertFalse(out.timedOut, "\(out)")
        XCTAssertNil(out.signal, "\(out)")
        XCTAssertEqual(out.exitCode, 4, "\(out)")
        let errors = out.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        XCTAssertEqual(errors.count, 1, "one message (from rank 0), not one per rank:\n\(out)")
        let message = String(errors.first ?? "")
        XCTAssertTrue(message.hasPrefix("error: training diverged: step "), message)
        let kinds = ["exceeds", "standard deviations above", "gradient norm is exactly 0", "is nan", "is inf", "is -inf"]
        XCTAssertTrue(kinds.contains { message.contains($0) }, "no known reason in: \(message)")
        XCTAssertTrue(message.contains("max-bad-steps = 3") || message.contains("non-finite"), message)
        XCTAssertTrue(message.contains("learning-rate is 10000"), message)

        let train = try trainRecords(dir)
        XCTAssertGreaterThanOrEqual(train.count, 3, "\(out)")
        XCTAssertLessThanOrEqual(train.count, 5, "3 bad steps in a row from step 3 on stop the run by step 5:\n\(out)")
        let last = try XCTUnwrap(train.last)
        XCTAssertEqual(last["bad_step"] as? Int, 1, "\(last)")
        let anomaly = try XCTUnwrap(last["anomaly"] as? String, "\(last)")
        let known: Set<String> = ["non-finite", "ce-limit", "loss-spike", "dead-gradient"]
        XCTAssertTrue(Set(anomaly.split(separator: ",").map(String.init)).isSubset(of: known), anomaly)
        XCTAssertTrue(train.allSatisfy { $0["bad_step"] != nil && $0["bad_steps"] != nil && $0.keys.contains("loss_z") },
                      "every train record says whether the step was bad")
        // The progress line (one per step without a terminal) shows the bad steps.
        XCTAssertTrue(out.stderr.contains("BAD STEP: "), "\(out)")
        // No checkpoint of diverged weights.
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/checkpoints/step-000008"), "\(out)")
    }

    /// The same model at lr 1e-3 for 12 steps with a window of 4 (so z-scores are computed from
    /// step 5): no step is bad and the run ends normally. The margin is by design: the CE of a
    /// random model sits at ln V ≈ 10.8, the z-score's std is at least 1 % of that (0.108), so a
    /// false spike needs a jump of 5 × 0.108 ≈ 0.54 nats in one step; the limit is 2·ln V ≈ 21.6.
    func testHealthyRunHasNoBadStep() throws {
        let dir = runDir("healthy")
        let args = ["train"] + Self.tiny.map { $0 == "8" ? "12" : $0 }
            + ["--quiet", "--set", "learning-rate=1e-3", "--set", "spike-window=4", "--run-dir", dir]
        let out = try MPIRun.run(np: 1, args, timeout: 180)
        XCTAssertTrue(out.succeeded, "\(out)")
        let train = try trainRecords(dir)
        XCTAssertEqual(train.count, 12, "\(out)")
        XCTAssertEqual(train.map { $0["bad_step"] as? Int }, Array(repeating: 0, count: 12), "\(train)")
        XCTAssertEqual(train.filter { $0["loss_z"] is NSNull }.count, 4, "z-scores from step 5 on")
        XCTAssertFalse(out.stderr.contains("warning: step"), "\(out)")
        // The printed configuration and config.yaml read as a person wrote them (issue 10).
        let yaml = try String(contentsOfFile: dir + "/config.yaml", encoding: .utf8)
        for line in ["learning-rate: 0.001", "temperature: 0.6", "stall-timeout: 300", "spike-z: 5"] {
            XCTAssertTrue(out.stderr.contains("\n\(line)\n"), "startup print lacks '\(line)':\n\(out)")
            XCTAssertTrue(yaml.contains("\n\(line)\n"), "config.yaml lacks '\(line)':\n\(yaml)")
        }
    }
}
