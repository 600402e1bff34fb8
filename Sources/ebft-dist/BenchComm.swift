import ArgumentParser
import Distributed
import Foundation

/// `ebft-dist bench comm`: all-reduce (Float sum, in place) and broadcast latency and bandwidth.
struct BenchComm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm",
        abstract: "All-reduce (Float sum, in place) and broadcast time and bandwidth, 1 KiB to --max-size.",
        discussion: """
            Sizes grow by factors of 4 from --min-size; --max-size is added when not on that grid.
            Time per call: the slowest rank's mean over a batch of calls, best of --batches batches.
            algbw = bytes / time; busbw (all-reduce) = algbw × 2(n-1)/n, the traffic a ring
            all-reduce puts through each rank's link.
            """)

    @Option(help: "Smallest message (bytes; K, M, G suffixes allowed).")
    var minSize = "1K"

    @Option(help: "Largest message (bytes; K, M, G suffixes allowed).")
    var maxSize = "512M"

    @Option(help: "Approximate seconds of timed calls per size and operation.")
    var seconds = 0.3

    @Option(help: "Batches the timed calls are split into; the best batch is reported.")
    var batches = 3

    func validate() throws {
        guard let lo = parseByteSize(minSize), lo >= 4 else { throw ValidationError("--min-size must be a size of at least 4 bytes, got '\(minSize)'") }
        guard let hi = parseByteSize(maxSize), hi >= lo else { throw ValidationError("--max-size must be a size ≥ --min-size, got '\(maxSize)'") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard batches >= 1 else { throw ValidationError("--batches must be at least 1") }
    }

    func run() throws {
        let lo = parseByteSize(minSize)!, hi = parseByteSize(maxSize)!
        var sizes: [Int] = []
        var s = lo
        while s <= hi { sizes.append(s / 4 * 4); s *= 4 }
        if sizes.last != hi / 4 * 4 { sizes.append(hi / 4 * 4) }

        try runOnWorld { comm in
            let n = comm.size
            var buffer = [Float](repeating: 0, count: sizes.last! / 4)
            if comm.rank == 0 {
                emit("bench comm: \(n) rank(s), \(MPIRuntime.shared.libraryVersion); time per call = slowest rank, best of \(batches) batches")
                emit("\(padRight("size", 10)) \(pad("allreduce µs", 14)) \(pad("algbw GB/s", 11)) \(pad("busbw GB/s", 11))   \(pad("bcast µs", 12)) \(pad("algbw GB/s", 11))")
            }
            for size in sizes {
                let count = size / 4
                let ar = try buffer.withUnsafeMutableBufferPointer { buf in
                    try timeCalls(comm) { try comm.allReduce(buf.baseAddress!, count: count, op: .sum) }
                }
                let bc = try buffer.withUnsafeMutableBufferPointer { buf in
                    try timeCalls(comm) { try comm.broadcast(buf.baseAddress!, count: count, root: 0) }
                }
                if comm.rank == 0 {
                    let gb = Double(size) / 1e9
                    let busFactor = n > 1 ? 2.0 * Double(n - 1) / Double(n) : 1.0
                    emit("\(padRight(formatBytes(size), 10)) \(pad(fixed(ar * 1e6, 1), 14)) \(pad(fixed(gb / ar, 3), 11)) \(pad(fixed(gb / ar * busFactor, 3), 11))   \(pad(fixed(bc * 1e6, 1), 12)) \(pad(fixed(gb / bc, 3), 11))")
                }
            }
        }
    }

    /// Seconds per call of `op`: the timed calls are split into `batches` batches; a batch's
    /// time per call is the slowest rank's, and the best batch is reported (robust to bursts of
    /// load from other processes). The number of calls is chosen on rank 0 from one warm-up
    /// call and shared, so all ranks make the same calls.
    private func timeCalls(_ comm: Communicator, _ op: () throws -> Void) throws -> Double {
        try comm.barrier()
        var t = now()
        try op()
        let warm = try comm.allReduce(now() - t, op: .max)
        let perBatch = try comm.broadcast(
            Int(Swift.max(1, Swift.min(1000, seconds / Double(batches) / Swift.max(warm, 1e-7)))), root: 0)
        var best = Double.infinity
        for _ in 0..<batches {
            try comm.barrier()
            t = now()
            for _ in 0..<perBatch { try op() }
            let elapsed = try comm.allReduce(now() - t, op: .max)
            best = Swift.min(best, elapsed / Double(perBatch))
        }
        return best
    }
}
