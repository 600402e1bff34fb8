#if canImport(Glibc)
import Glibc
#endif

/// Waiting without spinning. A rank blocked in an MPI collective polls at full speed; with
/// more ranks than cores (or BLAS threads on the same cores) that steals the CPU from the
/// rank everyone is waiting for. Before a collective that may wait long, the rank that
/// finishes last (`root`) signals the others, who sleep between probes until the signal
/// arrives and then enter the collective, which completes at once.
extension Communicator {
    /// Tag of the readiness messages (outside the trainer's per-step tags 1…30000).
    public static var readyTag: Int { 30_001 }

    /// On `root`: sends an empty message to every other rank. Elsewhere: sleeps until
    /// `root`'s message arrives (polling every `pollMicroseconds`), then consumes it.
    public func politeWait(root: Int, pollMicroseconds: UInt32 = 500) throws {
        if size == 1 { return }
        if rank == root {
            for r in 0..<size where r != root { try send([UInt8](), to: r, tag: Self.readyTag) }
            return
        }
        while try tryProbe(from: root, tag: Self.readyTag) == nil { usleep(pollMicroseconds) }
        _ = try receive(from: root, tag: Self.readyTag, expectedSize: 0)
    }
}
