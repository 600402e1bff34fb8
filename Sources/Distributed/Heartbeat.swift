import CMPI
import Foundation

/// Carries the stall watchdogs' heartbeats between the ranks of a communicator. Used only by
/// the watchdog's own thread, while the rank's main thread keeps using the communicator it was
/// made from (so the messages travel on a communicator of their own and never match the
/// trainer's receives). Every call returns at once: nothing here may wait for a peer.
public protocol HeartbeatChannel: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Sends `bytes` to every other rank, skipping a peer whose previous heartbeat has not been
    /// delivered yet (a stopped peer causes no backlog).
    func post(_ bytes: [UInt8])
    /// The heartbeats that arrived since the last call: (source rank, bytes), in arrival order.
    func drain() -> [(source: Int, bytes: [UInt8])]
    /// Stops sending and receiving; later calls do nothing. Idempotent.
    func close()
}

// MARK: - MPI

/// Heartbeats over a duplicate of an MPI communicator (MPI_Comm_dup), with non-blocking sends
/// (at most one in flight per peer) and matched probes. Needs MPI_THREAD_MULTIPLE.
final class MPIHeartbeatChannel: HeartbeatChannel, @unchecked Sendable {
    let rank: Int
    let size: Int
    private let comm: MPI_Comm
    private let lock = NSLock()
    private var closed = false
    /// Per peer: the request of the heartbeat in flight (MPI_REQUEST_NULL when none) and its
    /// send buffer, which must stay untouched until the request completes.
    private var requests: [MPI_Request?]
    private var buffers: [UnsafeMutableRawPointer]
    static let capacity = 512
    static let tag: Int32 = 1

    /// Duplicates `parent` (collective over its ranks).
    init(parent: MPICommunicator) throws {
        var dup: MPI_Comm? = cmpi_comm_null()
        try mpiCheck(MPI_Comm_dup(parent.handle, &dup), "MPI_Comm_dup (stall watchdog heartbeats)")
        comm = dup!
        try mpiCheck(MPI_Comm_set_errhandler(comm, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        rank = parent.rank
        size = parent.size
        requests = [MPI_Request?](repeating: cmpi_request_null(), count: size)
        buffers = (0..<size).map { _ in UnsafeMutableRawPointer.allocate(byteCount: Self.capacity, alignment: 8) }
        // No heartbeat call may run during or after MPI_Finalize.
        MPIRuntime.shared.beforeFinalize { [weak self] in self?.close() }
    }

    func post(_ bytes: [UInt8]) {
        precondition(bytes.count <= Self.capacity, "heartbeat of \(bytes.count) bytes exceeds \(Self.capacity)")
        lock.lock(); defer { lock.unlock() }
        if closed { return }
        for peer in 0..<size where peer != rank {
            if !complete(peer) { continue }
            bytes.withUnsafeBytes { buffers[peer].copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            var request: MPI_Request? = cmpi_request_null()
            if MPI_Isend(buffers[peer], Int32(bytes.count), cmpi_byte(), Int32(peer), Self.tag, comm, &request)
                == cmpi_success() {
                requests[peer] = request
            }
        }
    }

    func drain() -> [(source: Int, bytes: [UInt8])] {
        lock.lock(); defer { lock.unlock() }
        if closed { return [] }
        return receivePending()
    }

    func close() {
        lock.lock(); defer { lock.unlock() }
        if closed { return }
        closed = true
        _ = receivePending()
        for peer in 0..<size {
            if peer == rank || complete(peer) {
                buffers[peer].deallocate()
            } else {
                // Still in flight (a peer that stopped receiving): MPI finishes or drops it.
                // Its buffer stays allocated, since MPI may still read it.
                _ = MPI_Request_free(&requests[peer])
            }
        }
        buffers = []
    }

    /// Whether `peer` has no heartbeat in flight (testing the one it has).
    private func complete(_ peer: Int) -> Bool {
        if requests[peer] == cmpi_request_null() { return true }
        var flag: Int32 = 0
        guard MPI_Test(&requests[peer], &flag, cmpi_status_ignore()) == cmpi_success() else { return false }
        return flag != 0
    }

    /// Receives every heartbeat already here (bounded, so a flood cannot keep the caller).
    private func receivePending() -> [(source: Int, bytes: [UInt8])] {
        var out: [(source: Int, bytes: [UInt8])] = []
        for _ in 0..<(16 * size) {
            var flag: Int32 = 0
            var message: MPI_Message? = cmpi_message_null()
            var status = MPI_Status()
            guard MPI_Improbe(cmpi_any_source(), Self.tag, comm, &flag, &message, &status) == cmpi_success(),
                  flag != 0 else { break }
            var count: Int32 = 0
            MPI_Get_count(&status, cmpi_byte(), &count)
            var bytes = [UInt8](repeating: 0, count: Int(max(count, 0)))
            let rc = bytes.withUnsafeMutableBytes {
                MPI_Mrecv($0.baseAddress, count, cmpi_byte(), &message, &status)
            }
            if rc == cmpi_success() { out.append((Int(cmpi_status_source(&status)), bytes)) }
        }
        return out
    }
}

extension MPICommunicator {
    /// A heartbeat channel over a duplicate of this communicator. Collective. Throws
    /// `runtimeUnavailable` (on every rank alike) when MPI did not grant MPI_THREAD_MULTIPLE.
    public func heartbeatChannel() throws -> HeartbeatChannel {
        let level = MPIRuntime.shared.threadLevel
        guard level >= MPIRuntime.multipleLevel else {
            throw CommunicatorError.runtimeUnavailable(
                "the stall watchdog's heartbeats need MPI_THREAD_MULTIPLE, but this MPI library granted only "
                + MPIRuntime.threadLevelName(level))
        }
        return try MPIHeartbeatChannel(parent: self)
    }
}

// MARK: - In process

/// Heartbeats among the threads of a `LocalCommunicator` world: per-rank inboxes under a lock.
final class LocalHeartbeatHub: @unchecked Sendable {
    let lock = NSLock()
    var inboxes: [[(source: Int, bytes: [UInt8])]]
    init(size: Int) { inboxes = Array(repeating: [], count: size) }
}

final class LocalHeartbeatChannel: HeartbeatChannel {
    let hub: LocalHeartbeatHub
    let rank: Int
    var size: Int { hub.inboxes.count }
    private var closed = false

    init(hub: LocalHeartbeatHub, rank: Int) {
        self.hub = hub
        self.rank = rank
    }

    func post(_ bytes: [UInt8]) {
        hub.lock.lock(); defer { hub.lock.unlock() }
        if closed { return }
        for peer in hub.inboxes.indices where peer != rank { hub.inboxes[peer].append((rank, bytes)) }
    }

    func drain() -> [(source: Int, bytes: [UInt8])] {
        hub.lock.lock(); defer { hub.lock.unlock() }
        if closed { return [] }
        let out = hub.inboxes[rank]
        hub.inboxes[rank] = []
        return out
    }

    func close() {
        hub.lock.lock(); defer { hub.lock.unlock() }
        closed = true
        hub.inboxes[rank] = []
    }
}

extension LocalCommunicator {
    /// An in-memory heartbeat channel among this communicator's ranks. Collective.
    public func heartbeatChannel() throws -> HeartbeatChannel {
        let hub = try group.collective("heartbeatChannel", rank: rank, contribution: Contribution()) { parts in
            LocalHeartbeatHub(size: parts.count)
        } as! LocalHeartbeatHub
        return LocalHeartbeatChannel(hub: hub, rank: rank)
    }
}
