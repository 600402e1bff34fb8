import Foundation
import XCTest
@testable import Model
@testable import Trainer

/// Issue 12: a run on a Hugging Face model directory tokenised everything with SmolLM2's GGUF
/// vocabulary, whatever the directory's own tokenizer.json said. The run must read the
/// directory's tokenizer (here a Qwen2-style tokenizer.json trained by the `tokenizers` library,
/// Tests/reference/tokenizer_families.py) and agree with the library on its ids.
final class ModelTokenizerTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func python(_ args: [String]) throws {
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proc.arguments = ["python3", Self.root.appendingPathComponent("Tests/reference/tokenizer_families.py").path] + args
        let err = Pipe()
        proc.standardError = err
        proc.standardOutput = FileHandle.nullDevice
        try proc.run()
        let text = err.fileHandleForReading.readDataToEndOfFile()
        proc.waitUntilExit()
        XCTAssertEqual(proc.terminationStatus, 0, String(decoding: text, as: UTF8.self))
    }

    func testHuggingFaceDirectoryIsTokenisedWithItsOwnTokenizer() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-model-tokenizer-\(getpid())")
        defer { try? FileManager.default.removeItem(at: work) }
        try python(["build", work.appendingPathComponent("families").path])
        let dir = work.appendingPathComponent("qwen2-model").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            try FileManager.default.copyItem(atPath: work.appendingPathComponent("families/qwen2/" + f).path,
                                             toPath: dir + "/" + f)
        }
        // The tokenizer's size read off the file (model vocabulary + added tokens); the model
        // gets more rows than tokens, as Qwen2's padded embedding has.
        let file = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: dir + "/tokenizer.json"))) as? [String: Any])
        let vocab = try XCTUnwrap((file["model"] as? [String: Any])?["vocab"] as? [String: Any]).count
            + (try XCTUnwrap(file["added_tokens"] as? [Any])).count
        let store = try RunContext.randomModel("random:dim=16,layers=1,heads=2,kv-heads=1,ffn=24,seed=1", vocab: vocab + 64)
        try store.saveHF(directory: dir)

        // A small code corpus.
        let corpus = work.appendingPathComponent("corpus").path
        try FileManager.default.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        for name in ["abc.py", "bisect.py", "colorsys.py", "copy.py", "fnmatch.py", "heapq.py", "keyword.py",
                     "numbers.py", "shlex.py", "string.py", "textwrap.py", "this.py"] {
            try FileManager.default.copyItem(atPath: "/usr/lib/python3.11/" + name, toPath: corpus + "/" + name)
        }
        var c = TrainConfig()
        c.model = dir
        c.corpusRoot = corpus
        c.validationFraction = 0.5
        c.chunkLength = 64
        c.evalChunks = 4
        let ctx = try RunContext(config: c, loadCritic: false)
        XCTAssertEqual(ctx.tokenizer.vocabSize, vocab, "the directory's tokenizer.json, not SmolLM2's vocabulary")

        let texts = ["def f(x):\n    return x ** 2  # square\n", "naïve café, 12345 — Grüße! <|im_start|>",
                     try String(contentsOfFile: corpus + "/textwrap.py", encoding: .utf8)]
        let requests = texts.map { ["op": "encode", "text": $0, "special": false] as [String: Any] }
        let req = work.appendingPathComponent("req.json"), out = work.appendingPathComponent("out.json")
        try JSONSerialization.data(withJSONObject: requests).write(to: req)
        try python(["run", dir + "/tokenizer.json", req.path, out.path])
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [[Int]])
        for (text, ref) in zip(texts, expected) {
            XCTAssertEqual(ctx.tokenizer.encode(text, allowSpecial: false).map(Int.init), ref, String(text.prefix(60)))
        }
        // The EOS that joins documents is the directory's (<|im_end|> from tokenizer_config.json).
        XCTAssertEqual(ctx.tokenizer.token(ctx.tokenizer.eos), "<|im_end|>")
    }
}
