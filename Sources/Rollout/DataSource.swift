// Training data from the user's files (issue 13): JSONL (plain or gzip), plain-text files and
// directories of them, read as a stream of records. Each record becomes one document of tokens
// (a text, a prompt–response pair or a chat), which `TokenCache` packs into chunks (spec §3).
//
// Records that cannot be used (not JSON, a missing key, a wrong type, nothing left after
// tokenisation, longer than `maxRecordBytes`, the cut-off tail of a truncated gzip file) are
// skipped and counted; the first few are kept with file and line for the error message.
import CZlib
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One `--data` entry: a path and its mixture weight (`PATH:0.3`; 1 when absent).
public struct DataSpec: Equatable, Sendable {
    public var path: String
    public var weight: Double

    public init(path: String, weight: Double = 1) { self.path = path; self.weight = weight }

    /// Parses `PATH` or `PATH:WEIGHT`. A suffix after the last colon that is not a number
    /// belongs to the path; a numeric one must be a finite weight > 0.
    public init(parsing text: String) throws {
        if let colon = text.lastIndex(of: ":"), let w = Double(text[text.index(after: colon)...]) {
            guard w > 0 && w.isFinite else { throw DataError.badWeight(text) }
            path = String(text[..<colon]); weight = w
        } else {
            path = text; weight = 1
        }
        guard !path.isEmpty else { throw DataError.badWeight(text) }
    }
}

/// How a record is read.
public enum DataFormat: String, Sendable, CaseIterable, Codable {
    /// By the keys present: `messages` → chat, input and output key → pair, text key → text.
    case auto
    /// A document: the text key (`text`).
    case text
    /// A prompt and its answer: the input and output keys (`prompt`, `response`).
    case pair
    /// A conversation: `messages`, a list of `{role, content}`.
    case chat
}

/// Data errors that stop a run before training.
public enum DataError: Error, CustomStringConvertible, Equatable {
    case badWeight(String)
    case missing(String)
    case noFiles(path: String, glob: String)
    case unreadable(path: String, reason: String)
    case noUsableRecord(source: String, bad: Int, reports: [String])
    case tooManyBad(source: String, bad: Int, total: Int, limit: Double, reports: [String])
    case cache(path: String, reason: String)

    public var description: String {
        func list(_ r: [String]) -> String { r.isEmpty ? "" : "; first problems:\n  " + r.joined(separator: "\n  ") }
        switch self {
        case .badWeight(let t):
            return "data '\(t)': expected PATH or PATH:WEIGHT with a weight > 0"
        case .missing(let p):
            return "data path \(p) does not exist"
        case let .noFiles(p, g):
            return "data directory \(p) holds no file matching data-glob '\(g)'"
        case let .unreadable(p, r):
            return "cannot read data file \(p): \(r)"
        case let .noUsableRecord(s, bad, reports):
            return "data \(s) has no usable record (\(bad) bad)" + list(reports)
        case let .tooManyBad(s, bad, total, limit, reports):
            return String(format: "data %@: %d of %d records are bad (%.2f %%, more than max-bad-fraction %g)",
                          s, bad, total, 100 * Double(bad) / Double(max(total, 1)), limit) + list(reports)
        case let .cache(p, r):
            return "token cache \(p): \(r)"
        }
    }
}

/// What a source reads and how it reads records.
public struct RecordOptions: Sendable, Equatable {
    public var format: DataFormat = .auto
    public var textKey = "text"
    public var inputKey = "prompt"
    public var outputKey = "response"
    /// Comma-separated shell patterns (`fnmatch`) on file names, for directories.
    public var glob = "*.jsonl,*.jsonl.gz,*.txt"
    /// Directory names never entered (the stdlib preset excludes test suites).
    public var excludedDirectories: Set<String> = []
    /// A record (a JSONL line, a text file) longer than this is skipped as bad.
    public var maxRecordBytes = 64 << 20
    public init() {}
}

/// One record read from a source: the document it becomes, and what the split hashes.
public enum RecordContent {
    case text(String)
    case pair(prompt: String, response: String)
    case chat([(role: String, content: String)])
}

/// The files of a data path, and reading them as records.
public struct RecordSource {
    public let path: String
    public let options: RecordOptions
    /// Absolute paths of the files, in order (sorted relative paths for a directory).
    public let files: [String]
    /// The path of each file relative to the source (the file name for a single file).
    public let relativePaths: [String]

    public init(path: String, options: RecordOptions) throws {
        self.path = path; self.options = options
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError.missing(path) }
        let abs = URL(fileURLWithPath: path).standardizedFileURL.path
        if isDir.boolValue {
            let patterns = options.glob.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
            let rel = StdlibCorpus.enumerate(root: abs, excluded: options.excludedDirectories) { name in
                !name.hasPrefix(".") && patterns.contains { fnmatch($0, name, 0) == 0 }
            }
            guard !rel.isEmpty else { throw DataError.noFiles(path: path, glob: options.glob) }
            relativePaths = rel
            files = rel.map { abs + "/" + $0 }
        } else {
            relativePaths = [URL(fileURLWithPath: abs).lastPathComponent]
            files = [abs]
        }
    }

    /// True for files read line by line as JSON records.
    public static func isJSONL(_ path: String) -> Bool {
        path.hasSuffix(".jsonl") || path.hasSuffix(".jsonl.gz") || path.hasSuffix(".ndjson")
            || path.hasSuffix(".ndjson.gz")
    }

    /// Every record of every file, in order: `body(content, splitKey, where)` for usable records,
    /// `bad(where, reason)` for the others. `splitKey` is the record's hash for the train/validation
    /// split: the line's FNV-1a-64 for JSONL, the relative path's for a text file (as the stdlib
    /// corpus splits). Empty text files are skipped without counting (they carry no document).
    public func forEachRecord(_ body: (RecordContent, UInt64, String) throws -> Void,
                              bad: (String, String) -> Void) throws {
        for (file, rel) in zip(files, relativePaths) {
            if Self.isJSONL(file) {
                try LineReader.forEachLine(path: file, maxBytes: options.maxRecordBytes) { event in
                    switch event {
                    case let .line(n, bytes):
                        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }  // blank line
                        let at = "\(file):\(n)"
                        switch Self.parse(jsonLine: bytes, options: options) {
                        case .success(let content): try body(content, fnv1a64(bytes), at)
                        case .failure(let why): bad(at, why.reason)
                        }
                    case let .tooLong(n, size):
                        bad("\(file):\(n)", "line of \(size) bytes is longer than \(options.maxRecordBytes) bytes")
                    case let .truncated(n, message):
                        bad("\(file):\(n)",
                            "compressed stream ends early or is corrupt (\(message)); the rest of the file is lost")
                    }
                }
            } else {
                let at = file
                var st = stat()
                guard stat(file, &st) == 0 else { bad(at, "cannot stat: \(String(cString: strerror(errno)))"); continue }
                if st.st_size == 0 { continue }
                guard Int(st.st_size) <= options.maxRecordBytes else {
                    bad(at, "text file of \(st.st_size) bytes is longer than \(options.maxRecordBytes) bytes; "
                        + "split it or use JSONL")
                    continue
                }
                guard let data = FileManager.default.contents(atPath: file) else { bad(at, "cannot read"); continue }
                guard let text = String(validating: data, as: UTF8.self) else { bad(at, "not valid UTF-8"); continue }
                try body(.text(text), fnv1a64(Array(rel.utf8)), at)
            }
        }
    }

    struct Reason: Error { var reason: String }

    /// One JSONL line as a record of the configured (or detected) shape.
    static func parse(jsonLine bytes: [UInt8], options o: RecordOptions) -> Result<RecordContent, Reason> {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            let utf8 = String(validating: bytes, as: UTF8.self) != nil
            return .failure(Reason(reason: utf8 ? "not valid JSON" : "not valid UTF-8 (so not JSON)"))
        }
        guard let dict = object as? [String: Any] else { return .failure(Reason(reason: "not a JSON object")) }
        var format = o.format
        if format == .auto {
            if dict["messages"] != nil { format = .chat }
            else if dict[o.inputKey] != nil && dict[o.outputKey] != nil { format = .pair }
            else if dict[o.textKey] != nil { format = .text }
            else {
                return .failure(Reason(reason: "has none of the keys '\(o.textKey)', '\(o.inputKey)'+'\(o.outputKey)', "
                                       + "'messages' "
                                       + "(keys: \(dict.keys.sorted().prefix(8).joined(separator: ", ")))"))
            }
        }
        func string(_ key: String) -> Result<String, Reason> {
            guard let v = dict[key] else { return .failure(Reason(reason: "lacks the key '\(key)'")) }
            guard let s = v as? String else { return .failure(Reason(reason: "'\(key)' is not a string")) }
            return .success(s)
        }
        switch format {
        case .text:
            return string(o.textKey).map { .text($0) }
        case .pair:
            return string(o.inputKey).flatMap { p in string(o.outputKey).map { .pair(prompt: p, response: $0) } }
        case .chat:
            guard let v = dict["messages"] else { return .failure(Reason(reason: "lacks the key 'messages'")) }
            guard let list = v as? [Any] else { return .failure(Reason(reason: "'messages' is not a list")) }
            var messages: [(role: String, content: String)] = []
            for (i, m) in list.enumerated() {
                guard let m = m as? [String: Any] else { return .failure(Reason(reason: "messages[\(i)] is not an object")) }
                guard let role = m["role"] as? String, let content = m["content"] as? String else {
                    return .failure(Reason(reason: "messages[\(i)] needs string 'role' and 'content'"))
                }
                messages.append((role, content))
            }
            return .success(.chat(messages))
        case .auto:
            fatalError("unreachable")
        }
    }
}

/// FNV-1a, 64 bit, over bytes.
public func fnv1a64<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}

/// Reads a file (plain or gzip, told apart by its magic bytes) line by line with bounded
/// memory: a line longer than `maxBytes` is skipped, not held.
public enum LineReader {
    public enum Event {
        /// Line `number` (1-based) without its newline (and without a trailing CR).
        case line(Int, [UInt8])
        case tooLong(Int, Int)
        /// The compressed stream ended early or is corrupt after line `number - 1`.
        case truncated(Int, String)
    }

    public static func forEachLine(path: String, maxBytes: Int, blockSize: Int = 1 << 20,
                                   _ body: (Event) throws -> Void) throws {
        guard let f = gzopen(path, "rb") else {
            throw DataError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { gzclose(f) }
        gzbuffer(f, UInt32(blockSize))
        var buffer = [UInt8](repeating: 0, count: blockSize)
        var line: [UInt8] = []
        var lineNumber = 1, lineBytes = 0, overflow = false
        func endLine() throws {
            if overflow {
                try body(.tooLong(lineNumber, lineBytes))
            } else {
                if line.last == 0x0D { line.removeLast() }
                try body(.line(lineNumber, line))
            }
            line.removeAll(keepingCapacity: line.capacity <= 1 << 20)
            lineNumber += 1; lineBytes = 0; overflow = false
        }
        func take(_ part: UnsafeBufferPointer<UInt8>) {
            lineBytes += part.count
            if overflow { return }
            if lineBytes > maxBytes { overflow = true; line = []; return }
            line.append(contentsOf: part)
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32(blockSize)) }
            if n <= 0 {
                var code: Int32 = 0
                let message = gzerror(f, &code).map { String(cString: $0) } ?? ""
                if n < 0 || (code != Z_OK && code != Z_STREAM_END) {
                    // The partial last line is part of the loss.
                    try body(.truncated(lineNumber, message.isEmpty ? "zlib error \(code)" : message))
                    return
                }
                break
            }
            try buffer.withUnsafeBufferPointer { b in
                var start = 0
                let count = Int(n)
                while start < count {
                    let rest = UnsafeRawPointer(b.baseAddress! + start)
                    if let nl = memchr(rest, 0x0A, count - start) {
                        let end = rest.distance(to: UnsafeRawPointer(nl)) + start
                        take(UnsafeBufferPointer(rebasing: b[start..<end]))
                        try endLine()
                        start = end + 1
                    } else {
                        take(UnsafeBufferPointer(rebasing: b[start..<count]))
                        start = count
                    }
                }
            }
        }
        if lineBytes > 0 { try endLine() }
    }
}
