import XCTest
@testable import Distributed

/// Non-blocking all-reduce: started in order, completed by `wait`.
final class StartAllReduceTests: XCTestCase {
    func testLocalRanksReduceBucketsStartedInOrder() throws {
        for n in [2, 3, 5] {
            let results = try LocalCommunicator.run(ranks: n) { comm -> [Float] in
                var buf = (0..<10).map { Float($0 * (comm.rank + 1)) }
                try buf.withUnsafeMutableBufferPointer { b in
                    let p = b.baseAddress!
                    let a = try comm.startAllReduce(p + 6, count: 4, op: .sum)
                    let c = try comm.startAllReduce(p, count: 6, op: .sum)
                    try a.wait()
                    try c.wait()
                    try c.wait()  // idempotent
                    XCTAssertTrue(try a.test())
                }
                return buf
            }
            let factor = Float(n * (n + 1) / 2)
            for r in results { XCTAssertEqual(r, (0..<10).map { Float($0) * factor }, "n=\(n)") }
        }
    }

    func testMPISingletonStartAllReduceIsChunkedAndComplete() throws {
        let comm = try MPICommunicator.world()
        comm.maxChunkElements = 3
        defer { comm.maxChunkElements = Int(Int32.max) }
        var buf: [Double] = (0..<11).map(Double.init)
        try buf.withUnsafeMutableBufferPointer { b in
            let p = try comm.startAllReduce(b.baseAddress!, count: b.count, op: .max)
            try p.wait()
            XCTAssertTrue(try p.test())
        }
        XCTAssertEqual(buf, (0..<11).map(Double.init))
    }
}
