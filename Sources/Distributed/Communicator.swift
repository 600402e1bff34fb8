/// The message-passing interface every distributed piece of ebft-dist talks to.
///
/// Two implementations: `MPICommunicator` (Open MPI, one process per rank) and
/// `LocalCommunicator` (N ranks as threads in one process, the test double). Semantics follow
/// MPI: collectives must be entered by every rank of the communicator in the same order;
/// point-to-point messages between one (source, tag) pair arrive in send order.
///
/// A communicator is used from one thread per rank.

/// Element types the collectives move and reduce.
public protocol MPIScalar: Comparable, AdditiveArithmetic, Sendable {
    static var scalarKind: ScalarKind { get }
}

/// The wire type of an `MPIScalar` (what MPI datatype it maps to).
public enum ScalarKind: Sendable, Equatable {
    case uint8, int32, int64, float32, float64
}

extension UInt8: MPIScalar { public static var scalarKind: ScalarKind { .uint8 } }
extension Int32: MPIScalar { public static var scalarKind: ScalarKind { .int32 } }
extension Int64: MPIScalar { public static var scalarKind: ScalarKind { .int64 } }
extension Int: MPIScalar {
    public static var scalarKind: ScalarKind {
        MemoryLayout<Int>.size == 8 ? .int64 : .int32
    }
}
extension Float: MPIScalar { public static var scalarKind: ScalarKind { .float32 } }
extension Double: MPIScalar { public static var scalarKind: ScalarKind { .float64 } }

/// Reduction operators of `allReduce`.
public enum ReduceOp: String, Sendable, CaseIterable {
    case sum, max, min

    @inlinable
    public func combine<T: MPIScalar>(_ a: T, _ b: T) -> T {
        switch self {
        case .sum: return a + b
        case .max: return Swift.max(a, b)
        case .min: return Swift.min(a, b)
        }
    }
}

/// Envelope of a pending point-to-point message (from `probe`).
public struct MessageInfo: Sendable, Equatable {
    public var source: Int
    public var tag: Int
    /// Size of the message in bytes.
    public var count: Int
    public init(source: Int, tag: Int, count: Int) {
        self.source = source; self.tag = tag; self.count = count
    }
}

/// A received point-to-point message.
public struct Message: Sendable, Equatable {
    public var source: Int
    public var tag: Int
    public var bytes: [UInt8]
    public init(source: Int, tag: Int, bytes: [UInt8]) {
        self.source = source; self.tag = tag; self.bytes = bytes
    }
}

/// Failures of communication, with what was attempted and why it failed.
public enum CommunicatorError: Error, Equatable, CustomStringConvertible {
    /// An MPI call returned an error; `message` is MPI's own text (MPI_Error_string).
    case mpi(operation: String, code: Int32, message: String)
    /// A receive that expected `expected` bytes got a message of `actual` bytes (consumed).
    case messageSizeMismatch(operation: String, source: Int, tag: Int, expected: Int, actual: Int)
    /// A rank argument (destination, source or root) is outside `0..<size`.
    case invalidRank(operation: String, rank: Int, size: Int)
    /// A tag outside `0...maxTag`.
    case invalidTag(operation: String, tag: Int, maxTag: Int)
    /// A `split` color or key that MPI cannot represent.
    case invalidSplit(color: Int, key: Int)
    /// A point-to-point message too large for one MPI call.
    case messageTooLarge(operation: String, bytes: Int, limit: Int)
    /// Ranks entered different collectives, or the same collective with different arguments
    /// (detected by `LocalCommunicator`; MPI would hang or corrupt data instead).
    case collectiveMismatch(operation: String, detail: String)
    /// A rank this operation waits for has ended (returned or threw) — `LocalCommunicator`.
    case peerExited(operation: String, rank: Int)
    /// An operation waited longer than the allowed time — `LocalCommunicator` (likely a deadlock).
    case timedOut(operation: String, seconds: Double)
    /// MPI is not usable in this process (finalized, or initialisation failed).
    case runtimeUnavailable(String)

    public var description: String {
        switch self {
        case let .mpi(op, code, message):
            return "\(op) failed: \(message) (MPI error code \(code))"
        case let .messageSizeMismatch(op, source, tag, expected, actual):
            return "\(op): expected a message of \(expected) bytes from rank \(source) (tag \(tag)) but it has \(actual) bytes"
        case let .invalidRank(op, rank, size):
            return "\(op): rank \(rank) does not exist in a communicator of size \(size) (valid ranks: 0..<\(size))"
        case let .invalidTag(op, tag, maxTag):
            return "\(op): tag \(tag) is out of range (valid tags: 0...\(maxTag))"
        case let .invalidSplit(color, key):
            return "split(color: \(color), key: \(key)): color and key must fit in Int32"
        case let .messageTooLarge(op, bytes, limit):
            return "\(op): message of \(bytes) bytes exceeds the point-to-point limit of \(limit) bytes; send it in parts"
        case let .collectiveMismatch(op, detail):
            return "\(op): ranks disagree: \(detail)"
        case let .peerExited(op, rank):
            return "\(op): rank \(rank) has ended, so this operation can never complete"
        case let .timedOut(op, seconds):
            return "\(op): still waiting after \(seconds) s; the ranks are probably deadlocked (a collective not entered by all, or a receive with no matching send)"
        case let .runtimeUnavailable(why):
            return "MPI is not available: \(why)"
        }
    }
}

/// Message passing among `size` ranks. Implementations: `MPICommunicator`, `LocalCommunicator`.
///
/// Pointer-based entry points are the primitives (the flat-parameter trainer all-reduces and
/// broadcasts one big region); `inout [T]` conveniences are in an extension.
public protocol Communicator: AnyObject {
    /// This process's (or thread's) rank, `0..<size`.
    var rank: Int { get }
    var size: Int { get }
    /// Largest tag accepted by `send` (at least 32767).
    var maxTag: Int { get }

    /// Blocks until every rank has entered the barrier.
    func barrier() throws

    /// Reduces `count` elements at `buffer` element-wise over all ranks, in place.
    func allReduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws

    /// Starts an in-place all-reduce of `count` elements at `buffer` that completes by `wait()`
    /// on the returned handle (the buffer must stay valid and untouched until then). Every rank
    /// must start the same reductions in the same order. Implementations without non-blocking
    /// collectives may do all the work in `wait()`.
    func startAllReduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws
        -> PendingCollective

    /// Reduce-scatter with per-rank counts (MPI_Reduce_scatter): `send` holds Σ `counts`
    /// elements on every rank; rank i receives in `recv` the element-wise reduction over all
    /// ranks of the `counts[i]` elements at offset Σ_{j<i} counts[j]. `counts` has `size`
    /// entries (zeros allowed) and is the same on every rank. `recv` is either this rank's own
    /// part of `send` (`send + Σ_{j<rank} counts[j]`: in place, MPI_IN_PLACE; the rest of `send`
    /// is then undefined afterwards) or does not overlap `send`.
    func reduceScatter<T: MPIScalar>(_ send: UnsafePointer<T>, counts: [Int], into recv: UnsafeMutablePointer<T>,
                                     op: ReduceOp) throws

    /// Starts `reduceScatter` (MPI_Ireduce_scatter); `send` and `recv` must stay valid and
    /// untouched until `wait()` on the returned handle. Every rank must start the same
    /// collectives in the same order.
    func startReduceScatter<T: MPIScalar>(_ send: UnsafePointer<T>, counts: [Int], into recv: UnsafeMutablePointer<T>,
                                          op: ReduceOp) throws -> PendingCollective

    /// In-place all-gather with per-rank counts (MPI_Allgatherv with MPI_IN_PLACE): rank i's
    /// `counts[i]` elements at offset Σ_{j<i} counts[j] of `buffer` (Σ `counts` elements) are
    /// copied to the same place on every rank. `counts` is the same on every rank.
    func allGather<T: MPIScalar>(inPlace buffer: UnsafeMutablePointer<T>, counts: [Int]) throws

    /// Copies `count` elements at `buffer` on `root` into `buffer` on every rank.
    /// Every rank must pass the same `count`.
    func broadcast<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, root: Int) throws

    /// Broadcasts a byte string of any length from `root`; other ranks' `bytes` are replaced.
    func broadcast(bytes: inout [UInt8], root: Int) throws

    /// Every rank contributes `count` elements; `result` (`count * size` elements) receives
    /// them in rank order. Every rank must pass the same `count`.
    func allGather<T: MPIScalar>(_ values: UnsafePointer<T>, count: Int, into result: UnsafeMutablePointer<T>) throws

    /// Like `allGather`, but only `root` receives; `result` is ignored (may be nil) elsewhere.
    func gather<T: MPIScalar>(_ values: UnsafePointer<T>, count: Int, into result: UnsafeMutablePointer<T>?, root: Int) throws

    /// Every rank contributes a byte string of any length; all ranks get all of them, in rank order.
    func allGather(bytes: [UInt8]) throws -> [[UInt8]]

    /// Like `allGather(bytes:)`, but only `root` receives (others get nil).
    func gather(bytes: [UInt8], root: Int) throws -> [[UInt8]]?

    /// Sends a byte message to `dest`. May block until the receive starts (as MPI_Send does for
    /// large messages): do not rely on buffering, and order sends and receives to avoid cycles.
    func send(_ bytes: UnsafeRawBufferPointer, to dest: Int, tag: Int) throws

    /// Waits for a message from `source` (nil: any source) with `tag` (nil: any tag), without
    /// receiving it, and returns its envelope and size.
    func probe(from source: Int?, tag: Int?) throws -> MessageInfo

    /// Like `probe`, but returns nil at once when no matching message is pending.
    func tryProbe(from source: Int?, tag: Int?) throws -> MessageInfo?

    /// Receives the next message from `source` (nil: any) with `tag` (nil: any), whatever its size.
    /// With `expectedSize`, a message of another size is consumed and reported as
    /// `CommunicatorError.messageSizeMismatch`.
    func receive(from source: Int?, tag: Int?, expectedSize: Int?) throws -> Message

    /// Splits into sub-communicators: ranks passing the same non-negative `color` form one,
    /// ordered by (`key`, old rank). A nil or negative color takes no part and gets nil.
    /// Collective: every rank must call it.
    func split(color: Int?, key: Int) throws -> Communicator?

    /// Ends every rank of the job with `code` (MPI_Abort).
    func abort(code: Int32) -> Never
}

/// A collective started by `startAllReduce`.
public protocol PendingCollective: AnyObject {
    /// Lets the library make progress; true once the operation has completed.
    func test() throws -> Bool
    /// Blocks until the operation has completed (idempotent).
    func wait() throws
}

/// A reduction performed, blocking, when it is waited for (for communicators without
/// non-blocking collectives, such as the in-process test double).
final class DeferredAllReduce<T: MPIScalar>: PendingCollective {
    let comm: Communicator
    let buffer: UnsafeMutablePointer<T>
    let count: Int
    let op: ReduceOp
    var done = false

    init(comm: Communicator, buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) {
        self.comm = comm
        self.buffer = buffer
        self.count = count
        self.op = op
    }

    func test() throws -> Bool { done }

    func wait() throws {
        if done { return }
        done = true
        try comm.allReduce(buffer, count: count, op: op)
    }
}

/// A collective run, blocking, when it is waited for (see `DeferredAllReduce`).
final class DeferredCollective: PendingCollective {
    var body: (() throws -> Void)?

    init(_ body: @escaping () throws -> Void) { self.body = body }

    func test() throws -> Bool { body == nil }

    func wait() throws {
        guard let b = body else { return }
        body = nil
        try b()
    }
}

/// The rounds of a variable-count collective over `counts` (per rank, consecutive) when one
/// call may carry at most `limit` elements in all: each round is a window of the concatenated
/// buffer, with every rank's count in it and the offset of its part inside the window and
/// inside its own part. One round (the whole buffer) when it fits.
func variableCountRounds(counts: [Int], limit: Int) -> [(window: Range<Int>, counts: [Int], displs: [Int], ownOffsets: [Int])] {
    precondition(counts.allSatisfy { $0 >= 0 }, "counts must not be negative, got \(counts)")
    var starts = [Int](), total = 0
    for c in counts { starts.append(total); total += c }
    if total == 0 { return [(0..<0, counts, starts, [Int](repeating: 0, count: counts.count))] }
    return chunkRanges(count: total, limit: limit).map { w in
        var cs = [Int](), ds = [Int](), own = [Int]()
        for (i, c) in counts.enumerated() {
            let lo = Swift.max(w.lowerBound, starts[i]), hi = Swift.min(w.upperBound, starts[i] + c)
            cs.append(Swift.max(0, hi - lo))
            ds.append(Swift.max(0, Swift.min(lo, w.upperBound) - w.lowerBound))
            own.append(Swift.max(0, lo - starts[i]))
        }
        return (w, cs, ds, own)
    }
}

// MARK: - Conveniences

extension Communicator {
    public func allReduce<T: MPIScalar>(_ values: inout [T], op: ReduceOp) throws {
        try values.withUnsafeMutableBufferPointer { try allReduce($0, op: op) }
    }

    public func allReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return try barrierForEmpty() }
        try allReduce(base, count: buffer.count, op: op)
    }

    /// All-reduce of one value.
    public func allReduce<T: MPIScalar>(_ value: T, op: ReduceOp) throws -> T {
        var v = [value]
        try allReduce(&v, op: op)
        return v[0]
    }

    public func broadcast<T: MPIScalar>(_ values: inout [T], root: Int) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return try barrierForEmpty() }
        try broadcast(base, count: buffer.count, root: root)
    }

    /// Broadcast of one value from `root`.
    public func broadcast<T: MPIScalar>(_ value: T, root: Int) throws -> T {
        var v = [value]
        try broadcast(&v, root: root)
        return v[0]
    }

    /// All-gather of equal-length arrays: the result is `size` × `values.count`, in rank order.
    public func allGather<T: MPIScalar>(_ values: [T]) throws -> [T] {
        let n = values.count
        if n == 0 { try barrierForEmpty(); return [] }
        var result = [T](repeating: .zero, count: n * size)
        try values.withUnsafeBufferPointer { src in
            try result.withUnsafeMutableBufferPointer { dst in
                try allGather(src.baseAddress!, count: n, into: dst.baseAddress!)
            }
        }
        return result
    }

    /// Gather of equal-length arrays to `root` (nil elsewhere).
    public func gather<T: MPIScalar>(_ values: [T], root: Int) throws -> [T]? {
        let n = values.count
        if n == 0 { try barrierForEmpty(); return rank == root ? [] : nil }
        var result = [T](repeating: .zero, count: rank == root ? n * size : 0)
        try values.withUnsafeBufferPointer { src in
            try result.withUnsafeMutableBufferPointer { dst in
                try gather(src.baseAddress!, count: n, into: dst.baseAddress, root: root)
            }
        }
        return rank == root ? result : nil
    }

    public func send(_ bytes: [UInt8], to dest: Int, tag: Int) throws {
        try bytes.withUnsafeBytes { try send($0, to: dest, tag: tag) }
    }

    public func probe(from source: Int? = nil) throws -> MessageInfo {
        try probe(from: source, tag: nil)
    }

    public func receive(from source: Int? = nil, tag: Int? = nil) throws -> Message {
        try receive(from: source, tag: tag, expectedSize: nil)
    }

    /// Keeps the collective call sequence aligned when a convenience is given no elements.
    private func barrierForEmpty() throws { try barrier() }
}

// MARK: - Shared helpers

/// Splits `count` elements into consecutive chunks of at most `limit` elements.
@usableFromInline
func chunkRanges(count: Int, limit: Int) -> [Range<Int>] {
    precondition(limit > 0, "chunk limit must be positive")
    precondition(count >= 0, "element count must not be negative, got \(count)")
    var ranges: [Range<Int>] = []
    var start = 0
    while start < count {
        let end = start + Swift.min(limit, count - start)
        ranges.append(start..<end)
        start = end
    }
    return ranges
}
