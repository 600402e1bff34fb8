import Foundation

/// Watches one rank's progress through named phases and, with a `HeartbeatChannel`, the other
/// ranks' too. When a phase lasts longer than `timeout` seconds it reports the phase, the step
/// and which rank holds the job up, then calls `onStall` (which aborts the job). Horovod's
/// stall inspector, plus heartbeats so that the report names the rank that did not arrive.
///
/// Every `tick` the watchdog's thread sends this rank's progress (phase, step, seconds in the
/// phase, the ranks it waits for) to every other rank and takes in theirs. At a stall:
/// - ranks silent for more than `silenceLimit` are named as not responding: their process does
///   not run (stopped, swapped out, or cut off), which every rank sees alike;
/// - otherwise (every rank alive, so a rank's own work or a mismatch holds the job up) the
///   report waits one `silenceLimit` more for a rank to fall silent, then names the ranks busy
///   past the timeout in work that waits for no one, else those at an earlier step, and lists
///   every rank's phase.
/// A gap longer than `silenceLimit` between two of its own ticks means this process itself
/// did not run; its clocks then leave that time out, so a stopped rank never blames the others.
public final class StallWatchdog: @unchecked Sendable {
    public let timeout: Double
    let rank: Int
    let channel: HeartbeatChannel?
    /// Why there are no heartbeats (added to a report when the job has several ranks).
    let note: String?
    let notice: @Sendable (String) -> Void
    let onStall: @Sendable (String) -> Void
    /// Monotonic seconds (tests pass a clock of their own).
    let clock: @Sendable () -> Double
    /// Seconds between heartbeats and checks.
    let tick: Double
    /// A peer without a heartbeat this long is not responding; a gap this long between two of
    /// this thread's own ticks means this process did not run.
    let silenceLimit: Double

    let condition = NSCondition()
    var phase: String?
    var step = 0
    var waitingOn: [Int] = []
    /// Monotonic time the current phase began.
    var since: Double
    /// Counts the phases entered and left, so peers see movement within a step.
    var sequence = 0
    var stopped = false
    var threadStarted = false
    var threadDone = false
    var watcher: pthread_t?
    /// The latest heartbeat of each peer and when it arrived (monotonic).
    var peers: [Int: (beat: Heartbeat, seen: Double)] = [:]
    /// When the watchdog started: a peer never heard from counts as silent since then.
    var started: Double
    var lastTick: Double
    /// When the current phase became overdue while every peer still responded.
    var overdueSince: Double?

    /// - `channel`: heartbeats to and from the other ranks (nil: report only what this rank
    ///   waits for, and `note` says why).
    /// - `notice`: receives a line when this process is found to have been suspended.
    public convenience init(timeout: Double, rank: Int, channel: HeartbeatChannel? = nil, note: String? = nil,
                            notice: @escaping @Sendable (String) -> Void = { _ in },
                            onStall: @escaping @Sendable (String) -> Void) {
        self.init(timeout: timeout, rank: rank, channel: channel, note: note, notice: notice,
                  clock: { StallWatchdog.monotonic() }, startThread: true, onStall: onStall)
    }

    /// A `clock` of their own and `startThread: false` let tests drive `beat()` by hand.
    init(timeout: Double, rank: Int, channel: HeartbeatChannel?, note: String?,
         notice: @escaping @Sendable (String) -> Void, clock: @escaping @Sendable () -> Double, startThread: Bool,
         onStall: @escaping @Sendable (String) -> Void) {
        precondition(timeout > 0, "stall timeout must be positive")
        self.timeout = timeout
        self.rank = rank
        self.channel = channel
        self.note = note
        self.notice = notice
        self.onStall = onStall
        self.clock = clock
        tick = min(0.5, timeout / 8)
        silenceLimit = max(4 * tick, min(3, timeout / 2))
        let t0 = clock()
        since = t0
        started = t0
        lastTick = t0
        if startThread {
            let t = Thread { [weak self] in self?.watch() }
            t.name = "stall-watchdog"
            t.start()
        }
    }

    deinit { stop() }

    /// Monotonic seconds (CLOCK_MONOTONIC: unaffected by changes of the wall clock).
    public static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Stops watching: tells the other ranks this one has finished, closes the channel and
    /// waits (a few seconds at most) until the thread no longer uses it. Idempotent.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        let onWatcher = watcher.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        let deadline = Date(timeIntervalSinceNow: 5)
        while threadStarted && !threadDone && !onWatcher && Date() < deadline {
            _ = condition.wait(until: deadline)
        }
        condition.unlock()
    }

    /// Marks the start of `phase` of `step`, waiting (possibly) for `ranks`.
    public func enter(_ phase: String, step: Int, waitingOn ranks: [Int] = []) {
        condition.lock()
        self.phase = phase
        self.step = step
        waitingOn = ranks
        since = clock()
        sequence += 1
        overdueSince = nil
        condition.unlock()
    }

    /// Narrows the ranks still awaited in the current phase (without restarting its clock).
    public func stillWaiting(on ranks: [Int]) {
        condition.lock()
        waitingOn = ranks
        condition.unlock()
    }

    /// Leaves the current phase (idle time is never a stall).
    public func leave() {
        condition.lock()
        phase = nil
        sequence += 1
        overdueSince = nil
        condition.unlock()
    }

    // MARK: the thread

    func watch() {
        condition.lock()
        watcher = pthread_self()
        threadStarted = true
        while !stopped {
            _ = condition.wait(until: Date(timeIntervalSinceNow: tick))
            if stopped { break }
            condition.unlock()
            let report = beat()
            condition.lock()
            if let report, !stopped {
                stopped = true
                condition.unlock()
                onStall(report)
                condition.lock()
            }
        }
        condition.unlock()
        finish()
    }

    /// Tells the peers this rank has finished and closes the channel.
    func finish() {
        condition.lock()
        let last = heartbeat(now: clock(), finished: true)
        condition.unlock()
        channel?.post(last.encoded())
        channel?.close()
        condition.lock()
        threadDone = true
        condition.broadcast()
        condition.unlock()
    }

    /// One tick: notices whether this process was suspended, takes in the peers' heartbeats,
    /// sends this rank's, and returns the stall report if there is one.
    func beat() -> String? {
        condition.lock()
        let now = clock()
        let gap = now - lastTick
        lastTick = now
        var suspended: Double?
        if gap > silenceLimit {
            // This process did not run (SIGSTOP, swapped out, starved of CPU): its phase clock
            // and what it last heard from the others are stale by the gap, not the others' fault.
            suspended = gap
            since += gap
            started += gap
            overdueSince = overdueSince.map { $0 + gap }
            for r in peers.keys { peers[r]!.seen += gap }
        }
        condition.unlock()
        if let suspended {
            notice("[rank \(rank)] this process did not run for \(Self.seconds(suspended)) s (stopped, swapped out or "
                   + "starved of CPU); the stall clocks leave that time out")
        }
        let incoming = channel?.drain() ?? []
        condition.lock()
        for (source, bytes) in incoming {
            if let b = Heartbeat(decoding: bytes) { peers[source] = (b, now) }
        }
        let mine = heartbeat(now: now, finished: false)
        let report = stallReport(now: now)
        condition.unlock()
        if report == nil { channel?.post(mine.encoded()) }
        return report
    }

    /// This rank's heartbeat (caller holds `condition`).
    func heartbeat(now: Double, finished: Bool) -> Heartbeat {
        Heartbeat(sequence: sequence, step: step, phase: phase, secondsInPhase: phase == nil ? 0 : now - since,
                  waitingOn: waitingOn, finished: finished)
    }

    // MARK: the report

    /// The report if the current phase is a stall at monotonic time `now` (caller holds
    /// `condition`). Nil also while it waits a little longer to see whether a peer falls silent.
    func stallReport(now: Double) -> String? {
        guard let phase, !stopped else { return nil }
        let waited = now - since
        guard waited > timeout else { return nil }
        let head = "[rank \(rank)] stalled: phase '\(phase)' of step \(step) has not finished after "
            + "\(Self.seconds(waited)) s (stall timeout \(String(format: "%g", timeout)) s)"
        guard let channel, channel.size > 1 else {
            let why = note.map { " (no heartbeats: \($0))" } ?? ""
            return head + Self.waiting(waitingOn) + why + "; aborting the job"
        }
        let others = (0..<channel.size).filter { $0 != rank }
        let silent = others.filter { r in
            guard let p = peers[r] else { return now - started > silenceLimit }
            return !p.beat.finished && now - p.seen > silenceLimit
        }
        if !silent.isEmpty {
            let who = silent.map { r -> String in
                guard let p = peers[r] else {
                    return "rank \(r) (no heartbeat since the watchdogs started, \(Self.seconds(now - started)) s ago)"
                }
                return "rank \(r) (no heartbeat for \(Self.seconds(now - p.seen)) s; last seen \(Self.where(p.beat)))"
            }
            return head + "; not responding: " + who.joined(separator: ", ")
                + " — stopped, swapped out or cut off from the others; aborting the job"
        }
        // Everyone responds. Give a peer that has only just gone quiet time to show it.
        let overdue = overdueSince ?? now
        overdueSince = overdue
        if now - overdue < silenceLimit { return nil }

        // Each rank's progress, extrapolated to now.
        var table: [(rank: Int, beat: Heartbeat)] = [(rank, heartbeat(now: now, finished: false))]
        for r in others {
            guard var b = peers[r]?.beat else { continue }
            if b.phase != nil { b.secondsInPhase += now - peers[r]!.seen }
            table.append((r, b))
        }
        table.sort { $0.rank < $1.rank }
        let busy = table.filter { $0.beat.phase != nil && $0.beat.waitingOn.isEmpty && !$0.beat.finished
            && $0.beat.secondsInPhase > timeout }
        let finished = table.filter { $0.beat.finished }
        let behind = table.filter { !$0.beat.finished && $0.beat.step < step }
        var s = head + "; every rank responds"
        if !busy.isEmpty {
            s += "; busy past the timeout (waiting for no one): "
                + busy.map { "rank \($0.rank) (\(Self.where($0.beat)))" }.joined(separator: ", ")
        } else if !finished.isEmpty {
            s += "; already finished: " + finished.map { "rank \($0.rank)" }.joined(separator: ", ")
        } else if !behind.isEmpty {
            s += "; behind this rank: "
                + behind.map { "rank \($0.rank) (\(Self.where($0.beat)))" }.joined(separator: ", ")
        } else {
            s += Self.waiting(waitingOn)
        }
        let shown = table.prefix(16).map { "rank \($0.rank) \(Self.where($0.beat))" + Self.waiting($0.beat.waitingOn) }
        s += "; progress: " + shown.joined(separator: ", ") + (table.count > 16 ? ", …" : "")
        return s + "; aborting the job"
    }

    /// "in 'rollout' of step 5 for 3.2 s"
    static func `where`(_ b: Heartbeat) -> String {
        if b.finished { return "finished" }
        guard let p = b.phase else { return "between phases of step \(b.step)" }
        return "in '\(p)' of step \(b.step) for \(seconds(b.secondsInPhase)) s"
    }

    /// "; waiting for ranks 0, 1" (empty for no ranks)
    static func waiting(_ ranks: [Int]) -> String {
        ranks.isEmpty ? "" : "; waiting for rank\(ranks.count == 1 ? "" : "s") "
            + ranks.map(String.init).joined(separator: ", ")
    }

    static func seconds(_ s: Double) -> String { String(format: s < 10 ? "%.1f" : "%.0f", s) }
}

/// One rank's progress as its heartbeat carries it.
struct Heartbeat: Equatable {
    var sequence: Int
    var step: Int
    /// The current phase; nil between phases.
    var phase: String?
    var secondsInPhase: Double
    var waitingOn: [Int]
    /// The rank's watchdog has stopped: it has finished (or is ending) normally.
    var finished: Bool

    static let version: UInt8 = 1

    /// Little-endian: version, flags, sequence, step, seconds, awaited ranks (count + Int32s,
    /// at most 64), phase name (length + UTF-8, at most 128 bytes). Under 512 bytes.
    func encoded() -> [UInt8] {
        var out: [UInt8] = [Self.version, (finished ? 1 : 0) | (phase != nil ? 2 : 0)]
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        put(Int64(sequence))
        put(Int64(step))
        put(secondsInPhase.bitPattern)
        let ranks = waitingOn.prefix(64)
        put(UInt16(ranks.count))
        for r in ranks { put(Int32(truncatingIfNeeded: r)) }
        var name = Array((phase ?? "").utf8.prefix(128))
        while String(bytes: name, encoding: .utf8) == nil { name.removeLast() }  // cut on a character
        put(UInt8(name.count))
        out += name
        return out
    }

    init(sequence: Int, step: Int, phase: String?, secondsInPhase: Double, waitingOn: [Int], finished: Bool) {
        self.sequence = sequence
        self.step = step
        self.phase = phase
        self.secondsInPhase = secondsInPhase
        self.waitingOn = waitingOn
        self.finished = finished
    }

    /// Decodes `encoded()`; nil for anything else.
    init?(decoding bytes: [UInt8]) {
        var at = 0
        func take<T: FixedWidthInteger>(_: T.Type) -> T? {
            let n = MemoryLayout<T>.size
            guard at + n <= bytes.count else { return nil }
            var v = T.zero
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: bytes[at..<(at + n)]) }
            at += n
            return T(littleEndian: v)
        }
        guard take(UInt8.self) == Self.version, let flags = take(UInt8.self),
              let seq = take(Int64.self), let step = take(Int64.self), let secs = take(UInt64.self),
              let n = take(UInt16.self) else { return nil }
        var ranks: [Int] = []
        for _ in 0..<n {
            guard let r = take(Int32.self) else { return nil }
            ranks.append(Int(r))
        }
        guard let len = take(UInt8.self), at + Int(len) == bytes.count,
              let name = String(bytes: bytes[at...], encoding: .utf8) else { return nil }
        self.init(sequence: Int(seq), step: Int(step), phase: flags & 2 != 0 ? name : nil,
                  secondsInPhase: Double(bitPattern: secs), waitingOn: ranks, finished: flags & 1 != 0)
    }
}
