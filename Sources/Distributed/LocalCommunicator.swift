import Foundation

/// N ranks as threads in one process, with MPI's semantics: the test double for role logic.
///
/// Collectives rendezvous on a condition variable: each rank deposits its contribution, the
/// last one to arrive computes the result once, and everyone leaves with it. Ranks that enter
/// different collectives (or pass different counts or roots) all get
/// `CommunicatorError.collectiveMismatch` instead of a hang. Point-to-point messages go to a
/// per-destination mailbox scanned in arrival order, so messages between one (source, tag)
/// pair are received in send order. Sends are buffered (never block) — MPI_Send may block,
/// so code must not depend on that. When a rank's body returns or throws, operations that
/// could only complete with its help throw `CommunicatorError.peerExited`.
public final class LocalCommunicator: Communicator {
    let group: LocalGroup
    public let rank: Int
    public var size: Int { group.members.count }
    public var maxTag: Int { 32767 }

    init(group: LocalGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    /// Runs `body` on `ranks` threads, each with its own communicator over one shared world,
    /// and returns the results in rank order. Rethrows the first error thrown by any rank (the
    /// root cause: ranks that then fail waiting on it throw later). A rank blocked longer than
    /// `timeout` seconds in one operation throws `CommunicatorError.timedOut` (a deadlock in
    /// the code under test then fails instead of hanging).
    public static func run<R>(ranks: Int, timeout: Double = 60,
                              _ body: @escaping (LocalCommunicator) throws -> R) throws -> [R] {
        precondition(ranks >= 1, "LocalCommunicator.run needs at least one rank")
        let universe = LocalUniverse(threads: ranks, timeout: timeout)
        let world = LocalGroup(universe: universe, members: Array(0..<ranks))
        let results = ResultBox<R>(count: ranks)
        let done = DispatchGroup()
        for r in 0..<ranks {
            done.enter()
            let thread = Thread {
                let comm = LocalCommunicator(group: world, rank: r)
                do {
                    let value = try body(comm)
                    results.set(r, .success(value))
                    universe.markExited(r, error: nil)
                } catch {
                    results.set(r, .failure(error))
                    universe.markExited(r, error: error)
                }
                done.leave()
            }
            thread.name = "LocalCommunicator rank \(r)"
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
        if let first = universe.firstError { throw first }
        return try results.values.map { try $0!.get() }
    }

    // MARK: collectives

    public func barrier() throws {
        _ = try group.collective("barrier", rank: rank, contribution: Contribution()) { _ in () }
    }

    public func startAllReduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws
        -> PendingCollective {
        DeferredAllReduce(comm: self, buffer: buffer, count: count, op: op)
    }

    public func allReduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws {
        let mine = Array(UnsafeBufferPointer(start: buffer, count: count))
        let result = try group.collective("allReduce(\(op.rawValue), \(T.self))", rank: rank,
                                          contribution: Contribution(count: count, value: mine)) { parts in
            try Self.checkSameCount(parts, "allReduce")
            var acc = parts[0].value as! [T]
            for p in parts.dropFirst() {
                let v = p.value as! [T]
                for i in 0..<acc.count { acc[i] = op.combine(acc[i], v[i]) }
            }
            return acc
        } as! [T]
        if count > 0 { result.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: count) } }
    }

    public func reduceScatter<T: MPIScalar>(_ send: UnsafePointer<T>, counts: [Int], into recv: UnsafeMutablePointer<T>,
                                            op: ReduceOp) throws {
        let name = "reduceScatter(\(op.rawValue), \(T.self))"
        try checkCounts(counts, name)
        let total = counts.reduce(0, +)
        let mine = Array(UnsafeBufferPointer(start: send, count: total))
        // Reduced in rank order, as `allReduce` reduces: the two agree element for element.
        let result = try group.collective(name, rank: rank, contribution: Contribution(count: total, value: (counts, mine))) { parts in
            let all = parts.map { $0.value as! ([Int], [T]) }
            if Set(all.map { $0.0 }).count > 1 {
                throw CommunicatorError.collectiveMismatch(operation: name, detail: "counts per rank are \(all.map { $0.0 })")
            }
            var acc = all[0].1
            for p in all.dropFirst() { for i in 0..<acc.count { acc[i] = op.combine(acc[i], p.1[i]) } }
            return acc
        } as! [T]
        let start = counts[..<rank].reduce(0, +)
        if counts[rank] > 0 { result.withUnsafeBufferPointer { recv.update(from: $0.baseAddress! + start, count: counts[rank]) } }
    }

    public func startReduceScatter<T: MPIScalar>(_ send: UnsafePointer<T>, counts: [Int], into recv: UnsafeMutablePointer<T>,
                                                 op: ReduceOp) throws -> PendingCollective {
        DeferredCollective { [self] in try reduceScatter(send, counts: counts, into: recv, op: op) }
    }

    public func allGather<T: MPIScalar>(inPlace buffer: UnsafeMutablePointer<T>, counts: [Int]) throws {
        let name = "allGather(inPlace:, \(T.self))"
        try checkCounts(counts, name)
        let start = counts[..<rank].reduce(0, +), total = counts.reduce(0, +)
        let mine = Array(UnsafeBufferPointer(start: buffer + start, count: counts[rank]))
        let result = try group.collective(name, rank: rank, contribution: Contribution(count: total, value: (counts, mine))) { parts in
            let all = parts.map { $0.value as! ([Int], [T]) }
            if Set(all.map { $0.0 }).count > 1 {
                throw CommunicatorError.collectiveMismatch(operation: name, detail: "counts per rank are \(all.map { $0.0 })")
            }
            return all.flatMap { $0.1 }
        } as! [T]
        if total > 0 { result.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: total) } }
    }

    private func checkCounts(_ counts: [Int], _ op: String) throws {
        if counts.count != size || counts.contains(where: { $0 < 0 }) {
            throw CommunicatorError.collectiveMismatch(operation: op, detail: "counts \(counts) must have one non-negative entry per rank (\(size))")
        }
    }

    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, root: Int) throws {
        try checkRank(root, "broadcast")
        let mine: [T] = rank == root ? Array(UnsafeBufferPointer(start: buffer, count: count)) : []
        let result = try group.collective("broadcast(\(T.self))", rank: rank,
                                          contribution: Contribution(count: count, root: root, value: mine)) { parts in
            try Self.checkSameCount(parts, "broadcast")
            try Self.checkSameRoot(parts, "broadcast")
            return parts[root].value
        } as! [T]
        if rank != root && count > 0 { result.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: count) } }
    }

    public func broadcast(bytes: inout [UInt8], root: Int) throws {
        try checkRank(root, "broadcast(bytes:)")
        let result = try group.collective("broadcast(bytes:)", rank: rank,
                                          contribution: Contribution(root: root, value: rank == root ? bytes : [])) { parts in
            try Self.checkSameRoot(parts, "broadcast(bytes:)")
            return parts[root].value
        } as! [UInt8]
        if rank != root { bytes = result }
    }

    public func allGather<T: MPIScalar>(_ values: UnsafePointer<T>, count: Int, into result: UnsafeMutablePointer<T>) throws {
        let all = try gatherCore("allGather(\(T.self))", values, count: count, root: nil)
        if !all.isEmpty { all.withUnsafeBufferPointer { result.update(from: $0.baseAddress!, count: all.count) } }
    }

    public func gather<T: MPIScalar>(_ values: UnsafePointer<T>, count: Int, into result: UnsafeMutablePointer<T>?, root: Int) throws {
        try checkRank(root, "gather")
        precondition(rank != root || result != nil, "gather: the root must pass a result buffer")
        let all = try gatherCore("gather(\(T.self))", values, count: count, root: root)
        if rank == root, let result, !all.isEmpty { all.withUnsafeBufferPointer { result.update(from: $0.baseAddress!, count: all.count) } }
    }

    private func gatherCore<T: MPIScalar>(_ name: String, _ values: UnsafePointer<T>, count: Int, root: Int?) throws -> [T] {
        let mine = Array(UnsafeBufferPointer(start: values, count: count))
        return try group.collective(name, rank: rank,
                                    contribution: Contribution(count: count, root: root ?? -1, value: mine)) { parts in
            try Self.checkSameCount(parts, name)
            try Self.checkSameRoot(parts, name)
            return parts.flatMap { $0.value as! [T] }
        } as! [T]
    }

    public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
        try group.collective("allGather(bytes:)", rank: rank, contribution: Contribution(value: bytes)) { parts in
            parts.map { $0.value as! [UInt8] }
        } as! [[UInt8]]
    }

    public func gather(bytes: [UInt8], root: Int) throws -> [[UInt8]]? {
        try checkRank(root, "gather(bytes:)")
        let all = try group.collective("gather(bytes:)", rank: rank, contribution: Contribution(root: root, value: bytes)) { parts in
            try Self.checkSameRoot(parts, "gather(bytes:)")
            return parts.map { $0.value as! [UInt8] }
        } as! [[UInt8]]
        return rank == root ? all : nil
    }

    public func split(color: Int?, key: Int) throws -> Communicator? {
        let c = (color ?? -1) >= 0 ? color! : -1
        let universe = group.universe
        let members = group.members
        let groups = try group.collective("split", rank: rank, contribution: Contribution(value: (c, key))) { parts in
            // For each rank: its new group and rank there (or nil when it takes no part).
            var placement = [(LocalGroup, Int)?](repeating: nil, count: parts.count)
            let requests = parts.enumerated().map { (rank: $0.offset, split: $0.element.value as! (Int, Int)) }
            let colors = Set(requests.map { $0.split.0 }).filter { $0 >= 0 }
            for color in colors.sorted() {
                let ordered = requests.filter { $0.split.0 == color }
                    .sorted { ($0.split.1, $0.rank) < ($1.split.1, $1.rank) }
                let newGroup = LocalGroup(universe: universe, members: ordered.map { members[$0.rank] })
                for (newRank, req) in ordered.enumerated() { placement[req.rank] = (newGroup, newRank) }
            }
            return placement
        } as! [(LocalGroup, Int)?]
        guard let (g, r) = groups[rank] else { return nil }
        return LocalCommunicator(group: g, rank: r)
    }

    public func abort(code: Int32) -> Never {
        FileHandle.standardError.write("LocalCommunicator: rank \(rank) called abort(code: \(code))\n".data(using: .utf8)!)
        exit(code)
    }

    // MARK: point to point

    public func send(_ bytes: UnsafeRawBufferPointer, to dest: Int, tag: Int) throws {
        try checkRank(dest, "send")
        try checkTag(tag, "send")
        group.post(Envelope(source: rank, tag: tag, bytes: Array(bytes)), to: dest)
    }

    public func probe(from source: Int?, tag: Int?) throws -> MessageInfo {
        try checkMatch(source, tag, "probe")
        let e = try group.wait(for: rank, source: source, tag: tag, remove: false, block: true, operation: "probe")!
        return MessageInfo(source: e.source, tag: e.tag, count: e.bytes.count)
    }

    public func tryProbe(from source: Int?, tag: Int?) throws -> MessageInfo? {
        try checkMatch(source, tag, "tryProbe")
        let e = try group.wait(for: rank, source: source, tag: tag, remove: false, block: false, operation: "tryProbe")
        return e.map { MessageInfo(source: $0.source, tag: $0.tag, count: $0.bytes.count) }
    }

    public func receive(from source: Int?, tag: Int?, expectedSize: Int?) throws -> Message {
        try checkMatch(source, tag, "receive")
        let e = try group.wait(for: rank, source: source, tag: tag, remove: true, block: true, operation: "receive")!
        if let expectedSize, expectedSize != e.bytes.count {
            throw CommunicatorError.messageSizeMismatch(operation: "receive", source: e.source, tag: e.tag,
                                                        expected: expectedSize, actual: e.bytes.count)
        }
        return Message(source: e.source, tag: e.tag, bytes: e.bytes)
    }

    // MARK: checks

    private func checkRank(_ r: Int, _ op: String) throws {
        if r < 0 || r >= size { throw CommunicatorError.invalidRank(operation: op, rank: r, size: size) }
    }

    private func checkTag(_ t: Int, _ op: String) throws {
        if t < 0 || t > maxTag { throw CommunicatorError.invalidTag(operation: op, tag: t, maxTag: maxTag) }
    }

    private func checkMatch(_ source: Int?, _ tag: Int?, _ op: String) throws {
        if let source { try checkRank(source, op) }
        if let tag { try checkTag(tag, op) }
    }

    private static func checkSameCount(_ parts: [Contribution], _ op: String) throws {
        let counts = parts.map(\.count)
        if Set(counts).count > 1 {
            throw CommunicatorError.collectiveMismatch(operation: op, detail: "element counts per rank are \(counts)")
        }
    }

    private static func checkSameRoot(_ parts: [Contribution], _ op: String) throws {
        let roots = parts.map(\.root)
        if Set(roots).count > 1 {
            throw CommunicatorError.collectiveMismatch(operation: op, detail: "roots per rank are \(roots)")
        }
    }
}

// MARK: - Shared state

/// What one rank brings to a collective.
struct Contribution {
    var count = 0
    var root = -1
    var value: Any = ()
}

struct Envelope {
    var source: Int
    var tag: Int
    var bytes: [UInt8]
}

/// State shared by all threads of one `run`: one lock and condition for every group (simple,
/// and enough for a test double), and which threads have ended.
final class LocalUniverse: @unchecked Sendable {
    let condition = NSCondition()
    private(set) var exited: [Bool]
    private(set) var firstError: Error?

    /// Longest wait of one operation before it throws `timedOut`.
    let timeout: Double

    init(threads: Int, timeout: Double) {
        exited = [Bool](repeating: false, count: threads)
        self.timeout = timeout
    }

    /// Waits on `condition` (held by the caller) until signalled or `deadline`; throws when past it.
    func wait(until deadline: Date, _ operation: String) throws {
        if !condition.wait(until: deadline) && Date() >= deadline {
            throw CommunicatorError.timedOut(operation: operation, seconds: timeout)
        }
    }

    func markExited(_ thread: Int, error: Error?) {
        condition.lock()
        exited[thread] = true
        if let error, firstError == nil { firstError = error }
        condition.broadcast()
        condition.unlock()
    }
}

/// One communicator's shared state (a world, or a group made by `split`).
final class LocalGroup: @unchecked Sendable {
    let universe: LocalUniverse
    /// Universe thread index of each rank.
    let members: [Int]

    private var generation = 0
    private var slots: [(name: String, part: Contribution)?]
    private var arrived = 0
    private var lastResult: Result<Any, Error> = .success(())
    private var mailboxes: [[Envelope]]

    init(universe: LocalUniverse, members: [Int]) {
        self.universe = universe
        self.members = members
        slots = Array(repeating: nil, count: members.count)
        mailboxes = Array(repeating: [], count: members.count)
    }

    /// Rendezvous of all ranks. The last rank to arrive runs `combine` once over the
    /// contributions in rank order; every rank returns its result (or throws its error).
    func collective(_ name: String, rank: Int, contribution: Contribution,
                    combine: ([Contribution]) throws -> Any) throws -> Any {
        let cond = universe.condition
        cond.lock(); defer { cond.unlock() }
        let myGeneration = generation
        let deadline = Date(timeIntervalSinceNow: universe.timeout)
        slots[rank] = (name, contribution)
        arrived += 1
        if arrived == members.count {
            let names = slots.map { $0!.name }
            if Set(names).count > 1 {
                let detail = names.enumerated().map { "rank \($0.offset): \($0.element)" }.joined(separator: ", ")
                lastResult = .failure(CommunicatorError.collectiveMismatch(operation: name, detail: detail))
            } else {
                let parts = slots.map { $0!.part }
                lastResult = Result { try combine(parts) }
            }
            slots = Array(repeating: nil, count: members.count)
            arrived = 0
            generation += 1
            cond.broadcast()
        } else {
            while generation == myGeneration {
                // A rank that ended without arriving can never arrive.
                if let missing = members.indices.first(where: { slots[$0] == nil && universe.exited[members[$0]] }) {
                    throw CommunicatorError.peerExited(operation: name, rank: missing)
                }
                try universe.wait(until: deadline, name)
            }
        }
        return try lastResult.get()
    }

    func post(_ envelope: Envelope, to dest: Int) {
        let cond = universe.condition
        cond.lock()
        mailboxes[dest].append(envelope)
        cond.broadcast()
        cond.unlock()
    }

    /// The first pending message for `rank` matching (source, tag), waiting for one if `block`.
    func wait(for rank: Int, source: Int?, tag: Int?, remove: Bool, block: Bool, operation: String) throws -> Envelope? {
        let cond = universe.condition
        cond.lock(); defer { cond.unlock() }
        let deadline = Date(timeIntervalSinceNow: universe.timeout)
        while true {
            if let i = mailboxes[rank].firstIndex(where: { (source == nil || $0.source == source!) && (tag == nil || $0.tag == tag!) }) {
                let e = mailboxes[rank][i]
                if remove { mailboxes[rank].remove(at: i) }
                return e
            }
            if !block { return nil }
            // Nothing pending: give up when no rank that could still send is alive.
            if let source {
                if universe.exited[members[source]] { throw CommunicatorError.peerExited(operation: operation, rank: source) }
            } else if members.indices.allSatisfy({ $0 == rank || universe.exited[members[$0]] }) {
                throw CommunicatorError.peerExited(operation: operation, rank: members.count == 1 ? rank : (rank + 1) % members.count)
            }
            try universe.wait(until: deadline, operation)
        }
    }
}

final class ResultBox<R>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Result<R, Error>?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<R, Error>) { lock.lock(); values[i] = r; lock.unlock() }
}
