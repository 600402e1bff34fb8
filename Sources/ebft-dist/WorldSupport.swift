import ArgumentParser
import Distributed
import Foundation

/// Helpers for subcommands that run on every rank of an MPI job.

/// Writes one whole line to stdout and flushes, so lines from different ranks stay whole
/// under mpirun's output forwarding.
func emit(_ line: String) {
    fputs(line + "\n", stdout)
    fflush(nil)
}

/// Writes one whole line to stderr.
func emitError(_ line: String) {
    fputs(line + "\n", stderr)
    fflush(nil)
}

/// "[rank 2/4]"
func rankTag(_ comm: Communicator) -> String { "[rank \(comm.rank)/\(comm.size)]" }

/// An error that every rank raised alike (same input, same check): rank 0 reports it and all
/// ranks exit normally with `code`, instead of aborting the job.
struct AllRanksError: Error, CustomStringConvertible {
    var message: String
    var code: Int32 = 1
    var description: String { message }
}

/// Runs `body` with MPI_COMM_WORLD (an MPI singleton of size 1 without mpirun).
/// - `AllRanksError`: printed by rank 0, every rank exits with its code.
/// - any other error: printed with the rank; the job ends with exit code 1 — normally with one
///   rank, by MPI_Abort with more (other ranks may be blocked waiting for this one).
func runOnWorld(_ body: (MPICommunicator) throws -> Void) throws {
    let comm: MPICommunicator
    do {
        comm = try MPICommunicator.world()
    } catch {
        emitError("error: \(error)")
        throw ExitCode(1)
    }
    do {
        try body(comm)
    } catch let e as ExitCode {
        throw e
    } catch let e as AllRanksError {
        if comm.rank == 0 { emitError("error: \(e.message)") }
        throw ExitCode(e.code)
    } catch {
        emitError("\(rankTag(comm)) error: \(error)")
        if comm.size > 1 { comm.abort(code: 1) }
        throw ExitCode(1)
    }
}

/// Parses a byte size such as "4096", "64K", "1M", "512MiB", "2G".
func parseByteSize(_ text: String) -> Int? {
    var s = text.uppercased().trimmingCharacters(in: .whitespaces)
    for suffix in ["IB", "B"] where s.hasSuffix(suffix) { s.removeLast(suffix.count); break }
    var scale = 1
    if let last = s.last, let power = ["K": 1, "M": 2, "G": 3][String(last)] {
        scale = 1 << (10 * power)
        s.removeLast()
    }
    guard let n = Int(s), n >= 0 else { return nil }
    return n * scale
}

/// "1 KiB", "256 MiB", "3000 B"
func formatBytes(_ n: Int) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where n >= 1 << shift && n % (1 << shift) == 0 {
        return "\(n >> shift) \(unit)"
    }
    return "\(n) B"
}

/// Fixed-width right-aligned column.
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

/// Fixed-width left-aligned column.
func padRight(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

/// Monotonic seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
