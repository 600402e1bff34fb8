import Foundation
import XCTest

/// `shard-optimizer=true` under mpirun (issue 14 item 6): the sharded run equals the unsharded
/// one, its checkpoints hold the whole optimizer state, and it resumes bit for bit.
final class ShardedOptimizerEndToEndTests: XCTestCase {
    /// Largest difference of two tensor sets relative to each tensor's largest magnitude.
    func worstRelative(_ a: [String: [Float]], _ b: [String: [Float]]) throws -> Float {
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        var worst: Float = 0
        for (name, x) in a {
            let y = try XCTUnwrap(b[name])
            XCTAssertEqual(x.count, y.count, name)
            let scale = max(x.map(abs).max() ?? 0, 1e-6)
            for (u, w) in zip(x, y) { worst = max(worst, abs(u - w) / scale) }
        }
        return worst
    }

    /// Two learners + two workers, and three colocated learners (uneven shards: the tiny
    /// model's parameter count is odd), sharded against unsharded: the same rewards (so the
    /// same sampled tokens), CE and gradient norms at every step, and final weights and Adam
    /// moments equal up to float reduction order — the criterion `testSameRunForAnyNumberOfRanks`
    /// holds runs of different N to (1e-5 relative). With two learners MPI's sums of two terms
    /// are the same in either order, and the norms differ only in the rounding of the blocks a
    /// shard boundary cuts, so there the runs are in fact expected to agree exactly.
    func testShardedRunEqualsUnshardedRun() throws {
        for (np, extra) in [(4, ["--learners", "2"]), (3, ["--colocate"])] {
            var runs: [(metrics: [[String: Any]], weights: [String: [Float]], optimizer: [String: [Float]], stderr: String)] = []
            for shard in [false, true] {
                let dir = runDir("np\(np)\(shard)")
                let out = try MPIRun.run(np: np, ["train"] + TrainerEndToEndTests.tiny + ["--run-dir", dir]
                                         + extra + (shard ? ["--set", "shard-optimizer=true"] : []), timeout: 180)
                XCTAssertTrue(out.succeeded, "\(out)")
                guard out.succeeded else { return }
                let ck = dir + "/checkpoints/step-000003/"
                runs.append((try metrics(dir), try TrainerEndToEndTests.safetensors(ck + "model.safetensors"),
                             try TrainerEndToEndTests.safetensors(ck + "optimizer.safetensors"), out.stderr))
            }
            let (ref, got) = (runs[0], runs[1])
            XCTAssertTrue(got.stderr.contains("optimizer state sharded over"), got.stderr)
            let params = try XCTUnwrap(ref.optimizer["adam.m"]).count
            XCTAssertEqual(got.optimizer["adam.m"]?.count, params, "the checkpoint must hold the whole first moment")
            XCTAssertEqual(got.optimizer["adam.v"]?.count, params)
            XCTAssertLessThan(try worstRelative(ref.weights, got.weights), 1e-5, "np \(np) \(extra): weights")
            XCTAssertLessThan(try worstRelative(ref.optimizer, got.optimizer), 1e-5, "np \(np) \(extra): moments")
            XCTAssertEqual(ref.metrics.count, got.metrics.count)
            var compared = 0
            for (a, b) in zip(ref.metrics, got.metrics) where a["kind"] as? String != "memory" {
                for key in ["reward", "alignment", "ce", "grad_norm", "grad_signal_fraction", "eval_ce", "eval_reward_pass1"] {
                    guard let x = a[key] as? Double else { continue }
                    let y = try XCTUnwrap(b[key] as? Double, "np \(np) \(extra): \(key) missing")
                    XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "np \(np) \(extra): \(key) at step \(a["step"] ?? "?")")
                    compared += 1
                }
            }
            XCTAssertGreaterThan(compared, 15)
        }
    }

    /// A sharded run stopped after a checkpoint and resumed with the same learners ends with
    /// the uninterrupted run's weights and optimizer state, bit for bit; the checkpoint (whole
    /// optimizer state) also resumes with another number of learners.
    func testShardedResumeIsBitExact() throws {
        let args = ["train"] + TrainerEndToEndTests.tiny.map { $0 == "3" ? "4" : $0 }
            + ["--learners", "2", "--set", "shard-optimizer=true"]
        let a = runDir("a"), b = runDir("b"), c = runDir("c")
        let full = try MPIRun.run(np: 4, args + ["--run-dir", a], timeout: 180)
        XCTAssertTrue(full.succeeded, "\(full)")
        let first = try MPIRun.run(np: 4, args + ["--run-dir", b, "--stop-after", "2"], timeout: 180)
        XCTAssertTrue(first.succeeded, "\(first)")
        let rest = try MPIRun.run(np: 4, ["train", "--resume", b, "--quiet"], timeout: 180)
        XCTAssertTrue(rest.succeeded, "\(rest)")
        XCTAssertTrue(rest.stderr.contains("resumed from"), "\(rest)")
        for f in ["model.safetensors", "optimizer.safetensors"] {
            let x = try Data(contentsOf: URL(fileURLWithPath: a + "/checkpoints/step-000004/" + f))
            let y = try Data(contentsOf: URL(fileURLWithPath: b + "/checkpoints/step-000004/" + f))
            XCTAssertTrue(x == y, "\(f) differs after the resume")
        }
        // Three colocated learners take the two-learner checkpoint (re-sharded on load).
        let other = try MPIRun.run(np: 3, ["train", "--resume", b + "/checkpoints/step-000002", "--run-dir", c, "--colocate",
                                           "--quiet"], timeout: 180)
        XCTAssertTrue(other.succeeded, "\(other)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: c + "/checkpoints/step-000004/optimizer.safetensors"))
    }
}
