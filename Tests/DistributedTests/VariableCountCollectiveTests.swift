import XCTest
@testable import Distributed

/// Reduce-scatter and in-place all-gather with per-rank counts (the sharded optimizer's
/// collectives), on the in-process communicator, against their definitions.
final class VariableCountCollectiveTests: XCTestCase {
    func testReduceScatterGivesEachRankTheSumOfItsPart() throws {
        for counts in [[3], [2, 5], [4, 0, 3], [0, 0, 1, 6]] {
            let n = counts.count, total = counts.reduce(0, +)
            let got = try LocalCommunicator.run(ranks: n) { comm -> [Double] in
                let send = (0..<total).map { Double(comm.rank * 100 + $0) }
                var recv = [Double](repeating: -1, count: max(1, counts[comm.rank]))
                try send.withUnsafeBufferPointer { s in
                    try recv.withUnsafeMutableBufferPointer { r in
                        try comm.reduceScatter(s.baseAddress!, counts: counts, into: r.baseAddress!, op: .sum)
                    }
                }
                return Array(recv.prefix(counts[comm.rank]))
            }
            let rankSum = Double((0..<n).reduce(0) { $0 + $1 * 100 })
            var start = 0
            for r in 0..<n {
                XCTAssertEqual(got[r], (start..<(start + counts[r])).map { rankSum + Double(n * $0) }, "counts \(counts), rank \(r)")
                start += counts[r]
            }
        }
    }

    /// In place: each rank's sum lands in its own part of the send buffer.
    func testInPlaceReduceScatter() throws {
        let counts = [2, 0, 3]
        let got = try LocalCommunicator.run(ranks: 3) { comm -> [Float] in
            var buf: [Float] = (0..<5).map { Float($0 + 1) * Float(comm.rank + 1) }
            let own = counts[..<comm.rank].reduce(0, +)
            try buf.withUnsafeMutableBufferPointer { b in
                let p = try comm.startReduceScatter(UnsafePointer(b.baseAddress!), counts: counts, into: b.baseAddress! + own, op: .sum)
                try p.wait()
            }
            return Array(buf[own..<(own + counts[comm.rank])])
        }
        // Σ over ranks of (i + 1)·(r + 1) = 6·(i + 1).
        XCTAssertEqual(got, [[6, 12], [], [18, 24, 30]])
    }

    func testStartedReduceScatterCompletesOnWait() throws {
        let got = try LocalCommunicator.run(ranks: 2) { comm -> [Float] in
            let send: [Float] = [1, 2, 3, 4, 5].map { $0 * Float(comm.rank + 1) }
            var recv = [Float](repeating: 0, count: comm.rank == 0 ? 2 : 3)
            try send.withUnsafeBufferPointer { s in
                try recv.withUnsafeMutableBufferPointer { r in
                    let p = try comm.startReduceScatter(s.baseAddress!, counts: [2, 3], into: r.baseAddress!, op: .max)
                    try p.wait()
                    XCTAssertTrue(try p.test())
                }
            }
            return recv
        }
        XCTAssertEqual(got, [[2, 4], [6, 8, 10]])
    }

    func testInPlaceAllGatherAssemblesTheParts() throws {
        let counts = [3, 0, 4]
        let got = try LocalCommunicator.run(ranks: 3) { comm -> [Int32] in
            let start = counts[..<comm.rank].reduce(0, +)
            var buf = [Int32](repeating: -1, count: 7)
            for i in 0..<counts[comm.rank] { buf[start + i] = Int32(10 * comm.rank + i) }
            try buf.withUnsafeMutableBufferPointer { try comm.allGather(inPlace: $0.baseAddress!, counts: counts) }
            return buf
        }
        for r in 0..<3 { XCTAssertEqual(got[r], [0, 1, 2, 20, 21, 22, 23]) }
    }

    func testMismatchedCountsAreAnError() {
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 2) { comm in
            var buf = [Float](repeating: 0, count: 4)
            try buf.withUnsafeMutableBufferPointer { try comm.allGather(inPlace: $0.baseAddress!, counts: comm.rank == 0 ? [2, 2] : [1, 3]) }
        })
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 2) { comm in
            var buf = [Float](repeating: 0, count: 4)
            try buf.withUnsafeMutableBufferPointer { try comm.allGather(inPlace: $0.baseAddress!, counts: [4]) }
        })
    }

    /// The rounds MPI is called in when a collective exceeds the per-call element limit: every
    /// element of every rank's part is covered exactly once, at the right place.
    func testRoundsCoverEveryPartOnce() {
        for counts in [[5, 0, 7], [1, 1, 1], [0, 9], [4]] {
            for limit in [1, 2, 3, 5, 100] {
                let total = counts.reduce(0, +)
                var starts = [Int](), acc = 0
                for c in counts { starts.append(acc); acc += c }
                var seen = [Int](repeating: 0, count: total)
                for r in variableCountRounds(counts: counts, limit: limit) {
                    XCTAssertLessThanOrEqual(r.window.count, limit)
                    XCTAssertEqual(r.counts.reduce(0, +), r.window.count)
                    for (i, c) in r.counts.enumerated() where c > 0 {
                        for k in 0..<c {
                            let global = r.window.lowerBound + r.displs[i] + k
                            XCTAssertEqual(global, starts[i] + r.ownOffsets[i] + k, "counts \(counts), limit \(limit)")
                            seen[global] += 1
                        }
                    }
                }
                XCTAssertEqual(seen, [Int](repeating: 1, count: total), "counts \(counts), limit \(limit)")
            }
        }
    }
}
