import Foundation

// The integrity layer of a training checkpoint directory (written by Learner's `Checkpoint`):
//
//   state.json          lists every other file of the checkpoint with its size and XXH64
//                       ("files": [{"name", "bytes", "xxh64"}], besides counters and config)
//   state.json.xxh64    "<16 hex digits>  state.json\n": the XXH64 of state.json itself (format
//                       version ≥ 2; `xxh64sum -c state.json.xxh64` checks it too)
//
// So every byte of a checkpoint is covered by a checksum. It lives in Model so that every reader
// verifies the same way: resuming (`Checkpoint.load`) and using a checkpoint as a model
// (`ParameterStore.loadHF`, hence `ModelSource.load`: `--set model=`, `score`, `eval`, `export`).
// A directory without state.json is a plain Hugging Face model directory and is not checked.

/// Everything that can go wrong saving, finding, verifying or loading a checkpoint. Descriptions
/// name the file and, for damaged checkpoints, what to use instead.
public enum CheckpointError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var errorDescription: String? { description }

    case noCheckpoint(path: String, reason: String)
    case missingFile(path: String, hint: String)
    case truncated(path: String, expectedBytes: Int, foundBytes: Int, hint: String)
    case checksumMismatch(path: String, expected: String, found: String, hint: String)
    case badState(path: String, problem: String, hint: String)
    case mismatch(path: String, problem: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        func tail(_ hint: String) -> String { hint.isEmpty ? "" : " " + hint }
        switch self {
        case let .noCheckpoint(path, reason): return "\(path): no checkpoint to resume from: \(reason)"
        case let .missingFile(path, hint): return "\(path): checkpoint file is missing.\(tail(hint))"
        case let .truncated(path, e, f, hint):
            return "\(path): checkpoint file has \(f) bytes but state.json records \(e) (\(f < e ? "truncated" : "changed")).\(tail(hint))"
        case let .checksumMismatch(path, e, f, hint):
            return "\(path): checksum mismatch (xxh64 \(f), the checkpoint records \(e)): the file is corrupted or was edited.\(tail(hint))"
        case let .badState(path, problem, hint): return "\(path): invalid checkpoint state: \(problem).\(tail(hint))"
        case let .mismatch(path, problem): return "\(path): checkpoint does not fit this run: \(problem)"
        case let .writeFailed(path, reason): return "\(path): cannot write checkpoint: \(reason)"
        }
    }
}

public enum CheckpointFiles {
    public static let stateFile = "state.json"
    /// The XXH64 of state.json, in `xxh64sum` format.
    public static let stateChecksumFile = "state.json.xxh64"
    /// The first checkpoint format version with `stateChecksumFile`; older checkpoints are read
    /// with a warning that their state.json is unverified.
    public static let checksummedStateVersion = 2

    /// One file of a checkpoint as state.json records it.
    public struct Entry: Codable, Equatable, Sendable {
        public var name: String
        public var bytes: Int
        /// 16 hex digits, XXH64 with seed 0 of the whole file.
        public var xxh64: String

        public init(name: String, bytes: Int, xxh64: String) {
            self.name = name
            self.bytes = bytes
            self.xxh64 = xxh64
        }
    }

    /// A directory with state.json is a training checkpoint (a plain HF directory has none).
    public static func isCheckpoint(_ dir: String) -> Bool {
        FileManager.default.fileExists(atPath: dir + "/" + stateFile)
    }

    /// The contents of `state.json.xxh64` for state.json's bytes.
    public static func stateChecksumLine(_ state: [UInt8]) -> String {
        XXH64.hex(XXH64.hash(state)) + "  " + stateFile + "\n"
    }

    /// state.json's bytes, checked against state.json.xxh64. Without that file the checkpoint
    /// must be older than `checksummedStateVersion`; then the bytes come with a warning that
    /// they are unverified. Nothing here parses more of state.json than its format version.
    public static func verifiedState(_ dir: String, hint: () -> String) throws -> (data: Data, warning: String?) {
        let path = dir + "/" + stateFile
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.missingFile(path: path, hint: hint())
        }
        let sumPath = dir + "/" + stateChecksumFile
        guard let line = FileManager.default.contents(atPath: sumPath) else {
            struct Version: Decodable { var formatVersion: Int }
            let version: Int
            do { version = try decoder().decode(Version.self, from: data).formatVersion } catch {
                throw CheckpointError.badState(path: path, problem: "cannot parse (\(error))", hint: hint())
            }
            if version >= checksummedStateVersion {
                throw CheckpointError.missingFile(path: sumPath, hint: hint())
            }
            return (data, "\(path): checkpoint format version \(version) has no \(stateChecksumFile): its step counters, "
                          + "seed and configuration are unverified (the other files are checked against it)")
        }
        let fields = String(decoding: line, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, fields[0].count == 16, fields[0].allSatisfy(\.isHexDigit), fields[1] == stateFile else {
            throw CheckpointError.badState(path: sumPath, problem: "expected '<16 hex digits>  \(stateFile)'", hint: hint())
        }
        let found = XXH64.hex(XXH64.hash([UInt8](data)))
        if found != fields[0].lowercased() {
            throw CheckpointError.checksumMismatch(path: path, expected: String(fields[0]), found: found, hint: hint())
        }
        return (data, nil)
    }

    /// Checks that every entry is a plain file name, and the size and XXH64 of each file (reads
    /// every byte).
    public static func verify(_ entries: [Entry], in dir: String, hint: () -> String) throws {
        let statePath = dir + "/" + stateFile
        if let e = entries.first(where: { !isPlainName($0.name) }) {
            throw CheckpointError.badState(path: statePath, problem: "file name '\(e.name)' is not a plain name", hint: hint())
        }
        for f in entries {
            let p = dir + "/" + f.name
            guard FileManager.default.fileExists(atPath: p) else {
                throw CheckpointError.missingFile(path: p, hint: hint())
            }
            let (bytes, h) = try XXH64.file(p)
            if bytes != f.bytes {
                throw CheckpointError.truncated(path: p, expectedBytes: f.bytes, foundBytes: bytes, hint: hint())
            }
            if XXH64.hex(h) != f.xxh64.lowercased() {
                throw CheckpointError.checksumMismatch(path: p, expected: f.xxh64, found: XXH64.hex(h), hint: hint())
            }
        }
    }

    /// Verifies a checkpoint read as a model: state.json against its checksum, then the size and
    /// XXH64 of every file it lists, which must include model.safetensors and config.json.
    /// Returns the warning of an older checkpoint whose state.json is not checksummed.
    @discardableResult
    public static func verifyModel(_ dir: String, required: [String] = [ParameterStore.hfWeightsFile, ParameterStore.hfConfigFile],
                                   hint: () -> String = { defaultHint }) throws -> String? {
        let (data, warning) = try verifiedState(dir, hint: hint)
        struct Listing: Decodable { var files: [Entry] }
        let statePath = dir + "/" + stateFile
        let files: [Entry]
        do { files = try decoder().decode(Listing.self, from: data).files } catch {
            throw CheckpointError.badState(path: statePath, problem: "cannot parse its file list (\(error))", hint: hint())
        }
        for f in required where !files.contains(where: { $0.name == f }) {
            throw CheckpointError.badState(path: statePath, problem: "no checksum entry for \(f)", hint: hint())
        }
        try verify(files, in: dir, hint: hint)
        return warning
    }

    /// What to do about a damaged checkpoint used as a model.
    public static let defaultHint = "Use another checkpoint of the run (an earlier step-* directory beside this one)."

    /// The default for warnings of loaders: one line on stderr.
    public static func printWarning(_ line: String) {
        FileHandle.standardError.write(Data(("warning: " + line + "\n").utf8))
    }

    /// Not empty, no "/", not starting with "." (a file directly inside the checkpoint).
    public static func isPlainName(_ n: String) -> Bool { !n.isEmpty && !n.contains("/") && !n.hasPrefix(".") }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}
