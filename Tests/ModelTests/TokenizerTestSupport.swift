import Foundation
import XCTest
@testable import Model

/// Shared fixtures for the tokenizer tests: the SmolLM2 vocabulary (extracted from the GGUF with
/// the Python `gguf` package) and an independent reference tokenizer (HF `tokenizers`, built from
/// the same vocabulary and merges) run through python3.
enum TokenizerFixture {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The package root, derived from this file's path (Tests/ModelTests/<file>).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `EBFT_MODEL`, else `assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` under the package root.
    static var modelPath: String {
        if let p = ProcessInfo.processInfo.environment["EBFT_MODEL"], !p.isEmpty { return p }
        return packageRoot.appendingPathComponent("assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }

    static let workDir: URL = {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("ebft-tokenizer-tests-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    struct VocabFile: Decodable {
        let tokens: [String]
        let merges: [String]
        let token_type: [Int]
        let bos: Int?
        let eos: Int
        let pad: Int?
    }

    static let extractScript = """
    import json, sys
    from gguf import GGUFReader
    r = GGUFReader(sys.argv[1])
    f = r.fields
    def strs(k): return [bytes(f[k].parts[i]).decode("utf-8") for i in f[k].data]
    def ints(k): return [int(f[k].parts[i][0]) for i in f[k].data]
    def one(k): return int(f[k].parts[f[k].data[0]][0]) if k in f else None
    out = {"tokens": strs("tokenizer.ggml.tokens"), "merges": strs("tokenizer.ggml.merges"),
           "token_type": ints("tokenizer.ggml.token_type"), "bos": one("tokenizer.ggml.bos_token_id"),
           "eos": one("tokenizer.ggml.eos_token_id"), "pad": one("tokenizer.ggml.padding_token_id")}
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False)
    """

    /// Requests: {"op": "encode", "text", "special"} | {"op": "pretokenize", "text"} |
    /// {"op": "decode", "ids"}; answers one JSON value per request.
    static let referenceScript = """
    import json, sys
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, AddedToken
    v = json.load(open(sys.argv[1], encoding="utf-8"))
    def build(special):
        vocab = {t: i for i, t in enumerate(v["tokens"])}
        merges = [tuple(m.split(" ")) for m in v["merges"]]
        tok = Tokenizer(models.BPE(vocab, merges))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        tok.decoder = decoders.ByteLevel()
        if special:
            tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                for t, ty in zip(v["tokens"], v["token_type"]) if ty in (3, 4)])
        return tok
    plain, special = build(False), build(True)
    reqs = json.load(open(sys.argv[2], encoding="utf-8"))
    out = []
    for r in reqs:
        op = r["op"]
        if op == "encode":
            tok = special if r.get("special") else plain
            out.append(tok.encode(r["text"], add_special_tokens=False).ids)
        elif op == "pretokenize":
            out.append([p for p, _ in plain.pre_tokenizer.pre_tokenize_str(r["text"])])
        elif op == "decode":
            out.append(special.decode(r["ids"], skip_special_tokens=False))
        elif op == "classes":
            # The pre-tokeniser class of each scalar, read off how the reference splits
            # "x"+c+c+"." and "x"+c+c: 0 letter, 1 number, 3 whitespace, 4 other, 8 unclear.
            pt = plain.pre_tokenizer
            ks = []
            for v in r["scalars"]:
                c = chr(v)
                p1 = [p for p, _ in pt.pre_tokenize_str("x" + c + c + ".")]
                p2 = [p for p, _ in pt.pre_tokenize_str("x" + c + c)]
                if len(p1) == 2 and p1[1] == ".": ks.append(0)
                elif len(p1) == 4 and len(p2) == 3: ks.append(1)
                elif len(p1) == 4 and len(p2) == 2: ks.append(3)
                elif len(p1) == 2: ks.append(4)
                else: ks.append(8)
            out.append(ks)
        else:
            raise SystemExit("unknown op " + op)
    with open(sys.argv[3], "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    """

    /// Runs `python3 <script> args...`; throws with stderr when it fails.
    static func runPython(_ script: String, name: String, args: [String]) throws {
        let scriptURL = workDir.appendingPathComponent(name)
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proc.arguments = ["python3", scriptURL.path] + args
        let errPipe = Pipe()
        proc.standardError = errPipe
        proc.standardOutput = FileHandle.nullDevice
        try proc.run()
        let err = errPipe.fileHandleForReading.readDataToEndOfFile()
        proc.waitUntilExit()
        guard proc.terminationStatus == 0 else {
            throw Failure(description: "python3 \(name) failed (status \(proc.terminationStatus)); "
                + "the tests need python3 with gguf, numpy and tokenizers (make deps):\n"
                + String(decoding: err, as: UTF8.self))
        }
    }

    /// The vocabulary JSON (extracted once per test process).
    static let vocabJSON: Result<URL, Error> = Result {
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw Failure(description: "model not found at \(modelPath); run `make deps` (or set EBFT_MODEL)")
        }
        let out = workDir.appendingPathComponent("vocab.json")
        try runPython(extractScript, name: "extract_vocab.py", args: [modelPath, out.path])
        return out
    }

    static let vocab: Result<VocabFile, Error> = Result {
        let data = try Data(contentsOf: try vocabJSON.get())
        return try JSONDecoder().decode(VocabFile.self, from: data)
    }

    static let tokenizer: Result<BPETokenizer, Error> = Result {
        let v = try vocab.get()
        return try BPETokenizer(tokens: v.tokens, merges: v.merges, tokenTypes: v.token_type,
                                bos: v.bos, eos: v.eos, pad: v.pad)
    }

    enum Request: Encodable {
        case encode(String, special: Bool)
        case pretokenize(String)
        case decode([Int32])
        case classes([UInt32])

        enum Key: String, CodingKey { case op, text, special, ids, scalars }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            switch self {
            case .encode(let t, let s):
                try c.encode("encode", forKey: .op); try c.encode(t, forKey: .text); try c.encode(s, forKey: .special)
            case .pretokenize(let t):
                try c.encode("pretokenize", forKey: .op); try c.encode(t, forKey: .text)
            case .decode(let ids):
                try c.encode("decode", forKey: .op); try c.encode(ids, forKey: .ids)
            case .classes(let scalars):
                try c.encode("classes", forKey: .op); try c.encode(scalars, forKey: .scalars)
            }
        }
    }

    private static func reference<T: Decodable>(_ requests: [Request], as: T.Type) throws -> [T] {
        let tag = UUID().uuidString
        let req = workDir.appendingPathComponent("req-\(tag).json")
        let out = workDir.appendingPathComponent("out-\(tag).json")
        defer {
            try? FileManager.default.removeItem(at: req)
            try? FileManager.default.removeItem(at: out)
        }
        try JSONEncoder().encode(requests).write(to: req)
        try runPython(referenceScript, name: "reference_tokenizer.py", args: [try vocabJSON.get().path, req.path, out.path])
        let answers = try JSONDecoder().decode([T].self, from: Data(contentsOf: out))
        guard answers.count == requests.count else {
            throw Failure(description: "reference answered \(answers.count) of \(requests.count) requests")
        }
        return answers
    }

    /// Reference token ids for each text (one python3 run for the whole batch).
    static func referenceEncode(_ texts: [String], special: Bool = false) throws -> [[Int32]] {
        try reference(texts.map { .encode($0, special: special) }, as: [Int32].self)
    }

    /// Reference pre-tokenisation pieces (in byte-level spelling) for each text.
    static func referencePreTokenize(_ texts: [String]) throws -> [[String]] {
        try reference(texts.map { .pretokenize($0) }, as: [String].self)
    }

    /// Reference decoded text for each id sequence.
    static func referenceDecode(_ seqs: [[Int32]]) throws -> [String] {
        try reference(seqs.map { .decode($0) }, as: String.self)
    }

    /// The reference's pre-tokeniser class of each scalar (0 letter, 1 number, 3 whitespace,
    /// 4 other), as `ScalarClass` raw values.
    static func referenceClasses(_ scalars: [UInt32]) throws -> [UInt8] {
        try reference([.classes(scalars)], as: [UInt8].self)[0]
    }

    /// Python stdlib sources (`libpython3.11-stdlib`), sorted by path.
    static func stdlibFiles() throws -> [URL] {
        let dir = URL(fileURLWithPath: "/usr/lib/python3.11")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else {
            throw Failure(description: "/usr/lib/python3.11 is missing; install libpython3.11-stdlib (make deps)")
        }
        let files = names.filter { $0.hasSuffix(".py") }.sorted().map { dir.appendingPathComponent($0) }
        guard files.count >= 50 else { throw Failure(description: "only \(files.count) .py files in \(dir.path)") }
        return files
    }

    static func readText(_ url: URL) throws -> String {
        String(decoding: try Data(contentsOf: url), as: UTF8.self)
    }
}

/// First position where two sequences differ, with a little context, for failure messages.
func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> String {
    let n = min(a.count, b.count)
    var i = 0
    while i < n && a[i] == b[i] { i += 1 }
    if i == n && a.count == b.count { return "equal" }
    let lo = max(0, i - 3)
    return "differ at \(i) (counts \(a.count) vs \(b.count)): \(a[lo..<min(a.count, i + 5)]) vs \(b[lo..<min(b.count, i + 5)])"
}
