import Foundation

/// Watches one rank's progress through named phases. When a phase lasts longer than
/// `timeout` seconds it reports the phase, the step and the ranks this rank is waiting for,
/// then calls `onStall` (which aborts the job). Horovod's stall inspector, reduced to what a
/// rank can see of its own waits.
public final class StallWatchdog: @unchecked Sendable {
    public let timeout: Double
    let rank: Int
    let onStall: @Sendable (String) -> Void
    let lock = NSLock()
    var phase: String?
    var step = 0
    var waitingOn: [Int] = []
    var since = Date()
    var stopped = false
    var thread: Thread?

    public init(timeout: Double, rank: Int, onStall: @escaping @Sendable (String) -> Void) {
        precondition(timeout > 0, "stall timeout must be positive")
        self.timeout = timeout
        self.rank = rank
        self.onStall = onStall
        let t = Thread { [weak self] in self?.watch() }
        t.name = "stall-watchdog"
        thread = t
        t.start()
    }

    deinit { stop() }

    public func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    /// Marks the start of `phase` of `step`, waiting (possibly) for `ranks`.
    public func enter(_ phase: String, step: Int, waitingOn ranks: [Int] = []) {
        lock.lock()
        self.phase = phase
        self.step = step
        waitingOn = ranks
        since = Date()
        lock.unlock()
    }

    /// Narrows the ranks still awaited in the current phase (without restarting its clock).
    public func stillWaiting(on ranks: [Int]) {
        lock.lock()
        waitingOn = ranks
        lock.unlock()
    }

    /// Leaves the current phase (idle time is never a stall).
    public func leave() {
        lock.lock()
        phase = nil
        lock.unlock()
    }

    /// The report for the current state if it is a stall at time `now` (for tests).
    func stallReport(now: Date) -> String? {
        lock.lock()
        defer { lock.unlock() }
        guard let phase, !stopped else { return nil }
        let waited = now.timeIntervalSince(since)
        guard waited > timeout else { return nil }
        let who = waitingOn.isEmpty ? "" : "; waiting for rank\(waitingOn.count == 1 ? "" : "s") "
            + waitingOn.map(String.init).joined(separator: ", ")
        return "[rank \(rank)] stalled: phase '\(phase)' of step \(step) has not finished after "
            + String(format: "%.0f", waited) + " s (stall timeout \(String(format: "%g", timeout)) s)\(who); aborting the job"
    }

    func watch() {
        let tick = min(1.0, timeout / 4)
        while true {
            Thread.sleep(forTimeInterval: tick)
            lock.lock()
            let done = stopped
            lock.unlock()
            if done { return }
            if let report = stallReport(now: Date()) {
                stop()
                onStall(report)
                return
            }
        }
    }
}
