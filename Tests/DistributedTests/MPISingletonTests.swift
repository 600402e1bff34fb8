import XCTest
@testable import Distributed

/// MPICommunicator inside the test process: an MPI singleton (size 1). Collectives are the
/// identity there, so these check the plumbing — datatypes, in-place calls, chunking, errors
/// carrying MPI's own text. Multi-rank behaviour is covered by the mpirun end-to-end tests.
final class MPISingletonTests: XCTestCase {
    var comm: MPICommunicator!

    override func setUpWithError() throws {
        comm = try MPICommunicator.world()
    }

    func testWorldOfOne() {
        XCTAssertEqual(comm.rank, 0)
        XCTAssertEqual(comm.size, 1)
        XCTAssertGreaterThanOrEqual(comm.maxTag, 32767)
        XCTAssertTrue(MPIRuntime.shared.isActive)
        XCTAssertFalse(MPIRuntime.shared.processorName.isEmpty)
    }

    func testCollectivesAreTheIdentity() throws {
        var f: [Float] = [1.5, -2, 3]
        var d: [Double] = [1e300, -4]
        var i: [Int] = [Int.max, Int.min]
        var i32: [Int32] = [7, -7]
        var u8: [UInt8] = [255, 0]
        try comm.allReduce(&f, op: .sum)
        try comm.allReduce(&d, op: .max)
        try comm.allReduce(&i, op: .min)
        try comm.allReduce(&i32, op: .sum)
        try comm.allReduce(&u8, op: .max)
        XCTAssertEqual(f, [1.5, -2, 3]); XCTAssertEqual(d, [1e300, -4]); XCTAssertEqual(i, [Int.max, Int.min])
        XCTAssertEqual(i32, [7, -7]); XCTAssertEqual(u8, [255, 0])
        try comm.broadcast(&f, root: 0)
        XCTAssertEqual(f, [1.5, -2, 3])
        var bytes: [UInt8] = [1, 2, 3]
        try comm.broadcast(bytes: &bytes, root: 0)
        XCTAssertEqual(bytes, [1, 2, 3])
        XCTAssertEqual(try comm.allGather([4, 5] as [Int64]), [4, 5])
        XCTAssertEqual(try comm.gather([4, 5] as [Int64], root: 0), [4, 5])
        XCTAssertEqual(try comm.allGather(bytes: [9, 9]), [[9, 9]])
        XCTAssertEqual(try comm.allGather(bytes: []), [[]])
        XCTAssertEqual(try comm.gather(bytes: [1], root: 0), [[1]])
        var empty: [Float] = []
        try comm.allReduce(&empty, op: .sum)
        try comm.barrier()
    }

    /// With a chunk limit of 7 elements every operation takes several MPI calls (or rounds);
    /// results must equal the unchunked ones.
    func testChunkingGivesTheSameResults() throws {
        let values = (0..<100).map { Float($0) * 0.25 }
        var whole = values, chunked = values
        try comm.allReduce(&whole, op: .sum)
        let saved = comm.maxChunkElements
        comm.maxChunkElements = 7
        defer { comm.maxChunkElements = saved }
        XCTAssertEqual(comm.maxChunkElements, 7)
        try comm.allReduce(&chunked, op: .sum)
        XCTAssertEqual(chunked, whole)
        try comm.broadcast(&chunked, root: 0)
        XCTAssertEqual(chunked, values)
        var bytes = (0..<50).map { UInt8($0) }
        try comm.broadcast(bytes: &bytes, root: 0)
        XCTAssertEqual(bytes, (0..<50).map { UInt8($0) })
        XCTAssertEqual(try comm.allGather(values), values)
        XCTAssertEqual(try comm.gather(values, root: 0), values)
        XCTAssertEqual(try comm.allGather(bytes: bytes), [bytes])
        XCTAssertEqual(try comm.gather(bytes: bytes, root: 0), [bytes])
        XCTAssertThrowsError(try comm.send(bytes, to: 0, tag: 1)) {
            XCTAssertEqual($0 as? CommunicatorError, .messageTooLarge(operation: "MPI_Send", bytes: 50, limit: 7))
        }
        comm.maxChunkElements = 0
        XCTAssertEqual(comm.maxChunkElements, 1, "the limit is clamped to at least one element")
        comm.maxChunkElements = Int.max
        XCTAssertEqual(comm.maxChunkElements, Int(Int32.max), "and to at most Int32.max")
    }

    func testSendToSelfProbeAndReceive() throws {
        XCTAssertNil(try comm.tryProbe(from: nil, tag: 77))
        try comm.send([1, 2, 3, 4], to: 0, tag: 77)
        let info = try comm.probe(from: nil, tag: 77)
        XCTAssertEqual(info, MessageInfo(source: 0, tag: 77, count: 4))
        XCTAssertEqual(try comm.tryProbe(from: 0, tag: nil), info)
        let m = try comm.receive(from: nil, tag: nil)
        XCTAssertEqual(m, Message(source: 0, tag: 77, bytes: [1, 2, 3, 4]))
        XCTAssertNil(try comm.tryProbe(from: nil, tag: nil))
    }

    func testReceiveOfWrongSizeThrowsAndConsumesTheMessage() throws {
        try comm.send([1, 2, 3], to: 0, tag: 8)
        XCTAssertThrowsError(try comm.receive(from: 0, tag: 8, expectedSize: 2)) {
            XCTAssertEqual($0 as? CommunicatorError,
                           .messageSizeMismatch(operation: "receive", source: 0, tag: 8, expected: 2, actual: 3))
        }
        XCTAssertNil(try comm.tryProbe(from: nil, tag: 8))
    }

    func testMPIErrorsBecomeSwiftErrorsWithMPIsText() {
        XCTAssertThrowsError(try comm.send([1], to: 1, tag: 0)) { error in
            guard case let .mpi(operation, code, message)? = error as? CommunicatorError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertTrue(operation.hasPrefix("MPI_Send"), operation)
            XCTAssertNotEqual(code, 0)
            XCTAssertTrue(message.contains("MPI_ERR_RANK"), message)
        }
        XCTAssertThrowsError(try comm.send([1], to: 0, tag: -7)) { error in
            XCTAssertTrue("\(error)".contains("MPI_ERR_TAG"), "\(error)")
        }
        XCTAssertThrowsError(try comm.send([1], to: -2, tag: 0)) {
            XCTAssertEqual($0 as? CommunicatorError, .invalidRank(operation: "MPI_Send", rank: -2, size: 1))
        }
        var v: [Float] = [1]
        XCTAssertThrowsError(try comm.broadcast(&v, root: 1))
        XCTAssertThrowsError(try comm.receive(from: nil, tag: -3))
    }

    func testSplit() throws {
        let sub = try XCTUnwrap(try comm.split(color: 4, key: 0))
        XCTAssertEqual(sub.size, 1)
        XCTAssertEqual(try sub.allReduce(2.5, op: .sum), 2.5)
        XCTAssertNil(try comm.split(color: nil, key: 0))
        XCTAssertNil(try comm.split(color: -1, key: 0))
        XCTAssertThrowsError(try comm.split(color: Int(Int32.max) + 1, key: 0)) {
            XCTAssertEqual($0 as? CommunicatorError, .invalidSplit(color: Int(Int32.max) + 1, key: 0))
        }
        let roles = try RoleAssignment(worldSize: 1)
        let c = try roles.split(comm)
        XCTAssertEqual(c.learners?.size, 1)
        XCTAssertEqual(c.workers?.size, 1)
    }
}
