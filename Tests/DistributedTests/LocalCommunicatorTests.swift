import XCTest
@testable import Distributed

/// Communicator semantics on N threads in one process. Values are exact: every check compares
/// against what the definition of the operation says each rank must hold.
final class LocalCommunicatorTests: XCTestCase {
    func testRankAndSizeAndResultsInRankOrder() throws {
        for n in 1...5 {
            let got = try LocalCommunicator.run(ranks: n) { comm in [comm.rank, comm.size] }
            XCTAssertEqual(got, (0..<n).map { [$0, n] })
        }
    }

    func testAllReduceSumMaxMinOfEveryType() throws {
        for n in 2...5 {
            let results = try LocalCommunicator.run(ranks: n) { comm -> [String] in
                let r = comm.rank
                var f = (0..<10).map { Float(r * 10 + $0) - 20 }
                var d = (0..<10).map { Double(r) * 0.5 - Double($0) }
                var i = (0..<10).map { r * $0 - 7 }
                var i32 = (0..<10).map { Int32(r) - Int32($0) }
                var i64 = (0..<10).map { Int64(r) << 40 + Int64($0) }
                try comm.allReduce(&f, op: .sum)
                try comm.allReduce(&d, op: .max)
                try comm.allReduce(&i, op: .min)
                try comm.allReduce(&i32, op: .sum)
                try comm.allReduce(&i64, op: .max)
                return ["\(f)", "\(d)", "\(i)", "\(i32)", "\(i64)"]
            }
            let ranks = 0..<n
            let expected = [
                "\((0..<10).map { j in ranks.map { Float($0 * 10 + j) - 20 }.reduce(0, +) })",
                "\((0..<10).map { j in Double(n - 1) * 0.5 - Double(j) })",
                "\([Int](repeating: -7, count: 10))",  // min over r of r·j − 7 is at r = 0
                "\((0..<10).map { j in Int32(ranks.reduce(0, +)) - Int32(n * j) })",
                "\((0..<10).map { j in Int64(n - 1) << 40 + Int64(j) })",
            ]
            for r in ranks { XCTAssertEqual(results[r], expected, "n=\(n) rank \(r)") }
        }
    }

    func testAllReducePointerRegionLeavesTheRestAlone() throws {
        let got = try LocalCommunicator.run(ranks: 3) { comm -> [Float] in
            var buffer = [Float](repeating: Float(comm.rank + 1), count: 8)
            try buffer.withUnsafeMutableBufferPointer { try comm.allReduce($0.baseAddress! + 2, count: 4, op: .sum) }
            return buffer
        }
        for r in 0..<3 {
            let own = Float(r + 1)
            XCTAssertEqual(got[r], [own, own, 6, 6, 6, 6, own, own])
        }
    }

    func testScalarConveniences() throws {
        let got = try LocalCommunicator.run(ranks: 4) { comm -> [Double] in
            [try comm.allReduce(Double(comm.rank), op: .sum),
             try comm.allReduce(Double(comm.rank), op: .max),
             try comm.broadcast(Double(comm.rank * 100), root: 2)]
        }
        XCTAssertEqual(Set(got.map { $0 }), [[6, 3, 200]])
    }

    func testBroadcastTypedFromEveryRoot() throws {
        for root in 0..<3 {
            let got = try LocalCommunicator.run(ranks: 3) { comm -> [Int32] in
                var v = (0..<5).map { Int32(comm.rank * 1000 + $0) }
                try comm.broadcast(&v, root: root)
                return v
            }
            for r in 0..<3 { XCTAssertEqual(got[r], (0..<5).map { Int32(root * 1000 + $0) }) }
        }
    }

    func testBroadcastBytesReplacesOtherRanksBytes() throws {
        let got = try LocalCommunicator.run(ranks: 4) { comm -> [UInt8] in
            var bytes: [UInt8] = comm.rank == 1 ? [9, 8, 7] : Array(repeating: 1, count: comm.rank * 10)
            try comm.broadcast(bytes: &bytes, root: 1)
            return bytes
        }
        XCTAssertEqual(got, Array(repeating: [9, 8, 7], count: 4))
    }

    func testAllGatherAndGatherTyped() throws {
        let got = try LocalCommunicator.run(ranks: 3) { comm -> ([Double], [Double]?) in
            let mine = [Double(comm.rank), Double(comm.rank) + 0.5]
            return (try comm.allGather(mine), try comm.gather(mine, root: 2))
        }
        for r in 0..<3 {
            XCTAssertEqual(got[r].0, [0, 0.5, 1, 1.5, 2, 2.5])
            XCTAssertEqual(got[r].1, r == 2 ? [0, 0.5, 1, 1.5, 2, 2.5] : nil)
        }
    }

    func testGatherOfVariableSizeBytes() throws {
        let message = { (r: Int) in [UInt8](repeating: UInt8(r), count: r * 3) }  // rank 0: empty
        let got = try LocalCommunicator.run(ranks: 4) { comm in
            (try comm.allGather(bytes: message(comm.rank)), try comm.gather(bytes: message(comm.rank), root: 3))
        }
        let expected = (0..<4).map(message)
        for r in 0..<4 {
            XCTAssertEqual(got[r].0, expected)
            XCTAssertEqual(got[r].1, r == 3 ? expected : nil)
        }
    }

    func testSplitIntoColorGroupsOrderedByKey() throws {
        // 5 ranks, colors r % 2 with key −r: evens [4, 2, 0], odds [3, 1]; each sums world ranks.
        let got = try LocalCommunicator.run(ranks: 5) { comm -> [Int] in
            guard let sub = try comm.split(color: comm.rank % 2, key: -comm.rank) else { return [] }
            return [sub.rank, sub.size, try sub.allReduce(comm.rank, op: .sum)]
        }
        XCTAssertEqual(got, [[2, 3, 6], [1, 2, 4], [1, 3, 6], [0, 2, 4], [0, 3, 6]])
    }

    func testSplitWithNilOrNegativeColorGivesNil() throws {
        let got = try LocalCommunicator.run(ranks: 4) { comm -> [Int]? in
            let color: Int? = comm.rank == 0 ? nil : (comm.rank == 1 ? -5 : 7)
            guard let sub = try comm.split(color: color, key: 0) else { return nil }
            // Equal keys: order by old rank.
            return [sub.rank, sub.size, try sub.allReduce(comm.rank, op: .max)]
        }
        XCTAssertEqual(got, [nil, nil, [0, 2, 3], [1, 2, 3]])
    }

    func testSplitOfASplitAndGroupPointToPoint() throws {
        let got = try LocalCommunicator.run(ranks: 4) { comm -> Int in
            let half = try comm.split(color: comm.rank / 2, key: comm.rank)!   // {0,1} {2,3}
            let single = try half.split(color: half.rank, key: 0)!              // each alone
            XCTAssertEqual(single.size, 1)
            // In each half, rank 0 sends its world rank to rank 1 of the half (tag 3).
            if half.rank == 0 { try half.send(withUnsafeBytes(of: comm.rank) { Array($0) }, to: 1, tag: 3) }
            if half.rank == 1 {
                let m = try half.receive(from: 0, tag: 3)
                XCTAssertEqual(m.source, 0)
                return m.bytes.withUnsafeBytes { $0.load(as: Int.self) }
            }
            return -1
        }
        XCTAssertEqual(got, [-1, 0, -1, 2])
    }

    func testMessagesMatchByTagAndKeepOrderPerTag() throws {
        let got = try LocalCommunicator.run(ranks: 2) { comm -> [String] in
            if comm.rank == 0 {
                try comm.send([1], to: 1, tag: 1)
                try comm.send([2], to: 1, tag: 2)
                try comm.send([3], to: 1, tag: 1)
                return []
            }
            let a = try comm.receive(from: 0, tag: 2)
            let b = try comm.receive(from: 0, tag: 1)
            let c = try comm.receive(from: nil, tag: nil)
            return [a, b, c].map { "\($0.source):\($0.tag):\($0.bytes)" }
        }
        XCTAssertEqual(got[1], ["0:2:[2]", "0:1:[1]", "0:1:[3]"])
    }

    func testProbeAnySourceGivesEnvelopeAndSize() throws {
        let got = try LocalCommunicator.run(ranks: 4) { comm -> [Int] in
            if comm.rank != 0 {
                try comm.send([UInt8](repeating: 0, count: comm.rank * 10), to: 0, tag: 40 + comm.rank)
                return []
            }
            XCTAssertNil(try comm.tryProbe(from: 2, tag: 99))
            var sizes = [Int](repeating: -1, count: 4)
            for _ in 1..<4 {
                let info = try comm.probe(from: nil, tag: nil)
                XCTAssertEqual(info.tag, 40 + info.source)
                let m = try comm.receive(from: info.source, tag: info.tag, expectedSize: info.count)
                sizes[m.source] = m.bytes.count
            }
            return sizes
        }
        XCTAssertEqual(got[0], [-1, 10, 20, 30])
    }

    func testReceiveOfWrongSizeThrowsAndConsumesTheMessage() throws {
        let got = try LocalCommunicator.run(ranks: 2) { comm -> String in
            if comm.rank == 1 {
                try comm.send([1, 2, 3], to: 0, tag: 5)
                try comm.send([4], to: 0, tag: 5)
                return ""
            }
            XCTAssertThrowsError(try comm.receive(from: 1, tag: 5, expectedSize: 4)) { error in
                XCTAssertEqual(error as? CommunicatorError,
                               .messageSizeMismatch(operation: "receive", source: 1, tag: 5, expected: 4, actual: 3))
                XCTAssertTrue("\(error)".contains("expected a message of 4 bytes"), "\(error)")
            }
            return "\(try comm.receive(from: 1, tag: 5).bytes)"
        }
        XCTAssertEqual(got[0], "[4]")
    }

    func testInvalidRanksAndTagsThrow() throws {
        _ = try LocalCommunicator.run(ranks: 2) { comm in
            XCTAssertThrowsError(try comm.send([1], to: 2, tag: 0)) {
                XCTAssertEqual($0 as? CommunicatorError, .invalidRank(operation: "send", rank: 2, size: 2))
            }
            XCTAssertThrowsError(try comm.send([1], to: 0, tag: -1)) {
                XCTAssertEqual($0 as? CommunicatorError, .invalidTag(operation: "send", tag: -1, maxTag: 32767))
            }
            XCTAssertThrowsError(try comm.receive(from: -1, tag: nil))
            var v: [Float] = [1]
            XCTAssertThrowsError(try comm.broadcast(&v, root: 5))
        }
    }

    func testDifferentCollectivesOnDifferentRanksThrowOnEveryRank() {
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 2) { comm in
            if comm.rank == 0 { try comm.barrier() } else { _ = try comm.allReduce(1, op: .sum) }
        }) { error in
            guard case .collectiveMismatch(_, let detail)? = error as? CommunicatorError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(detail.contains("rank 0: barrier"), detail)
        }
    }

    func testDifferentCountsInAllReduceThrow() {
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 3) { comm in
            var v = [Float](repeating: 1, count: comm.rank == 1 ? 3 : 2)
            try comm.allReduce(&v, op: .sum)
        }) { error in
            XCTAssertEqual(error as? CommunicatorError,
                           .collectiveMismatch(operation: "allReduce", detail: "element counts per rank are [2, 3, 2]"))
        }
    }

    func testRankThatEndsEarlyMakesWaitersThrowInsteadOfHanging() {
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 3) { comm in
            if comm.rank == 2 { return }
            try comm.barrier()
        }) { error in
            XCTAssertEqual(error as? CommunicatorError, .peerExited(operation: "barrier", rank: 2))
        }
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 2) { comm in
            if comm.rank == 0 { _ = try comm.receive(from: 1, tag: 0) }
        }) { error in
            XCTAssertEqual(error as? CommunicatorError, .peerExited(operation: "receive", rank: 1))
        }
    }

    func testDeadlockTimesOutInsteadOfHanging() {
        // Both ranks wait to receive first: a deadlock, reported after the timeout.
        let start = Date()
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 2, timeout: 0.3) { comm in
            _ = try comm.receive(from: 1 - comm.rank, tag: 0)
        }) { error in
            XCTAssertEqual(error as? CommunicatorError, .timedOut(operation: "receive", seconds: 0.3))
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }

    struct Boom: Error, Equatable { var rank: Int }

    func testRunRethrowsTheFirstErrorNotTheFollowUps() {
        XCTAssertThrowsError(try LocalCommunicator.run(ranks: 4) { comm in
            if comm.rank == 1 { throw Boom(rank: 1) }
            try comm.barrier()  // the others then fail with peerExited
        }) { error in
            XCTAssertEqual(error as? Boom, Boom(rank: 1))
        }
    }

    func testEmptyBuffersAreFine() throws {
        let got = try LocalCommunicator.run(ranks: 3) { comm -> Int in
            var empty: [Float] = []
            try comm.allReduce(&empty, op: .sum)
            try comm.broadcast(&empty, root: 1)
            var x: Float = 1
            try comm.allReduce(&x, count: 0, op: .sum)
            try comm.broadcast(&x, count: 0, root: 0)
            var bytes: [UInt8] = []
            try comm.broadcast(bytes: &bytes, root: 0)
            XCTAssertEqual(try comm.allGather([Int]()), [])
            return Int(x) + bytes.count + (try comm.allGather(bytes: []).count)
        }
        XCTAssertEqual(got, [4, 4, 4])
    }

    func testChunkRanges() {
        XCTAssertEqual(chunkRanges(count: 10, limit: 4), [0..<4, 4..<8, 8..<10])
        XCTAssertEqual(chunkRanges(count: 8, limit: 4), [0..<4, 4..<8])
        XCTAssertEqual(chunkRanges(count: 0, limit: 4), [])
    }
}
