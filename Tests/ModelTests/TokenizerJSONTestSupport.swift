import Foundation
import XCTest
@testable import Model

/// Llama-3-style and Qwen2-style `tokenizer.json` files built and run by the `tokenizers`
/// library (Tests/reference/tokenizer_families.py), as the independent reference for
/// `BPETokenizer(tokenizerJSON:)`.
enum TokenizerFamilies {
    enum Family: String, CaseIterable {
        case llama3, qwen2
    }

    static let script = TokenizerFixture.packageRoot.appendingPathComponent("Tests/reference/tokenizer_families.py").path

    static let workDir: URL = {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("ebft-tokenizer-families-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Runs `python3 tokenizer_families.py args...`; throws with stderr when it fails.
    static func python(_ args: [String]) throws {
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proc.arguments = ["python3", script] + args
        let errPipe = Pipe()
        proc.standardError = errPipe
        proc.standardOutput = FileHandle.nullDevice
        try proc.run()
        let err = errPipe.fileHandleForReading.readDataToEndOfFile()
        proc.waitUntilExit()
        guard proc.terminationStatus == 0 else {
            throw TokenizerFixture.Failure(description: "python3 tokenizer_families.py \(args.first ?? "") failed "
                + "(status \(proc.terminationStatus)); the tests need python3 with tokenizers (make deps):\n"
                + String(decoding: err, as: UTF8.self))
        }
    }

    /// The directory holding `llama3/` and `qwen2/` (built once per test process).
    static let built: Result<URL, Error> = Result {
        let dir = workDir.appendingPathComponent("families")
        try python(["build", dir.path])
        return dir
    }

    static func directory(_ f: Family) throws -> String { try built.get().appendingPathComponent(f.rawValue).path }
    static func tokenizerJSON(_ f: Family) throws -> String { try directory(f) + "/tokenizer.json" }

    static func tokenizer(_ f: Family) throws -> BPETokenizer {
        try BPETokenizer(huggingFaceDirectory: try directory(f))
    }

    enum Request: Encodable {
        case encode(String, special: Bool)
        case decode([Int32])
        case pretokenize(String)
        case time([String], repeat: Int)

        enum Key: String, CodingKey { case op, text, special, ids, texts, `repeat` }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            switch self {
            case let .encode(t, s):
                try c.encode("encode", forKey: .op); try c.encode(t, forKey: .text); try c.encode(s, forKey: .special)
            case let .decode(ids):
                try c.encode("decode", forKey: .op); try c.encode(ids, forKey: .ids)
            case let .pretokenize(t):
                try c.encode("pretokenize", forKey: .op); try c.encode(t, forKey: .text)
            case let .time(texts, r):
                try c.encode("time", forKey: .op); try c.encode(texts, forKey: .texts); try c.encode(r, forKey: .repeat)
            }
        }
    }

    /// The library's answers for `requests` against `tokenizerJSON` (one python3 run).
    static func reference<T: Decodable>(_ tokenizerJSON: String, _ requests: [Request], as: T.Type) throws -> [T] {
        let tag = UUID().uuidString
        let req = workDir.appendingPathComponent("req-\(tag).json")
        let out = workDir.appendingPathComponent("out-\(tag).json")
        defer {
            try? FileManager.default.removeItem(at: req)
            try? FileManager.default.removeItem(at: out)
        }
        try JSONEncoder().encode(requests).write(to: req)
        try python(["run", tokenizerJSON, req.path, out.path])
        let answers = try JSONDecoder().decode([T].self, from: Data(contentsOf: out))
        guard answers.count == requests.count else {
            throw TokenizerFixture.Failure(description: "reference answered \(answers.count) of \(requests.count) requests")
        }
        return answers
    }

    static func referenceEncode(_ f: Family, _ texts: [String], special: Bool) throws -> [[Int32]] {
        try reference(try tokenizerJSON(f), texts.map { .encode($0, special: special) }, as: [Int32].self)
    }
}
