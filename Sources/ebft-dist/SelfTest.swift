import ArgumentParser
import Distributed
import Foundation

/// `ebft-dist selftest`: every collective and point-to-point operation across the job's ranks,
/// checked against exact expected values. One `OK`/`FAIL` line per check per rank; exit code 1
/// when any check failed on any rank.
struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check the MPI collectives and messages across all ranks against exact expected values.")

    @Option(help: "Megabytes broadcast in the checksum check.")
    var broadcastMB = 4

    /// Debug: performs a deliberate misuse and reports the resulting Swift error (for tests).
    enum Injected: String, ExpressibleByArgument, CaseIterable {
        /// A receive expecting the wrong size (typed size-mismatch error).
        case recvSize = "recv-size"
        /// Every rank sends to a rank that does not exist (MPI's own MPI_ERR_RANK).
        case badRank = "bad-rank"
    }

    @Option(help: .hidden)
    var injectError: Injected?

    func validate() throws {
        guard broadcastMB >= 1 && broadcastMB <= 1024 else { throw ValidationError("--broadcast-mb must be in 1...1024") }
    }

    func run() throws {
        try runOnWorld { comm in
            if let injectError {
                try runInjected(injectError, comm)
                return
            }
            let checks = SelfTestChecks(comm: comm, broadcastBytes: broadcastMB << 20).all
            var failures = 0
            for (name, check) in checks {
                let outcome: String?
                do { outcome = try check() } catch { outcome = "error: \(error)" }
                if let outcome {
                    failures += 1
                    emit("\(rankTag(comm)) FAIL \(name): \(outcome)")
                } else {
                    emit("\(rankTag(comm)) OK   \(name)")
                }
            }
            let failedRanks = try comm.allReduce(failures > 0 ? 1 : 0, op: .sum)
            if comm.rank == 0 {
                emit(failedRanks == 0
                     ? "selftest: \(checks.count) checks × \(comm.size) ranks: all OK"
                     : "selftest: \(checks.count) checks × \(comm.size) ranks: FAILED on \(failedRanks) rank(s)")
            }
            if failedRanks > 0 { throw ExitCode(1) }
        }
    }

    /// Runs one deliberate misuse; every rank learns whether any failed and exits 1 if so.
    private func runInjected(_ what: Injected, _ comm: MPICommunicator) throws {
        var failure: Error?
        do {
            switch what {
            case .recvSize:
                // The last rank sends 10 bytes to rank 0, which expects 20.
                if comm.rank == comm.size - 1 { try comm.send([UInt8](repeating: 7, count: 10), to: 0, tag: 9) }
                if comm.rank == 0 { _ = try comm.receive(from: comm.size - 1, tag: 9, expectedSize: 20) }
            case .badRank:
                try comm.send([1, 2, 3], to: comm.size, tag: 1)
            }
        } catch {
            failure = error
            emitError("\(rankTag(comm)) error: \(error)")
        }
        let failed = try comm.allReduce(failure == nil ? 0 : 1, op: .sum)
        if failed > 0 { throw ExitCode(1) }
    }
}

/// The checks, in the order every rank runs them. Each returns nil when it passes or a
/// description of what differed; all of them make the same collective calls on every rank.
struct SelfTestChecks {
    let comm: MPICommunicator
    let broadcastBytes: Int

    var all: [(String, () throws -> String?)] {
        [
            ("barrier", barrier),
            ("allreduce-sum-float", { try reduceCheck(Float.self, .sum) }),
            ("allreduce-max-float", { try reduceCheck(Float.self, .max) }),
            ("allreduce-sum-double", { try reduceCheck(Double.self, .sum) }),
            ("allreduce-max-double", { try reduceCheck(Double.self, .max) }),
            ("allreduce-sum-int", { try reduceCheck(Int.self, .sum) }),
            ("allreduce-max-int", { try reduceCheck(Int.self, .max) }),
            ("allreduce-min-int32", { try reduceCheck(Int32.self, .min) }),
            ("allreduce-chunked", allReduceChunked),
            ("broadcast-float", broadcastFloat),
            ("broadcast-bytes-checksum", broadcastChecksum),
            ("allgather-int", allGatherInt),
            ("allgather-bytes", allGatherBytes),
            ("gather-bytes", gatherBytes),
            ("gather-chunked", gatherChunked),
            ("split-even-odd", splitEvenOdd),
            ("split-single", splitSingle),
            ("p2p-ring", ring),
            ("probe-any-source", probeAnySource),
        ]
    }

    var rank: Int { comm.rank }
    var size: Int { comm.size }

    func barrier() throws -> String? {
        try comm.barrier()
        return nil
    }

    /// Element i of rank r is (r + 1) · (i mod 7) − 3 (exact in every type).
    static func value<T: MPIScalar & Numeric>(_ r: Int, _ i: Int, as: T.Type) -> T {
        T(exactly: (r + 1) * (i % 7) - 3)!
    }

    func reduceCheck<T: MPIScalar & Numeric>(_ type: T.Type, _ op: ReduceOp) throws -> String? {
        let n = 1000
        var values = (0..<n).map { Self.value(rank, $0, as: T.self) }
        try comm.allReduce(&values, op: op)
        for i in 0..<n {
            let expected: T = (0..<size).map { Self.value($0, i, as: T.self) }.dropFirst()
                .reduce(Self.value(0, i, as: T.self)) { op.combine($0, $1) }
            if values[i] != expected { return "element \(i) is \(values[i]), expected \(expected)" }
        }
        return nil
    }

    /// A sum in chunks of 1000 elements gives the same result as one call.
    func allReduceChunked() throws -> String? {
        let n = 10_007
        let original = (0..<n).map { Float((rank + 1) * ($0 % 11)) }
        var whole = original, chunked = original
        try comm.allReduce(&whole, op: .sum)
        let saved = comm.maxChunkElements
        comm.maxChunkElements = 1000
        defer { comm.maxChunkElements = saved }
        try comm.allReduce(&chunked, op: .sum)
        let factor = Float(size * (size + 1) / 2)
        for i in 0..<n {
            if chunked[i] != whole[i] { return "element \(i): chunked \(chunked[i]) ≠ unchunked \(whole[i])" }
            if whole[i] != factor * Float(i % 11) { return "element \(i) is \(whole[i]), expected \(factor * Float(i % 11))" }
        }
        return nil
    }

    func broadcastFloat() throws -> String? {
        let root = size - 1
        var values = (0..<4096).map { rank == root ? Float($0) * 0.5 : -1 }
        try comm.broadcast(&values, root: root)
        if let i = values.indices.first(where: { values[$0] != Float($0) * 0.5 }) {
            return "element \(i) is \(values[i]), expected \(Float(i) * 0.5)"
        }
        return nil
    }

    /// A few MB of pseudo-random bytes from rank 0, chunked into 1 MiB MPI calls, then compared
    /// by FNV-1a checksum against the same bytes generated locally.
    func broadcastChecksum() throws -> String? {
        let expected = Self.pattern(count: broadcastBytes, seed: 42)
        var bytes = rank == 0 ? expected : []
        let saved = comm.maxChunkElements
        comm.maxChunkElements = 1 << 20
        defer { comm.maxChunkElements = saved }
        try comm.broadcast(bytes: &bytes, root: 0)
        let (got, want) = (Self.fnv1a(bytes), Self.fnv1a(expected))
        if bytes.count != expected.count { return "received \(bytes.count) bytes, expected \(expected.count)" }
        if got != want { return "checksum \(String(got, radix: 16)), expected \(String(want, radix: 16))" }
        return nil
    }

    func allGatherInt() throws -> String? {
        let mine = (0..<3).map { rank * 10 + $0 }
        let all = try comm.allGather(mine)
        let expected = (0..<size).flatMap { r in (0..<3).map { r * 10 + $0 } }
        return all == expected ? nil : "got \(all.prefix(12)), expected \(expected.prefix(12))"
    }

    /// Rank r contributes (r·37) mod 50 bytes of value r (rank 0: none).
    static func variableMessage(_ r: Int) -> [UInt8] { [UInt8](repeating: UInt8(r & 0xff), count: (r * 37) % 50) }

    func allGatherBytes() throws -> String? {
        let all = try comm.allGather(bytes: Self.variableMessage(rank))
        let expected = (0..<size).map(Self.variableMessage)
        return all == expected ? nil : "sizes \(all.map(\.count)), expected \(expected.map(\.count))"
    }

    func gatherBytes() throws -> String? {
        let root = size - 1
        let all = try comm.gather(bytes: Self.variableMessage(rank + 1), root: root)
        if rank != root { return all == nil ? nil : "non-root rank received data" }
        let expected = (0..<size).map { Self.variableMessage($0 + 1) }
        return all == expected ? nil : "sizes \(all?.map(\.count) ?? []), expected \(expected.map(\.count))"
    }

    /// All-gather and gather, typed and variable-size, with a chunk limit of 3·size elements
    /// (several rounds of 3 elements per rank through the staging buffers) must equal the definition.
    func gatherChunked() throws -> String? {
        let saved = comm.maxChunkElements
        comm.maxChunkElements = 3 * size
        defer { comm.maxChunkElements = saved }
        let mine = (0..<12).map { rank * 100 + $0 }
        let expected = (0..<size).flatMap { r in (0..<12).map { r * 100 + $0 } }
        let all = try comm.allGather(mine)
        if all != expected { return "allGather: got \(all.prefix(24)), expected \(expected.prefix(24))" }
        let root = 1 % size
        let gathered = try comm.gather(mine, root: root)
        if rank == root && gathered != expected { return "gather: got \(gathered?.prefix(24) ?? [])" }
        if rank != root && gathered != nil { return "gather: a non-root rank received data" }
        let message = { (r: Int) in Self.pattern(count: 3 * r + 4, seed: UInt64(r)) }
        let bytes = try comm.allGather(bytes: message(rank))
        let expectedBytes = (0..<size).map(message)
        if bytes != expectedBytes {
            let r = (0..<size).first { $0 >= bytes.count || bytes[$0] != expectedBytes[$0] } ?? -1
            return "allGather(bytes:): the part from rank \(r) differs (sizes \(bytes.map(\.count)), expected \(expectedBytes.map(\.count)))"
        }
        let gatheredBytes = try comm.gather(bytes: message(rank), root: root)
        if rank == root && gatheredBytes != expectedBytes { return "gather(bytes:) differs at the root" }
        return nil
    }

    /// Even and odd ranks form two groups (ordered by descending world rank); each sums its
    /// world ranks inside its group.
    func splitEvenOdd() throws -> String? {
        guard let sub = try comm.split(color: rank % 2, key: -rank) else { return "split returned nil for a member" }
        let members = stride(from: rank % 2, to: size, by: 2).map { $0 }
        let expectedRank = Array(members.reversed()).firstIndex(of: rank)!
        if sub.size != members.count { return "group size \(sub.size), expected \(members.count)" }
        if sub.rank != expectedRank { return "group rank \(sub.rank), expected \(expectedRank)" }
        let sum = try sub.allReduce(rank, op: .sum)
        return sum == members.reduce(0, +) ? nil : "group sum \(sum), expected \(members.reduce(0, +))"
    }

    /// Only rank 0 takes part (nil color elsewhere).
    func splitSingle() throws -> String? {
        let sub = try comm.split(color: rank == 0 ? 3 : nil, key: 0)
        if rank != 0 { return sub == nil ? nil : "a non-member got a communicator" }
        guard let sub else { return "the member got nil" }
        if sub.size != 1 || sub.rank != 0 { return "rank \(sub.rank) of \(sub.size), expected 0 of 1" }
        let x = try sub.allReduce(5.5, op: .sum)
        return x == 5.5 ? nil : "sum over a group of one is \(x)"
    }

    /// Rank r sends a message of 1000·(r+1)+r bytes, tag 100+r, to r+1 (mod size) and receives
    /// from r−1. Even ranks send first, odd ranks receive first, so no cycle of blocking sends.
    func ring() throws -> String? {
        let next = (rank + 1) % size, prev = (rank + size - 1) % size
        let outgoing = Self.pattern(count: size == 1 ? 100 : 1000 * (rank + 1) + rank, seed: UInt64(rank))
        let expected = Self.pattern(count: size == 1 ? 100 : 1000 * (prev + 1) + prev, seed: UInt64(prev))
        var received: Message
        if rank % 2 == 0 {
            try comm.send(outgoing, to: next, tag: 100 + rank)
            received = try comm.receive(from: prev, tag: 100 + prev)
        } else {
            received = try comm.receive(from: prev, tag: 100 + prev)
            try comm.send(outgoing, to: next, tag: 100 + rank)
        }
        if received.source != prev || received.tag != 100 + prev {
            return "envelope (source \(received.source), tag \(received.tag)), expected (\(prev), \(100 + prev))"
        }
        if received.bytes.count != expected.count { return "\(received.bytes.count) bytes, expected \(expected.count)" }
        return received.bytes == expected ? nil : "message content differs"
    }

    /// Every rank but 0 sends 10·r+3 bytes with tag 5 to rank 0 (rank 0 of a single-rank job
    /// sends 3 bytes to itself); rank 0 probes any source, checks the size against the sender,
    /// and receives with that expected size.
    func probeAnySource() throws -> String? {
        if rank != 0 || size == 1 { try comm.send(Self.pattern(count: 10 * rank + 3, seed: 7), to: 0, tag: 5) }
        guard rank == 0 else { return nil }
        var seen: Set<Int> = []
        for _ in 0..<Swift.max(1, size - 1) {
            let info = try comm.probe(from: nil, tag: 5)
            if info.count != 10 * info.source + 3 { return "probe from \(info.source): \(info.count) bytes, expected \(10 * info.source + 3)" }
            let m = try comm.receive(from: info.source, tag: 5, expectedSize: info.count)
            if m.bytes != Self.pattern(count: info.count, seed: 7) { return "content from \(info.source) differs" }
            seen.insert(m.source)
        }
        let senders = size == 1 ? [0] : Array(1..<size)
        return seen == Set(senders) ? nil : "received from \(seen.sorted()), expected \(senders)"
    }

    /// Deterministic pseudo-random bytes (splitmix64, one 64-bit word per 8 bytes).
    static func pattern(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { buf in
            var i = 0
            while i < count {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                for b in 0..<Swift.min(8, count - i) { buf[i + b] = UInt8(truncatingIfNeeded: z >> (8 * UInt64(b))) }
                i += 8
            }
        }
        return out
    }

    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}
