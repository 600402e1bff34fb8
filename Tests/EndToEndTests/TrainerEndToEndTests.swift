import Foundation
import XCTest

/// `ebft-dist train` under mpirun with a tiny random model: the same run for any N.
final class TrainerEndToEndTests: XCTestCase {
    static let tiny = [
        "--preset", "small", "--quiet", "--steps", "3",
        "--set", "model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1",
        "--set", "chunk-length=32", "--set", "chunks-per-step=4", "--set", "samples-per-chunk=4",
        "--set", "eval-every=2", "--set", "eval-chunks=4", "--set", "learning-rate=1e-3",
    ]

    func runDir(_ name: String) throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-e2e-train-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: d)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func metrics(_ dir: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    /// np 1, 2 (1 learner + 1 worker), 3 (1 + 2), 4 (2 learners + 2 workers) and 2 colocated:
    /// the same rewards (the same sampled tokens), CE and gradient norms at every step.
    func testSameRunForAnyNumberOfRanks() throws {
        var reference: [[String: Any]]?
        for (np, extra) in [(1, [String]()), (2, []), (3, []), (4, ["--learners", "2"]), (2, ["--colocate"])] {
            let dir = try runDir("np\(np)\(extra.joined())")
            let out = try MPIRun.run(np: np, ["train"] + Self.tiny + ["--run-dir", dir] + extra, timeout: 120)
            XCTAssertTrue(out.succeeded, "\(out)")
            let m = try metrics(dir)
            XCTAssertEqual(m.filter { $0["kind"] as? String == "train" }.count, 3, "\(out)")
            XCTAssertEqual(m.filter { $0["kind"] as? String == "eval" }.count, 3, "\(out)")
            guard let ref = reference else { reference = m; continue }
            for (a, b) in zip(ref, m) {
                for key in ["reward", "alignment", "diversity", "ce", "grad_norm", "eval_ce", "eval_reward_pass1"] {
                    guard let x = a[key] as? Double else { continue }
                    let y = try XCTUnwrap(b[key] as? Double, "np \(np) \(extra): \(key) missing")
                    XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "np \(np) \(extra): \(key) at step \(a["step"] ?? "?")")
                }
            }
        }
    }

    func testBadRoleRequestIsAClearError() throws {
        let out = try MPIRun.run(np: 2, ["train"] + Self.tiny + ["--run-dir", try runDir("bad"), "--learners", "2"], timeout: 60)
        XCTAssertFalse(out.succeeded)
        XCTAssertTrue(out.stderr.contains("learner"), "\(out)")
    }
}
