// Tokenised, packed training data on disk (issue 13): a source's records are tokenised once,
// packed into chunks of P tokens (spec §3: documents joined by EOS, the last partial chunk
// dropped) and written to a cache file that is memory-mapped by every rank and every resumed
// run. The file name holds a hash of everything the chunks depend on: each input file's path,
// size, modification time and content hash, the tokenizer, the record options, the packing
// settings and the split. Building writes a temporary file and renames it into place, under an
// exclusive lock, so concurrent ranks build it once and never read a partial file.
//
// File layout: "EBFTTOK1", the header length H (UInt64 LE), the metadata as JSON padded with
// spaces to H bytes, then the training chunks and the validation chunks, each token a
// little-endian UInt16 (vocabularies up to 65 536) or UInt32.
import Foundation
import Model
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns a record into the token ids of its document.
public struct DocumentEncoder {
    /// Plain text, special-token strings read as text.
    public var text: (String) -> [Int32]
    /// A conversation rendered with the model's chat format (special tokens allowed).
    public var chat: ([(role: String, content: String)]) -> [Int32]
    /// Names the tokenizer and chat format in the cache key (a change rebuilds the cache).
    public var identity: String
    public var eos: Int32
    public var vocabSize: Int

    public init(text: @escaping (String) -> [Int32], chat: @escaping ([(role: String, content: String)]) -> [Int32],
                identity: String, eos: Int32, vocabSize: Int) {
        self.text = text; self.chat = chat; self.identity = identity; self.eos = eos; self.vocabSize = vocabSize
    }

    /// Documents as the built-in tasks pack them: a text as is; a pair as prompt then response,
    /// each tokenised separately (spec §3, as `qa-code` and `translation`); a chat rendered whole.
    public func tokens(_ r: RecordContent) -> [Int32] {
        switch r {
        case .text(let t): return text(t)
        case let .pair(p, a): return text(p) + text(a)
        case .chat(let m): return chat(m)
        }
    }
}

/// Which split a source's records go to.
public enum SplitRule: Equatable, Sendable {
    /// Validation iff `key mod 10⁶ < fraction·10⁶` (the stdlib corpus's rule).
    case hash(Double)
    case allTrain
    case allValidation

    func isValidation(_ key: UInt64) -> Bool {
        switch self {
        case .hash(let f): return key % 1_000_000 < UInt64((f * 1_000_000).rounded())
        case .allTrain: return false
        case .allValidation: return true
        }
    }

    var name: String {
        switch self {
        case .hash(let f): return "hash:\(f)"
        case .allTrain: return "train"
        case .allValidation: return "validation"
        }
    }
}

/// Packs documents into chunks of exactly `P` tokens with one EOS between consecutive
/// documents, as `Packing.pack(…, remainder: .drop)` does, without holding the stream.
final class StreamPacker {
    let P: Int, eos: Int32
    private var buffer: [Int32] = []
    private var started = false
    private(set) var chunks = 0
    let emit: (ArraySlice<Int32>) throws -> Void

    init(P: Int, eos: Int32, emit: @escaping (ArraySlice<Int32>) throws -> Void) {
        self.P = P; self.eos = eos; self.emit = emit
    }

    func add(_ doc: [Int32]) throws {
        if started { buffer.append(eos) }
        started = true
        buffer.append(contentsOf: doc)
        var start = 0
        while buffer.count - start >= P {
            try emit(buffer[start..<(start + P)])
            start += P
            chunks += 1
        }
        if start > 0 { buffer.removeFirst(start) }
    }
}

/// Counts and the first problems of one source.
public struct RecordStats: Codable, Equatable, Sendable {
    public var records = 0
    public var bad = 0
    public var tokens = 0
    public var reports: [String] = []
    /// Problems kept for the message.
    public static let reportLimit = 5

    public init() {}

    /// Counts one bad record at `at` (file:line), keeping the first few reasons.
    public mutating func bad(_ at: String, _ why: String) {
        bad += 1
        if reports.count < Self.reportLimit { reports.append("\(at): \(String(why.prefix(300)))") }
    }

    /// The error for too many bad records (`maxBadFraction` of all records), or nil.
    public func check(source: String, maxBadFraction: Double) -> DataError? {
        if records == 0 { return .noUsableRecord(source: source, bad: bad, reports: reports) }
        let total = records + bad
        if Double(bad) > maxBadFraction * Double(total) {
            return .tooManyBad(source: source, bad: bad, total: total, limit: maxBadFraction, reports: reports)
        }
        return nil
    }
}

/// Read-only memory map of a token cache file.
public final class MappedTokenFile: @unchecked Sendable {
    public let size: Int
    let base: UnsafeRawPointer

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw DataError.cache(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { throw DataError.cache(path: path, reason: "empty or unreadable") }
        size = Int(st.st_size)
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        if p == MAP_FAILED || p == nil {
            throw DataError.cache(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p!)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

/// Packed chunks of several parts (sources), each in memory or in a mapped cache file.
public final class ChunkTable: @unchecked Sendable {
    public enum Storage {
        case memory([Int32])
        /// `width` bytes per token from byte `offset` of the file.
        case mapped(MappedTokenFile, offset: Int, width: Int)
    }
    public struct Part {
        public var storage: Storage
        public var count: Int
        public init(storage: Storage, count: Int) { self.storage = storage; self.count = count }
    }

    public let chunkLength: Int
    public let eos: Int32
    let parts: [Part]
    /// First global index of each part.
    public let offsets: [Int]
    public let count: Int

    public init(chunkLength: Int, eos: Int32, parts: [Part]) {
        self.chunkLength = chunkLength; self.eos = eos; self.parts = parts
        var o: [Int] = [], n = 0
        for p in parts { o.append(n); n += p.count }
        offsets = o; count = n
    }

    /// An in-memory table of one part.
    public convenience init(chunks: [Chunk], chunkLength: Int, eos: Int32) {
        self.init(chunkLength: chunkLength, eos: eos,
                  parts: [Part(storage: .memory(chunks.flatMap(\.tokens)), count: chunks.count)])
    }

    /// Chunk counts of the parts.
    public var partCounts: [Int] { parts.map(\.count) }

    /// The tokens of global chunk `i`.
    public func tokens(_ i: Int) -> [Int32] {
        precondition(i >= 0 && i < count, "chunk \(i) out of 0..<\(count)")
        var k = parts.count - 1
        while offsets[k] > i { k -= 1 }
        return tokens(part: k, i - offsets[k])
    }

    /// The tokens of chunk `j` of part `k`.
    public func tokens(part k: Int, _ j: Int) -> [Int32] {
        let P = chunkLength
        switch parts[k].storage {
        case .memory(let a):
            return Array(a[(j * P)..<((j + 1) * P)])
        case let .mapped(file, offset, width):
            let start = file.base + offset + j * P * width
            if width == 2 {
                return (0..<P).map {
                    Int32(UInt16(littleEndian: start.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)))
                }
            }
            return (0..<P).map {
                Int32(bitPattern: UInt32(littleEndian: start.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
            }
        }
    }

    /// Chunk `i` with document ids counted from the chunk's start (EOS ends a document).
    public subscript(i: Int) -> Chunk { Self.chunk(tokens(i), eos: eos) }

    static func chunk(_ t: [Int32], eos: Int32) -> Chunk {
        var ids: [Int32] = [], d: Int32 = 0
        ids.reserveCapacity(t.count)
        for x in t { ids.append(d); if x == eos { d += 1 } }
        return Chunk(tokens: t, docIds: ids)
    }

    /// Up to `limit` chunks taken round-robin from the parts (so a mixture's evaluation set
    /// holds every source).
    public func roundRobin(limit: Int) -> [Chunk] {
        var out: [Chunk] = [], j = 0
        while out.count < limit {
            var any = false
            for k in parts.indices where j < parts[k].count && out.count < limit {
                out.append(Self.chunk(tokens(part: k, j), eos: eos)); any = true
            }
            if !any { break }
            j += 1
        }
        return out
    }
}

/// The packed chunks of one source, from its cache file.
public struct PackedSource {
    public var meta: TokenCache.Meta
    public var train: ChunkTable.Part
    public var validation: ChunkTable.Part
    /// The cache file.
    public var path: String
    /// True when this call tokenised the source (false: the cache was reused).
    public var built: Bool
}

public enum TokenCache {
    static let magic = Array("EBFTTOK1".utf8)
    static let headerBytes = 16 << 10
    public static let version = 1

    /// What the cache file's header records.
    public struct Meta: Codable, Equatable, Sendable {
        public var version: Int
        public var key: String
        public var chunkLength: Int
        public var tokenWidth: Int
        public var trainChunks: Int
        public var validationChunks: Int
        public var stats: RecordStats
        public var sourceBytes: Int
        public var seconds: Double
    }

    private static let counterLock = NSLock()
    nonisolated(unsafe) private static var tokenized = 0

    /// Records tokenised by this process into caches so far (a test reads it to tell a reused
    /// cache from a rebuilt one).
    public static var recordsTokenized: Int {
        counterLock.lock(); defer { counterLock.unlock() }
        return tokenized
    }

    static func count(_ n: Int) { counterLock.lock(); tokenized += n; counterLock.unlock() }

    /// The default cache directory: `$XDG_CACHE_HOME/ebft-dist/tokens`, else `~/.cache/…`.
    public static var defaultDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return x + "/ebft-dist/tokens" }
        return (env["HOME"] ?? NSTemporaryDirectory()) + "/.cache/ebft-dist/tokens"
    }

    /// XXH64 of a file's content, chained over 4 MiB blocks (bounded memory); `progress` every GiB.
    static func contentHash(_ path: String, progress: (String) -> Void = { _ in }) throws -> UInt64 {
        let fd = Glibc.open(path, O_RDONLY)
        if fd < 0 { throw DataError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var h: UInt64 = 0, offset = 0
        var buf = [UInt8](repeating: 0, count: 4 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n < 0 { throw DataError.unreadable(path: path, reason: String(cString: strerror(errno))) }
            if n == 0 { break }
            h = buf.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0[0..<n]), seed: h) }
            offset += n
            if offset % (1 << 30) < n { progress("hashing \(path): \(offset >> 30) GiB") }
        }
        return h
    }

    /// The cache key: a hash over the inputs' identities and every setting the chunks depend on.
    static func key(source: RecordSource, split: SplitRule, encoder: DocumentEncoder, chunkLength P: Int,
                    progress: (String) -> Void = { _ in }) throws -> (key: String, bytes: Int) {
        var desc = "v\(version)\nP=\(P)\neos=\(encoder.eos)\nencoder=\(encoder.identity)\nsplit=\(split.name)\n"
        let o = source.options
        desc += "format=\(o.format.rawValue)\nkeys=\(o.textKey)|\(o.inputKey)|\(o.outputKey)\nmax=\(o.maxRecordBytes)\n"
        var total = 0
        for (file, rel) in zip(source.files, source.relativePaths) {
            var st = stat()
            guard stat(file, &st) == 0 else { throw DataError.unreadable(path: file, reason: String(cString: strerror(errno))) }
            total += Int(st.st_size)
            let content = try contentHash(file, progress: progress)
            desc += "\(rel)\t\(st.st_size)\t\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)\t\(content)\n"
        }
        let h = desc.utf8CString.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
        return (String(format: "%016llx", h), total)
    }

    /// The packed chunks of `source`, from the cache in `directory` (built there first when it
    /// is missing). `log` gets one line: reused or built, with the figures. `progress` is called
    /// every 1024 records while tokenising and about every 0.2 s while another process builds the
    /// file (a stall watchdog takes either as a sign of life).
    public static func load(source: RecordSource, split: SplitRule, encoder: DocumentEncoder, chunkLength P: Int,
                            directory: String, progress: (String) -> Void = { _ in },
                            log: (String) -> Void = { _ in }) throws -> PackedSource {
        let (key, bytes) = try key(source: source, split: split, encoder: encoder, chunkLength: P, progress: progress)
        let base = URL(fileURLWithPath: source.path).lastPathComponent
            .map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" }
        let path = directory + "/" + String(base.prefix(60)) + "-" + key + ".tokens"
        if let hit = try? openCache(path: path, key: key) { return hit }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch { throw DataError.cache(path: directory, reason: "cannot create the directory: \(error.localizedDescription)") }
        // One builder at a time; the others wait, then find the file.
        let lockFD = Glibc.open(path + ".lock", O_RDWR | O_CREAT, 0o644)
        if lockFD < 0 { throw DataError.cache(path: path + ".lock", reason: String(cString: strerror(errno))) }
        defer { close(lockFD) }
        while flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw DataError.cache(path: path + ".lock", reason: String(cString: strerror(errno)))
            }
            progress("waiting for another process to tokenise \(source.path)")
            usleep(200_000)
        }
        defer { flock(lockFD, LOCK_UN) }
        if let hit = try? openCache(path: path, key: key) { return hit }
        // Holding the lock, no other process builds this file: temporary files left by a
        // builder that was killed are removed.
        let name = URL(fileURLWithPath: path).lastPathComponent + ".tmp."
        for f in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where f.hasPrefix(name) {
            unlink(directory + "/" + f)
        }
        let t0 = Date()
        let meta = try build(source: source, split: split, encoder: encoder, chunkLength: P, key: key,
                             sourceBytes: bytes, to: path, started: t0, progress: progress)
        var out = try openCache(path: path, key: key)
        out.built = true
        let mb = Double(bytes) / 1e6, s = meta.seconds
        log(String(format: "data %@: tokenised %d records (%d bad) of %.1f MB in %.1f s (%.2f MB/s), "
                   + "%d tokens → %d train / %d validation chunks; cache %@", source.path, meta.stats.records, meta.stats.bad, mb, s, mb / max(s, 1e-9), meta.stats.tokens,
                   meta.trainChunks, meta.validationChunks, path))
        return out
    }

    /// Maps a finished cache file whose header carries `key`.
    static func openCache(path: String, key: String) throws -> PackedSource {
        let file = try MappedTokenFile(path: path)
        guard file.size >= 16, memcmp(file.base, magic, 8) == 0 else {
            throw DataError.cache(path: path, reason: "not a token cache")
        }
        let h = Int(UInt64(littleEndian: file.base.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        guard h >= 16, h <= file.size else { throw DataError.cache(path: path, reason: "bad header length") }
        let json = Data(bytes: file.base + 16, count: h - 16)
        let meta = try JSONDecoder().decode(Meta.self, from: json)
        guard meta.version == version, meta.key == key else { throw DataError.cache(path: path, reason: "stale") }
        let perChunk = meta.chunkLength * meta.tokenWidth
        guard h + (meta.trainChunks + meta.validationChunks) * perChunk == file.size else {
            throw DataError.cache(path: path, reason: "size does not match its header")
        }
        return PackedSource(
            meta: meta,
            train: .init(storage: .mapped(file, offset: h, width: meta.tokenWidth), count: meta.trainChunks),
            validation: .init(storage: .mapped(file, offset: h + meta.trainChunks * perChunk, width: meta.tokenWidth),
                              count: meta.validationChunks),
            path: path, built: false)
    }

    /// Buffered little-endian token writer.
    final class Writer {
        let fd: Int32, width: Int, path: String
        private var buf: [UInt8] = []
        init(path: String, width: Int) throws {
            self.path = path; self.width = width
            fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
            if fd < 0 { throw DataError.cache(path: path, reason: String(cString: strerror(errno))) }
            buf.reserveCapacity(1 << 22)
        }
        deinit { close(fd) }

        func write(_ tokens: ArraySlice<Int32>) throws {
            if width == 2 {
                for t in tokens { let u = UInt16(truncatingIfNeeded: t); buf.append(UInt8(u & 0xFF)); buf.append(UInt8(u >> 8)) }
            } else {
                for t in tokens { withUnsafeBytes(of: UInt32(bitPattern: t).littleEndian) { buf.append(contentsOf: $0) } }
            }
            if buf.count >= 1 << 22 { try flush() }
        }

        func write(bytes: [UInt8]) throws { buf.append(contentsOf: bytes); try flush() }

        func flush() throws {
            var done = 0
            while done < buf.count {
                let n = buf.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DataError.cache(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
                }
                done += n
            }
            buf.removeAll(keepingCapacity: true)
        }
    }

    /// Tokenises and packs the source into `path` (through a temporary file and a rename).
    static func build(source: RecordSource, split: SplitRule, encoder: DocumentEncoder, chunkLength P: Int, key: String,
                      sourceBytes: Int, to path: String, started t0: Date,
                      progress: (String) -> Void = { _ in }) throws -> Meta {
        let width = encoder.vocabSize <= 1 << 16 ? 2 : 4
        let tmp = path + ".tmp.\(getpid()).\(UInt32.random(in: 0 ... .max))"
        let tmpVal = tmp + ".validation"
        defer { unlink(tmpVal); unlink(tmp) }
        let main = try Writer(path: tmp, width: width), val = try Writer(path: tmpVal, width: width)
        try main.write(bytes: [UInt8](repeating: 0x20, count: headerBytes))
        let trainPacker = StreamPacker(P: P, eos: encoder.eos) { try main.write($0) }
        let valPacker = StreamPacker(P: P, eos: encoder.eos) { try val.write($0) }
        var stats = RecordStats()
        var pending = 0, seen = 0
        try source.forEachRecord({ content, splitKey, at in
            let doc = encoder.tokens(content)
            pending += 1; seen += 1
            if pending == 4096 { count(pending); pending = 0 }
            if seen % 1024 == 0 { progress("tokenising \(source.path): \(seen) records") }
            guard !doc.isEmpty else { stats.bad(at, "empty after tokenisation"); return }
            stats.records += 1
            stats.tokens += doc.count
            try (split.isValidation(splitKey) ? valPacker : trainPacker).add(doc)
        }, bad: { stats.bad($0, $1) })
        count(pending)
        try main.flush(); try val.flush()
        // Append the validation chunks after the training chunks.
        let valBytes = valPacker.chunks * P * width
        var copied = 0
        var block = [UInt8](repeating: 0, count: 1 << 22)
        while copied < valBytes {
            let n = block.withUnsafeMutableBytes { pread(val.fd, $0.baseAddress, $0.count, off_t(copied)) }
            guard n > 0 else { throw DataError.cache(path: tmpVal, reason: "read failed") }
            try main.write(bytes: Array(block[0..<n]))
            copied += n
        }
        let meta = Meta(version: version, key: key, chunkLength: P, tokenWidth: width, trainChunks: trainPacker.chunks,
                        validationChunks: valPacker.chunks, stats: stats, sourceBytes: sourceBytes,
                        seconds: Date().timeIntervalSince(t0))
        var header = magic
        withUnsafeBytes(of: UInt64(headerBytes).littleEndian) { header.append(contentsOf: $0) }
        let json = Array(try JSONEncoder().encode(meta))
        guard json.count + 16 <= headerBytes else { throw DataError.cache(path: path, reason: "metadata too long") }
        header += json
        let written = header.withUnsafeBytes { pwrite(main.fd, $0.baseAddress, $0.count, 0) }
        guard written == header.count, fsync(main.fd) == 0 else {
            throw DataError.cache(path: tmp, reason: "cannot write the header: \(String(cString: strerror(errno)))")
        }
        guard rename(tmp, path) == 0 else {
            throw DataError.cache(path: path, reason: "rename failed: \(String(cString: strerror(errno)))")
        }
        return meta
    }

    /// Packs in-memory records (the built-in pair tasks, split already) the same way, without a
    /// cache file.
    public static func pack(records: [RecordContent], encoder: DocumentEncoder,
                            chunkLength P: Int) -> (part: ChunkTable.Part, stats: RecordStats) {
        var out: [Int32] = []
        let packer = StreamPacker(P: P, eos: encoder.eos) { out.append(contentsOf: $0) }
        var stats = RecordStats()
        for (i, r) in records.enumerated() {
            let doc = encoder.tokens(r)
            guard !doc.isEmpty else { stats.bad("record \(i)", "empty after tokenisation"); continue }
            stats.records += 1; stats.tokens += doc.count
            try? packer.add(doc)  // the in-memory sink never throws
        }
        return (.init(storage: .memory(out), count: packer.chunks), stats)
    }
}
