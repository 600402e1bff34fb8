import Foundation
import XCTest
@testable import Distributed

final class StallWatchdogTests: XCTestCase {
    func testReportsPhaseStepAndLateRanks() {
        let w = StallWatchdog(timeout: 5, rank: 3) { _ in }
        defer { w.stop() }
        XCTAssertNil(w.stallReport(now: Date().addingTimeInterval(100)), "idle is never a stall")
        w.enter("receive experiences", step: 7, waitingOn: [1, 2, 4])
        XCTAssertNil(w.stallReport(now: Date().addingTimeInterval(4)))
        w.stillWaiting(on: [2])
        let r = w.stallReport(now: Date().addingTimeInterval(6))
        XCTAssertNotNil(r)
        XCTAssertTrue(r!.contains("[rank 3]") && r!.contains("'receive experiences'") && r!.contains("step 7"), r!)
        XCTAssertTrue(r!.contains("waiting for rank 2;"), r!)
        w.leave()
        XCTAssertNil(w.stallReport(now: Date().addingTimeInterval(100)))
    }

    func testFiresOnceAfterTheTimeout() {
        let fired = expectation(description: "stall reported")
        final class Reports: @unchecked Sendable { let lock = NSLock(); var all: [String] = [] }
        let box = Reports()
        let w = StallWatchdog(timeout: 0.3, rank: 0) { report in
            box.lock.lock(); box.all.append(report); box.lock.unlock()
            fired.fulfill()
        }
        w.enter("gradient all-reduce", step: 1, waitingOn: [0, 1])
        wait(for: [fired], timeout: 5)
        Thread.sleep(forTimeInterval: 0.5)
        box.lock.lock(); defer { box.lock.unlock() }
        XCTAssertEqual(box.all.count, 1)
        XCTAssertTrue(box.all[0].contains("waiting for ranks 0, 1"), box.all[0])
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
}
