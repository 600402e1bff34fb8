import Foundation
import XCTest

/// The stall watchdog under mpirun: a rank that stops running mid-training (SIGSTOP) is named
/// by the others as the one that did not arrive, whichever rank it is, and the job ends.
final class StallEndToEndTests: XCTestCase {
    static let stallTimeout = 10.0

    /// A tiny random model on a small corpus (loading takes well under the stall timeout), with
    /// far more steps than the test lets it run.
    static let args = [
        "train", "--preset", "small", "--quiet", "--steps", "100000",
        "--set", "model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1",
        "--set", "corpus-root=/usr/lib/python3.11/email",
        "--set", "chunk-length=32", "--set", "chunks-per-step=4", "--set", "samples-per-chunk=4",
        "--set", "eval-every=0", "--stall-timeout", "\(Int(stallTimeout))",
    ]

    /// The ranks a "stalled:" line names as not responding ("not responding: rank 2 (…), …").
    static func notResponding(_ line: String) -> Set<Int> {
        guard let start = line.range(of: "not responding: ") else { return [] }
        let segment = String(line[start.upperBound...].prefix { $0 != "—" })
        let pattern = try! NSRegularExpression(pattern: "rank (\\d+) \\(")
        return Set(pattern.matches(in: segment, range: NSRange(segment.startIndex..., in: segment)).map {
            Int(segment[Range($0.range(at: 1), in: segment)!])!
        })
    }

    /// Runs 3 ranks (0 learner, 1 and 2 rollout workers), stops `victim` once a step is done,
    /// and checks that the job ends within a few stall timeouts with every stall report naming
    /// the victim, and only it, as the rank that does not respond.
    func checkStoppedRankIsNamed(_ victim: Int) throws {
        let np = 3
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("ebft-e2e-stall-\(getpid())-\(victim)").path
        try? FileManager.default.removeItem(atPath: dir)
        addTeardownBlock {
            // A stopped rank may outlive the job: wake and end whatever is left of it.
            for r in 0..<np {
                if let p = TrainerResumeEndToEndTests.rankPID(r, runDir: dir) { kill(p, SIGCONT); kill(p, SIGKILL) }
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
        var stoppedAt: Date?
        var pid: pid_t = 0
        let out = try MPIRun.run(np: np, Self.args + ["--run-dir", dir], timeout: 12 * Self.stallTimeout) {
            guard stoppedAt == nil,
                  let m = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8), m.contains("\n"),
                  let p = TrainerResumeEndToEndTests.rankPID(victim, runDir: dir) else { return }
            pid = p
            kill(p, SIGSTOP)
            stoppedAt = Date()
        }
        let stopped = try XCTUnwrap(stoppedAt, "no step finished / rank \(victim) not found: \(out)")
        let ended = Date().timeIntervalSince(stopped)
        XCTAssertFalse(out.succeeded, "\(out)")
        XCTAssertFalse(out.timedOut, "\(out)")
        // The stall timeout, then at most a few seconds of heartbeat silence and the teardown.
        XCTAssertLessThan(ended, 3 * Self.stallTimeout, "the job took \(ended) s to end after the stop: \(out)")
        let reports = (out.stdout + out.stderr).split(separator: "\n").map(String.init)
            .filter { $0.contains("stalled:") }
        XCTAssertFalse(reports.isEmpty, "no stall report after stopping rank \(victim) (pid \(pid)): \(out)")
        for line in reports {
            XCTAssertEqual(Self.notResponding(line), [victim], "rank \(victim) was stopped: \(line)")
            XCTAssertFalse(line.contains("waiting for"), "the report must not blame the ranks it waits for: \(line)")
        }
    }

    /// A rollout worker stops: the learner (which awaits its experiences) and the other worker
    /// (which awaits the learner's weights) both name the worker.
    func testStoppedWorkerIsNamed() throws { try checkStoppedRankIsNamed(1) }

    /// Rank 0 (the learner and the broadcast root) stops: the workers name rank 0.
    func testStoppedLearnerRankZeroIsNamed() throws { try checkStoppedRankIsNamed(0) }

    func testReportParsing() {
        XCTAssertEqual(Self.notResponding("[rank 0] stalled: …; not responding: rank 2 (no heartbeat for 9.6 s; "
            + "last seen in 'rollout' of step 5 for 1.0 s), rank 11 (x) — stopped, swapped out or cut off"), [2, 11])
        XCTAssertEqual(Self.notResponding("[rank 1] stalled: …; waiting for rank 0; aborting the job"), [])
    }
}
