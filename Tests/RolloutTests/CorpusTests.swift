import XCTest
import Foundation
@testable import Rollout

final class CorpusTests: XCTestCase {
    func testPackingLayout() {
        // Stream: 1 2 3 E | 4 5 E | 6 7 8 9  (E = 0 with the preceding doc's id)
        let docs: [[Int32]] = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
        let c = Packing.pack(documents: docs, chunkLength: 4, eos: 0, pad: -9)
        XCTAssertEqual(c.count, 3)
        XCTAssertEqual(c[0], Chunk(tokens: [1, 2, 3, 0], docIds: [0, 0, 0, 0]))
        XCTAssertEqual(c[1], Chunk(tokens: [4, 5, 0, 6], docIds: [1, 1, 1, 2]))
        XCTAssertEqual(c[2], Chunk(tokens: [7, 8, 9, -9], docIds: [2, 2, 2, -1]))
        let dropped = Packing.pack(documents: docs, chunkLength: 4, eos: 0, pad: -9, remainder: .drop)
        XCTAssertEqual(dropped, Array(c[0 ..< 2]))
        // Exact fit: no padded chunk, no trailing EOS.
        let exact = Packing.pack(documents: [[1, 2], [3]], chunkLength: 4, eos: 0, pad: -9)
        XCTAssertEqual(exact, [Chunk(tokens: [1, 2, 0, 3], docIds: [0, 0, 0, 1])])
        // A single short document is padded (or dropped entirely).
        XCTAssertEqual(Packing.pack(documents: [[5]], chunkLength: 3, eos: 0, pad: 7),
                       [Chunk(tokens: [5, 7, 7], docIds: [0, -1, -1])])
        XCTAssertEqual(Packing.pack(documents: [[5]], chunkLength: 3, eos: 0, pad: 7, remainder: .drop), [])
        XCTAssertEqual(Packing.pack(documents: [], chunkLength: 3, eos: 0, pad: 7), [])
    }

    func testByteEncoderPacking() {
        let enc = ByteTextEncoder()
        let c = Packing.pack(documents: ["ab", "c"].map(enc.encode), chunkLength: 2, eos: enc.eos, pad: enc.eos)
        XCTAssertEqual(c.map(\.tokens), [[97, 98], [256, 99]])
    }

    func testFNV1a64Vectors() {
        XCTAssertEqual(StdlibCorpus.fnv1a64(""), 0xCBF2_9CE4_8422_2325)
        XCTAssertEqual(StdlibCorpus.fnv1a64("a"), 0xAF63_DC4C_8601_EC8C)
        XCTAssertEqual(StdlibCorpus.fnv1a64("foobar"), 0x8594_4171_F739_67E8)
    }

    func makeTree() throws -> String {
        let root = NSTemporaryDirectory() + "ebft-corpus-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fm = FileManager.default
        for d in ["pkg/sub", "test", "tests", "site-packages/x", "pkg/idle_test"] {
            try fm.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
        }
        func write(_ p: String, _ s: String) throws { try s.write(toFile: root + "/" + p, atomically: true, encoding: .utf8) }
        try write("a.py", "print('a')\n")
        try write("pkg/b.py", "x = 1\n")
        try write("pkg/sub/c.py", "y = 2\n")
        try write("pkg/notes.txt", "not python")
        try write("test/t.py", "assert 0\n")
        try write("tests/u.py", "assert 0\n")
        try write("site-packages/x/v.py", "import x\n")
        try write("pkg/idle_test/w.py", "pass\n")
        try write("empty.py", "")
        try Data([0x61, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: root + "/bad.py"))
        try fm.createSymbolicLink(atPath: root + "/link.py", withDestinationPath: root + "/a.py")
        return root
    }

    func testEnumerationExclusionsAndSkipping() throws {
        let root = try makeTree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let corpus = try StdlibCorpus(root: root, validationFraction: 0)
        XCTAssertEqual(corpus.files, ["a.py", "bad.py", "empty.py", "pkg/b.py", "pkg/sub/c.py"])
        XCTAssertEqual(corpus.files(.validation), [])
        let docs = corpus.documents(.train)
        XCTAssertEqual(docs.paths, ["a.py", "pkg/b.py", "pkg/sub/c.py"])
        XCTAssertEqual(docs.skipped, ["bad.py"])
        let packed = corpus.chunks(.train, encoder: ByteTextEncoder(), chunkLength: 8)
        XCTAssertEqual(packed.skipped, ["bad.py"])
        let stream = packed.chunks.flatMap(\.tokens)
        let expected = ByteTextEncoder().encode("print('a')\n") + [256] + ByteTextEncoder().encode("x = 1\n") + [256]
            + ByteTextEncoder().encode("y = 2\n")
        XCTAssertEqual(Array(stream[0 ..< expected.count]), expected)
        XCTAssertEqual(stream.count, 32)
        XCTAssert(stream[expected.count...].allSatisfy { $0 == 256 })
        XCTAssertEqual(packed.chunks.last!.docIds.last, -1)
    }

    func testSplitIsDeterministicAndDisjoint() throws {
        let root = try makeTree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let a = try StdlibCorpus(root: root, validationFraction: 0.5)
        let b = try StdlibCorpus(root: root, validationFraction: 0.5)
        XCTAssertEqual(a.files(.train), b.files(.train))
        XCTAssertEqual(Set(a.files(.train)).intersection(a.files(.validation)), [])
        XCTAssertEqual(Set(a.files(.train)).union(a.files(.validation)), Set(a.files))
        for f in a.files {
            XCTAssertEqual(a.files(.validation).contains(f), StdlibCorpus.fnv1a64(f) % 1_000_000 < 500_000)
        }
    }

    func testRealStdlibSplit() throws {
        guard FileManager.default.fileExists(atPath: StdlibCorpus.defaultRoot) else {
            throw XCTSkip("no \(StdlibCorpus.defaultRoot) on this machine")
        }
        let c = try StdlibCorpus()
        XCTAssertGreaterThan(c.files.count, 100)
        XCTAssertFalse(c.files.contains { $0.hasPrefix("test/") || $0.contains("/test/") || $0.contains("-packages/") })
        let v = c.files(.validation), t = c.files(.train)
        XCTAssertEqual(v.count + t.count, c.files.count)
        XCTAssertEqual(Double(v.count) / Double(c.files.count), 0.05, accuracy: 0.03)
        XCTAssertEqual(c.files, c.files.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    func testMissingRootAndEmptyRoot() throws {
        XCTAssertThrowsError(try StdlibCorpus(root: "/nonexistent/python9.9")) { e in
            XCTAssertEqual(e as? CorpusError, .rootMissing("/nonexistent/python9.9"))
            XCTAssert("\(e)".contains("/nonexistent/python9.9"))
        }
        let empty = NSTemporaryDirectory() + "ebft-empty-\(getpid())"
        try FileManager.default.createDirectory(atPath: empty + "/test", withIntermediateDirectories: true)
        try "x".write(toFile: empty + "/test/a.py", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        XCTAssertThrowsError(try StdlibCorpus(root: empty)) { XCTAssertEqual($0 as? CorpusError, .noFiles(empty)) }
        XCTAssertThrowsError(try StdlibCorpus(root: empty + "/test/a.py")) { XCTAssertEqual($0 as? CorpusError, .notADirectory(empty + "/test/a.py")) }
        XCTAssertThrowsError(try StdlibCorpus(root: empty, validationFraction: 1)) {
            XCTAssertEqual($0 as? CorpusError, .badValidationFraction(1))
        }
    }

    func testChunkSampler() throws {
        let s = try ChunkSampler(chunkCount: 10, batchSize: 3, seed: 43)
        XCTAssertEqual(s.stepsPerEpoch, 3)
        XCTAssertEqual(s.totalSteps(epochs: 2), 6)
        // Steps 0..2 = epoch 0: nine distinct indices, the permutation's first nine.
        let e0 = (0 ..< 3).flatMap { s.indices(step: $0) }
        XCTAssertEqual(e0, Array(s.permutation(epoch: 0)[0 ..< 9]))
        XCTAssertEqual(Set(e0).count, 9)
        XCTAssertEqual(s.permutation(epoch: 0).sorted(), Array(0 ..< 10))
        // Step 3 starts epoch 1 with a different order.
        XCTAssertEqual(s.epoch(ofStep: 3), 1)
        XCTAssertEqual(s.indices(step: 3), Array(s.permutation(epoch: 1)[0 ..< 3]))
        XCTAssertNotEqual(s.permutation(epoch: 0), s.permutation(epoch: 1))
        // Any instance with the same seed agrees (resume, other ranks); another seed differs.
        let again = try ChunkSampler(chunkCount: 10, batchSize: 3, seed: 43)
        XCTAssertEqual((0 ..< 7).map { again.indices(step: $0) }, (0 ..< 7).map { s.indices(step: $0) })
        let other = try ChunkSampler(chunkCount: 10, batchSize: 3, seed: 44)
        XCTAssertNotEqual(other.permutation(epoch: 0), s.permutation(epoch: 0))
        XCTAssertThrowsError(try ChunkSampler(chunkCount: 2, batchSize: 3, seed: 1)) {
            XCTAssertEqual($0 as? CorpusError, .tooFewChunks(chunks: 2, batchSize: 3))
        }
        XCTAssertThrowsError(try ChunkSampler(chunkCount: 2, batchSize: 0, seed: 1)) {
            XCTAssertEqual($0 as? CorpusError, .badBatchSize(0))
        }
    }
}
