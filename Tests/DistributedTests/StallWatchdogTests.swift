import Foundation
import XCTest
@testable import Distributed

final class StallWatchdogTests: XCTestCase {
    /// A clock the test moves by hand (monotonic seconds).
    final class ManualClock: @unchecked Sendable {
        private let lock = NSLock()
        private var t = 0.0
        var now: Double {
            get { lock.lock(); defer { lock.unlock() }; return t }
            set { lock.lock(); t = newValue; lock.unlock() }
        }
    }

    /// Lines written by watchdogs (reports and notices).
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    }

    /// A watchdog without its thread, beaten by hand on `clock`.
    func manual(timeout: Double, rank: Int, channel: HeartbeatChannel? = nil, clock: ManualClock,
                notices: Lines = Lines()) -> StallWatchdog {
        StallWatchdog(timeout: timeout, rank: rank, channel: channel, note: nil, notice: { notices.add($0) },
                      clock: { clock.now }, startThread: false) { _ in XCTFail("manual watchdogs report by beat()") }
    }

    /// Beats every watchdog in `live` once per tick until `clock` reaches `end`; returns the
    /// first report of each rank (by rank).
    @discardableResult
    func run(_ live: [Int: StallWatchdog], clock: ManualClock, until end: Double,
             reports: inout [Int: String]) -> [Int: String] {
        let tick = live.values.first!.tick
        while clock.now + tick <= end + 1e-9 {
            clock.now += tick
            for (r, w) in live.sorted(by: { $0.key < $1.key }) where reports[r] == nil {
                if let report = w.beat() { reports[r] = report }
            }
        }
        return reports
    }

    /// The ranks a report names as not responding.
    func notResponding(_ report: String) -> Set<Int> {
        guard let start = report.range(of: "not responding: ") else { return [] }
        let segment = report[start.upperBound...].prefix { $0 != "—" }
        let pattern = try! NSRegularExpression(pattern: "rank (\\d+) \\(")
        let s = String(segment)
        return Set(pattern.matches(in: s, range: NSRange(s.startIndex..., in: s)).map {
            Int(s[Range($0.range(at: 1), in: s)!])!
        })
    }

    func testReportsPhaseStepAndLateRanks() {
        let clock = ManualClock()
        let w = manual(timeout: 5, rank: 3, clock: clock)
        var reports: [Int: String] = [:]
        run([3: w], clock: clock, until: 100, reports: &reports)
        XCTAssertNil(reports[3], "idle is never a stall")
        w.enter("receive experiences", step: 7, waitingOn: [1, 2, 4])
        run([3: w], clock: clock, until: 104, reports: &reports)
        XCTAssertNil(reports[3])
        w.stillWaiting(on: [2])
        run([3: w], clock: clock, until: 106, reports: &reports)
        let r = reports[3] ?? ""
        XCTAssertTrue(r.contains("[rank 3]") && r.contains("'receive experiences'") && r.contains("step 7"), r)
        XCTAssertTrue(r.contains("waiting for rank 2;"), r)
        let again = manual(timeout: 5, rank: 3, clock: clock)
        again.enter("backward", step: 1)
        again.leave()
        var none: [Int: String] = [:]
        run([3: again], clock: clock, until: clock.now + 100, reports: &none)
        XCTAssertNil(none[3], "a phase that was left never stalls")
    }

    func testFiresOnceAfterTheTimeout() {
        let fired = expectation(description: "stall reported")
        let box = Lines()
        let w = StallWatchdog(timeout: 0.3, rank: 0) { report in
            box.add(report)
            fired.fulfill()
        }
        w.enter("gradient all-reduce", step: 1, waitingOn: [0, 1])
        wait(for: [fired], timeout: 5)
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertEqual(box.all.count, 1)
        XCTAssertTrue(box.all[0].contains("waiting for ranks 0, 1"), box.all[0])
        w.stop()
    }

    func testAPhaseThatKeepsMovingNeverStalls() {
        let w = StallWatchdog(timeout: 0.3, rank: 0) { r in XCTFail("unexpected stall: \(r)") }
        defer { w.stop() }
        for step in 0..<8 {
            w.enter("backward", step: step)
            Thread.sleep(forTimeInterval: 0.1)
        }
        w.leave()
    }

    /// Three ranks as in a training step (0 learner, 1 and 2 rollout workers); one of them stops
    /// (its watchdog no longer beats, as under SIGSTOP). The others, whatever they wait for,
    /// name it, and only it; the stopped rank, once it runs again, blames no one.
    func testTheStoppedRankIsNamedWhoeverItIs() throws {
        for victim in 0..<3 {
            let channels = try LocalCommunicator.run(ranks: 3) { try $0.heartbeatChannel() }
            let clock = ManualClock()
            let notices = Lines()
            let dogs = (0..<3).map {
                manual(timeout: 10, rank: $0, channel: channels[$0], clock: clock, notices: notices)
            }
            defer { dogs.forEach { $0.stop() } }
            var reports: [Int: String] = [:]
            dogs[1].enter("rollout", step: 5)
            dogs[2].enter("rollout", step: 5)
            dogs[0].enter("receive experiences", step: 5, waitingOn: [1, 2])
            run(Dictionary(uniqueKeysWithValues: dogs.enumerated().map { ($0.offset, $0.element) }), clock: clock,
                until: 2, reports: &reports)
            // The victim stops mid-phase; the others go on until they wait (for someone).
            switch victim {
            case 0:
                dogs[1].enter("weight broadcast", step: 6, waitingOn: [0])
                dogs[2].enter("weight broadcast", step: 6, waitingOn: [0])
            case 1:
                dogs[0].stillWaiting(on: [1])
                dogs[2].enter("weight broadcast", step: 6, waitingOn: [0])
            default:
                dogs[0].stillWaiting(on: [2])
                dogs[1].enter("weight broadcast", step: 6, waitingOn: [0])
            }
            let live = Dictionary(uniqueKeysWithValues: dogs.enumerated().filter { $0.offset != victim }
                .map { ($0.offset, $0.element) })
            run(live, clock: clock, until: 14, reports: &reports)
            XCTAssertEqual(Set(reports.keys), Set(live.keys), "victim \(victim): \(reports)")
            for (r, text) in reports {
                XCTAssertEqual(notResponding(text), [victim], "victim \(victim), report of rank \(r): \(text)")
                XCTAssertFalse(text.contains("waiting for"), "victim \(victim): \(text)")
            }
            // The victim runs again (SIGCONT): its phase is 13 s old by the clock, but it was not running.
            clock.now += 0.3
            XCTAssertNil(dogs[victim].beat(), "victim \(victim) must not report after being stopped")
            XCTAssertEqual(notices.all.count, 1, "\(notices.all)")
            XCTAssertTrue(notices.all.first?.hasPrefix("[rank \(victim)] this process did not run for 12") ?? false,
                          "\(notices.all)")
        }
    }

    /// Every rank responds but one is stuck in work that waits for no one: after the timeout
    /// and one silence limit more, the others name it as busy (not as silent).
    func testBusyRankIsNamedWhenEveryRankResponds() throws {
        let channels = try LocalCommunicator.run(ranks: 3) { try $0.heartbeatChannel() }
        let clock = ManualClock()
        let dogs = (0..<3).map { manual(timeout: 10, rank: $0, channel: channels[$0], clock: clock) }
        let all = Dictionary(uniqueKeysWithValues: dogs.enumerated().map { ($0.offset, $0.element) })
        dogs[0].enter("receive experiences", step: 5, waitingOn: [2])
        dogs[1].enter("weight broadcast", step: 6, waitingOn: [0])
        dogs[2].enter("rollout", step: 5)
        var reports: [Int: String] = [:]
        run(all, clock: clock, until: 10 + dogs[0].silenceLimit - dogs[0].tick, reports: &reports)
        XCTAssertEqual(reports, [:], "no report before the timeout plus the silence limit")
        run(all, clock: clock, until: 10 + dogs[0].silenceLimit + 2 * dogs[0].tick, reports: &reports)
        XCTAssertEqual(Set(reports.keys), [0, 1, 2], "\(reports)")
        for (r, text) in reports {
            XCTAssertEqual(notResponding(text), [], text)
            XCTAssertTrue(text.contains("every rank responds; busy past the timeout (waiting for no one): "
                                        + "rank 2 (in 'rollout' of step 5"), "rank \(r): \(text)")
            XCTAssertTrue(text.contains("progress: rank 0 in 'receive experiences' of step 5"), text)
        }
    }

    /// A rank whose watchdog stopped normally said so: it is reported as finished, not silent.
    func testAFinishedRankIsNotSilent() throws {
        let channels = try LocalCommunicator.run(ranks: 2) { try $0.heartbeatChannel() }
        let clock = ManualClock()
        let dogs = (0..<2).map { manual(timeout: 4, rank: $0, channel: channels[$0], clock: clock) }
        var reports: [Int: String] = [:]
        dogs[1].enter("metrics", step: 3, waitingOn: [0])
        run([0: dogs[0], 1: dogs[1]], clock: clock, until: 1, reports: &reports)
        dogs[0].finish()
        run([1: dogs[1]], clock: clock, until: 10, reports: &reports)
        let text = try XCTUnwrap(reports[1])
        XCTAssertEqual(notResponding(text), [], text)
        XCTAssertTrue(text.contains("already finished: rank 0"), text)
    }

    func testHeartbeatRoundTrip() {
        let beats = [
            Heartbeat(sequence: 41, step: -1, phase: "receive experiences", secondsInPhase: 12.25, waitingOn: [1, 7],
                      finished: false),
            Heartbeat(sequence: 0, step: 9, phase: nil, secondsInPhase: 0, waitingOn: [], finished: true),
            Heartbeat(sequence: 1, step: 2, phase: "", secondsInPhase: 0.5, waitingOn: Array(0..<64), finished: false),
            Heartbeat(sequence: 1, step: 2, phase: "évaluation ✓", secondsInPhase: 1, waitingOn: [0], finished: false),
        ]
        for b in beats {
            let bytes = b.encoded()
            XCTAssertLessThan(bytes.count, 512)
            XCTAssertEqual(Heartbeat(decoding: bytes), b)
            XCTAssertNil(Heartbeat(decoding: Array(bytes.dropLast())), "truncated")
            XCTAssertNil(Heartbeat(decoding: bytes + [0]), "trailing byte")
        }
        let long = Heartbeat(sequence: 1, step: 1, phase: String(repeating: "é", count: 100), secondsInPhase: 0,
                             waitingOn: Array(0..<100), finished: false)
        let decoded = Heartbeat(decoding: long.encoded())
        XCTAssertEqual(decoded?.phase, String(repeating: "é", count: 64), "cut to 128 bytes on a character")
        XCTAssertEqual(decoded?.waitingOn, Array(0..<64))
        XCTAssertNil(Heartbeat(decoding: [2] + long.encoded().dropFirst()), "other version")
    }

    /// The MPI channel in a singleton: no peers, nothing to send or receive; close is final.
    func testMPIChannelInASingleton() throws {
        let world = try MPICommunicator.world()
        guard MPIRuntime.shared.threadLevel >= MPIRuntime.multipleLevel else {
            XCTAssertThrowsError(try world.heartbeatChannel())
            return
        }
        let channel = try world.heartbeatChannel()
        XCTAssertEqual(channel.size, 1)
        channel.post([1, 2, 3])
        XCTAssertTrue(channel.drain().isEmpty)
        channel.close()
        channel.post([1])
        XCTAssertTrue(channel.drain().isEmpty)
        let w = StallWatchdog(timeout: 1, rank: 0, channel: try world.heartbeatChannel()) { r in XCTFail(r) }
        Thread.sleep(forTimeInterval: 0.3)
        w.stop()
        XCTAssertTrue(w.threadDone, "stop() waits until the thread has closed the channel")
    }
}
