import Foundation
import XCTest
@testable import Model
@testable import Rollout

/// The data reader (record shapes, bad records, gzip), the token cache and mixtures (issue 13).
final class DataSourceTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-data-\(getpid())-\(name.hashValue)").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Bytes as tokens; a chat is "role: content\n" per message; EOS 256.
    static let encoder = DocumentEncoder(
        text: { ByteTextEncoder().encode($0) },
        chat: { m in ByteTextEncoder().encode(m.map { "\($0.role): \($0.content)\n" }.joined()) },
        identity: "bytes", eos: 256, vocabSize: 257)

    func write(_ name: String, _ lines: [String]) throws -> String {
        let path = dir + "/" + name
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func json(_ o: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
    }

    /// Usable records and bad ones (with where and why) of a source.
    func read(_ path: String, _ options: RecordOptions = RecordOptions()) throws
        -> (records: [RecordContent], bad: [(String, String)]) {
        var records: [RecordContent] = [], bad: [(String, String)] = []
        try RecordSource(path: path, options: options).forEachRecord({ r, _, _ in records.append(r) },
                                                                     bad: { bad.append(($0, $1)) })
        return (records, bad)
    }

    func testShapesAreDetectedByTheirKeysAndKeysCanBeRenamed() throws {
        let path = try write("mixed.jsonl", [
            json(["text": "a document"]),
            json(["prompt": "Q?", "response": " A."]),
            json(["messages": [["role": "user", "content": "hi"], ["role": "assistant", "content": "hello"]]]),
            "",
            json(["question": "Q2", "answer": "A2", "body": "t2"]),
        ])
        let (r, bad) = try read(path)
        XCTAssertEqual(r.count, 3)
        XCTAssertEqual(bad.count, 1, "\(bad)")
        XCTAssertEqual(bad.first?.0, path + ":5", "the blank line 4 is no record and not bad")
        XCTAssertEqual(Self.encoder.tokens(r[0]), ByteTextEncoder().encode("a document"))
        XCTAssertEqual(Self.encoder.tokens(r[1]), ByteTextEncoder().encode("Q?") + ByteTextEncoder().encode(" A."))
        XCTAssertEqual(Self.encoder.tokens(r[2]), ByteTextEncoder().encode("user: hi\nassistant: hello\n"))

        var o = RecordOptions()
        o.format = .pair; o.inputKey = "question"; o.outputKey = "answer"
        let renamed = try read(path, o)
        XCTAssertEqual(renamed.records.count, 1, "only the renamed pair")
        XCTAssertEqual(renamed.bad.count, 3)
        XCTAssertTrue(renamed.bad.contains { $0.0 == path + ":1" && $0.1.contains("lacks the key 'question'") }, "\(renamed.bad)")
        o = RecordOptions(); o.format = .text; o.textKey = "body"
        XCTAssertEqual(try read(path, o).records.count, 1)
    }

    /// Junk of every kind is skipped, counted and reported with file:line; nothing crashes.
    func testBadRecordsAreSkippedCountedAndReported() throws {
        var bytes = Data()
        func line(_ s: String) { bytes += Data(s.utf8) + Data([0x0A]) }
        line(json(["text": "good one"]))                      // 1
        line("this is not json")                              // 2
        bytes += Data([0xFF, 0xFE, 0x7B, 0x22, 0xC3, 0x28, 0x0A])  // 3: invalid UTF-8
        bytes += Data((0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37) }.filter { $0 != 0x0A }) + Data([0x0A])  // 4: binary
        line(json(["text": 42]))                              // 5: wrong type
        line(json(["txt": "x"]))                              // 6: missing key
        line(json(["text": ""]))                              // 7: empty after tokenisation
        line("[1, 2, 3]")                                     // 8: not an object
        line(json(["messages": [["role": "user"]]]))          // 9: a message without content
        line(json(["text": "good two"]))                      // 10
        let path = dir + "/junk.jsonl"
        try bytes.write(to: URL(fileURLWithPath: path))
        let (records, bad) = try read(path)
        XCTAssertEqual(records.count, 3, "lines 1, 7 (empty text is a record until tokenised) and 10")
        XCTAssertEqual(bad.map(\.0), [2, 3, 4, 5, 6, 8, 9].map { "\(path):\($0)" })
        XCTAssertTrue(bad[1].1.contains("UTF-8"), bad[1].1)
        XCTAssertTrue(bad[3].1.contains("'text' is not a string"), bad[3].1)

        // Through the cache: the empty record is bad too, and the threshold stops the run.
        let p = try TokenCache.load(source: RecordSource(path: path, options: RecordOptions()), split: .allTrain,
                                    encoder: Self.encoder, chunkLength: 4, directory: dir + "/cache")
        XCTAssertEqual(p.meta.stats.records, 2)
        XCTAssertEqual(p.meta.stats.bad, 8)
        XCTAssertEqual(p.meta.stats.reports.count, RecordStats.reportLimit)
        XCTAssertTrue(p.meta.stats.reports[0].hasPrefix(path + ":2: not valid JSON"), p.meta.stats.reports[0])
        guard case .tooManyBad(_, 8, 10, 0.01, _)? = p.meta.stats.check(source: path, maxBadFraction: 0.01) else {
            return XCTFail("8 of 10 bad must exceed 1 %")
        }
        XCTAssertNil(p.meta.stats.check(source: path, maxBadFraction: 0.9))
        XCTAssertTrue("\(p.meta.stats.check(source: path, maxBadFraction: 0.01)!)".contains(path + ":2"))

        // A file with nothing usable.
        let none = try write("none.jsonl", ["nope", json(["a": 1])])
        let q = try TokenCache.load(source: RecordSource(path: none, options: RecordOptions()), split: .allTrain,
                                    encoder: Self.encoder, chunkLength: 4, directory: dir + "/cache")
        XCTAssertEqual(q.meta.stats.check(source: none, maxBadFraction: 0.5),
                       .noUsableRecord(source: none, bad: 2, reports: q.meta.stats.reports))
    }

    /// The threshold is a fraction of all records: 1 bad in 100 passes at 1 %, 2 do not.
    func testThresholdCountsAFractionOfAllRecords() {
        var s = RecordStats()
        s.records = 99; s.bad("f:1", "x")
        XCTAssertNil(s.check(source: "f", maxBadFraction: 0.01))
        s.records = 98; s.bad("f:2", "x")
        XCTAssertNotNil(s.check(source: "f", maxBadFraction: 0.01))
    }

    /// A 100 MB line (longer than the record limit) is skipped without being held; a smaller
    /// limit catches a short one; the lines around it are read.
    func testHugeLineIsSkippedWithBoundedMemory() throws {
        let path = dir + "/huge.jsonl"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        h.write(Data((json(["text": "before"]) + "\n").utf8))
        h.write(Data("{\"text\": \"".utf8))
        let block = Data(repeating: UInt8(ascii: "x"), count: 1 << 20)
        for _ in 0..<100 { h.write(block) }
        h.write(Data("\"}\n".utf8))
        h.write(Data((json(["text": "after"]) + "\n").utf8))
        try h.close()
        let (r, bad) = try read(path)
        XCTAssertEqual(r.count, 2)
        XCTAssertEqual(bad.count, 1)
        XCTAssertEqual(bad[0].0, path + ":2")
        XCTAssertTrue(bad[0].1.contains("longer than"), bad[0].1)
        var o = RecordOptions()
        o.maxRecordBytes = 10
        XCTAssertEqual(try read(path, o).bad.count, 3, "every line is over 10 bytes")
    }

    func gzip(_ path: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["gzip", "-kf", path]
        try p.run(); p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
    }

    /// .jsonl.gz reads like the plain file; cut short, the records before the cut are read and
    /// the loss is one bad record naming the file.
    func testGzipAndTruncatedGzip() throws {
        let lines = (0..<2000).map { json(["text": "record number \($0) with some words to compress"]) }
        let plain = try write("data.jsonl", lines)
        try gzip(plain)
        let gz = plain + ".gz"
        let full = try read(gz)
        XCTAssertEqual(full.records.count, 2000)
        XCTAssertTrue(full.bad.isEmpty)
        let data = try Data(contentsOf: URL(fileURLWithPath: gz))
        let cut = dir + "/cut.jsonl.gz"
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        let part = try read(cut)
        XCTAssertGreaterThan(part.records.count, 100)
        XCTAssertLessThan(part.records.count, 2000)
        XCTAssertEqual(part.bad.count, 1, "\(part.bad)")
        XCTAssertTrue(part.bad[0].0.hasPrefix(cut + ":"))
        XCTAssertTrue(part.bad[0].1.contains("ends early"), part.bad[0].1)
        // Garbage after a gzip magic number: an error record, no crash.
        let junk = dir + "/junk.jsonl.gz"
        try (Data([0x1F, 0x8B, 0x08, 0x00]) + Data(repeating: 0xAB, count: 5000)).write(to: URL(fileURLWithPath: junk))
        let j = try read(junk)
        XCTAssertEqual(j.records.count, 0)
        XCTAssertEqual(j.bad.count, 1)
    }

    /// Chunks streamed into the cache equal `Packing.pack` of the same documents (remainder
    /// dropped), split by the record hash; a directory reads its matching files in path order.
    func testCachedChunksEqualInMemoryPacking() throws {
        let texts = (0..<200).map { i in String(repeating: "w\(i) ", count: 1 + i % 17) }
        let path = try write("docs.jsonl", texts.map { json(["text": $0]) })
        let p = try TokenCache.load(source: RecordSource(path: path, options: RecordOptions()), split: .hash(0.2),
                                    encoder: Self.encoder, chunkLength: 16, directory: dir + "/cache")
        let lines = texts.map { Array(json(["text": $0]).utf8) }
        let isVal = lines.map { fnv1a64($0) % 1_000_000 < 200_000 }
        XCTAssertTrue(isVal.contains(true) && isVal.contains(false))
        for (val, part) in [(false, p.train), (true, p.validation)] {
            let docs = zip(texts, isVal).filter { $0.1 == val }.map { ByteTextEncoder().encode($0.0) }
            let want = Packing.pack(documents: docs, chunkLength: 16, eos: 256, pad: 256, remainder: .drop)
            let table = ChunkTable(chunkLength: 16, eos: 256, parts: [part])
            XCTAssertEqual(table.count, want.count)
            XCTAssertEqual((0..<table.count).map { table.tokens($0) }, want.map(\.tokens))
        }
        XCTAssertEqual(p.meta.tokenWidth, 2)

        try FileManager.default.createDirectory(atPath: dir + "/tree/sub", withIntermediateDirectories: true)
        _ = try write("tree/b.txt", ["bee"])
        _ = try write("tree/sub/a.jsonl", [json(["text": "a"])])
        _ = try write("tree/c.md", ["not matched"])
        _ = try write("tree/.hidden.txt", ["hidden"])
        let s = try RecordSource(path: dir + "/tree", options: RecordOptions())
        XCTAssertEqual(s.relativePaths, ["b.txt", "sub/a.jsonl"])
        XCTAssertThrowsError(try RecordSource(path: dir + "/nope", options: RecordOptions())) {
            XCTAssertEqual($0 as? DataError, .missing(self.dir + "/nope"))
        }
    }

    /// The second load reuses the cache (no record tokenised: a counter, not a time); a change
    /// of the file, of the packing or of the tokenizer rebuilds it.
    func testCacheIsReusedAndRebuiltWhenItsInputsChange() throws {
        let path = try write("c.jsonl", (0..<50).map { json(["text": "doc \($0) " + String(repeating: "z", count: $0)]) })
        let cache = dir + "/cache"
        func load(_ P: Int = 8, _ enc: DocumentEncoder = DataSourceTests.encoder) throws -> (PackedSource, Int) {
            let before = TokenCache.recordsTokenized
            let p = try TokenCache.load(source: RecordSource(path: path, options: RecordOptions()), split: .hash(0.1),
                                        encoder: enc, chunkLength: P, directory: cache)
            return (p, TokenCache.recordsTokenized - before)
        }
        // A temporary file of a killed builder (of the key below) is removed by the next build.
        let key = try TokenCache.key(source: RecordSource(path: path, options: RecordOptions()), split: .hash(0.1),
                                     encoder: Self.encoder, chunkLength: 8).key
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let stale = cache + "/c.jsonl-\(key).tokens.tmp.99999.1"
        XCTAssertTrue(FileManager.default.createFile(atPath: stale, contents: Data(count: 1000)))
        let (a, n1) = try load()
        XCTAssertEqual(n1, 50)
        XCTAssertTrue(a.built)
        XCTAssertEqual(a.path, cache + "/c.jsonl-\(key).tokens")
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        let (b, n2) = try load()
        XCTAssertEqual(n2, 0, "the second load tokenises nothing")
        XCTAssertFalse(b.built)
        XCTAssertEqual(a.path, b.path)
        XCTAssertEqual(a.meta, b.meta)
        XCTAssertEqual(try load(16).1, 50, "another chunk length is another cache")
        var other = Self.encoder
        other.identity = "bytes-v2"
        XCTAssertEqual(try load(8, other).1, 50, "another tokenizer is another cache")
        // Same size, new content (and mtime): rebuilt, and its chunks differ.
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: "doc 1 ", with: "DOC 1 ")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let (c, n3) = try load()
        XCTAssertEqual(n3, 50)
        XCTAssertNotEqual(c.path, a.path)
        XCTAssertEqual(try load().1, 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: cache)
        XCTAssertFalse(files.contains { $0.contains(".tmp.") }, "no temporary file left: \(files)")
    }

    /// Ranks building the same cache at once: one builds, the others wait and map its file.
    func testConcurrentLoadsBuildOnce() throws {
        let path = try write("conc.jsonl", (0..<3000).map { json(["text": "line \($0) " + String(repeating: "q", count: $0 % 50)]) })
        let before = TokenCache.recordsTokenized
        let lock = NSLock()
        var metas: [TokenCache.Meta] = []
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let p = try? TokenCache.load(source: RecordSource(path: path, options: RecordOptions()), split: .hash(0.1),
                                         encoder: Self.encoder, chunkLength: 8, directory: dir + "/cache")
            lock.lock(); if let p { metas.append(p.meta) }; lock.unlock()
        }
        XCTAssertEqual(metas.count, 4)
        XCTAssertEqual(Set(metas.map(\.key)).count, 1)
        XCTAssertEqual(TokenCache.recordsTokenized - before, 3000, "built once")
    }

    /// Loading reports progress (the trainer's stall watchdog counts it as liveness): every 1024
    /// records while tokenising, and about every 0.2 s while another process holds the build lock.
    func testLoadReportsProgressWhileTokenisingAndWhileWaiting() throws {
        let path = try write("prog.jsonl", (0..<5000).map { json(["text": "p \($0)"]) })
        let cache = dir + "/cache"
        let source = try RecordSource(path: path, options: RecordOptions())
        let key = try TokenCache.key(source: source, split: .allTrain, encoder: Self.encoder, chunkLength: 4).key
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        // Another "rank" holds the lock.
        let fd = open(cache + "/prog.jsonl-\(key).tokens.lock", O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(flock(fd, LOCK_EX), 0)
        final class Messages: @unchecked Sendable {
            let lock = NSLock()
            var list: [String] = []
            func add(_ m: String) { lock.lock(); list.append(m); lock.unlock() }
            var all: [String] { lock.lock(); defer { lock.unlock() }; return list }
        }
        let messages = Messages()
        let done = expectation(description: "loaded")
        DispatchQueue.global().async {
            let p = try? TokenCache.load(source: source, split: .allTrain, encoder: Self.encoder, chunkLength: 4,
                                         directory: cache, progress: messages.add)
            XCTAssertEqual(p?.meta.stats.records, 5000)
            done.fulfill()
        }
        func waits() -> Int { messages.all.filter { $0.contains("waiting") }.count }
        let deadline = Date(timeIntervalSinceNow: 60)
        while waits() < 3 && Date() < deadline { usleep(50_000) }
        XCTAssertGreaterThanOrEqual(waits(), 3, "progress while the lock is held elsewhere")
        flock(fd, LOCK_UN); close(fd)
        wait(for: [done], timeout: 60)
        let tokenising = messages.all.filter { $0.contains("tokenising") }
        XCTAssertEqual(tokenising.count, 5000 / 1024, "\(tokenising)")
        XCTAssertTrue(tokenising.last?.contains("4096 records") ?? false, "\(tokenising)")
    }

    /// A mixture's draws follow its weights within 2 % over 10,000 draws, each source's chunks
    /// come from its own range, and the draws are a function of (seed, step).
    func testMixtureProportionsFollowTheWeights() throws {
        let parts = [ChunkSampler.Mixture(offset: 0, count: 50, weight: 0.2),
                     ChunkSampler.Mixture(offset: 50, count: 700, weight: 0.5),
                     ChunkSampler.Mixture(offset: 750, count: 9, weight: 0.3)]
        let s = try ChunkSampler(chunkCount: 759, batchSize: 4, seed: 7, mixture: parts)
        var counts = [0, 0, 0]
        for t in 0..<2500 {
            for i in s.indices(step: t) {
                let k = parts.lastIndex { $0.offset <= i }!
                counts[k] += 1
                XCTAssertLessThan(i, parts[k].offset + parts[k].count)
            }
        }
        XCTAssertEqual(counts.reduce(0, +), 10_000)
        for (k, p) in parts.enumerated() {
            XCTAssertEqual(Double(counts[k]) / 10_000, p.weight, accuracy: 0.02, "source \(k): \(counts)")
        }
        XCTAssertEqual(s.indices(step: 1234), try ChunkSampler(chunkCount: 759, batchSize: 4, seed: 7, mixture: parts).indices(step: 1234))
        // Within one pass over a source no chunk repeats: source 2 (9 chunks) over its first 9 slots.
        var seen: [Int] = []
        for t in 0..<100 { for (j, i) in s.indices(step: t).enumerated() where s.source(ofSlot: t * 4 + j) == 1 { seen.append(i) } }
        XCTAssertEqual(Set(seen.prefix(200)).count, seen.prefix(200).count, "no repeat within 700 slots of source 1")
        // One source is the plain shuffled order.
        let one = try ChunkSampler(chunkCount: 759, batchSize: 4, seed: 7, mixture: [parts[0]])
        XCTAssertEqual(one.indices(step: 3), try ChunkSampler(chunkCount: 759, batchSize: 4, seed: 7).indices(step: 3))
    }

    func testDataSpecParsing() throws {
        XCTAssertEqual(try DataSpec(parsing: "a.jsonl"), DataSpec(path: "a.jsonl", weight: 1))
        XCTAssertEqual(try DataSpec(parsing: "/x/a.jsonl:0.3"), DataSpec(path: "/x/a.jsonl", weight: 0.3))
        XCTAssertEqual(try DataSpec(parsing: "c:/dir:x"), DataSpec(path: "c:/dir:x", weight: 1))
        XCTAssertThrowsError(try DataSpec(parsing: "a.jsonl:0"))
        XCTAssertThrowsError(try DataSpec(parsing: "a.jsonl:-1"))
        XCTAssertThrowsError(try DataSpec(parsing: ":2"))
    }
}
