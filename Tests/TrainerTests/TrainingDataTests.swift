import XCTest
@testable import Evaluation
@testable import Model
@testable import Rollout
@testable import Trainer

/// The built-in tasks through the data path (issue 13) give the chunks the old code gave, and
/// the data fields of the configuration read, print and check.
final class TrainingDataTests: XCTestCase {
    /// `code`: the stdlib directory through the reader, packer and token cache equals
    /// `StdlibCorpus` + `Packing.pack` (the code before issue 13); `qa-code` and `translation`
    /// equal packing question + answer token lists.
    func testBuiltInTasksPackExactlyAsBefore() throws {
        let tok = try BPETokenizer(gguf: GGUFFile(path: try ModelLocator.defaultGGUF()))
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-tdt-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let P = 64, pad = tok.pad ?? tok.eos
        for task in ["code", "qa-code", "translation"] {
            var c = try TrainConfig.preset("small")
            c.task = task
            c.chunkLength = P
            c.dataCache = cache
            let (train, validation, _) = try RunContext.chunks(config: c, tokenizer: tok)
            let old: (train: [Chunk], validation: [Chunk])
            switch task {
            case "code":
                let corpus = try StdlibCorpus(root: c.corpusRoot, validationFraction: c.validationFraction)
                old = (corpus.chunks(.train, encoder: tok, chunkLength: P, pad: pad, remainder: .drop).chunks,
                       corpus.chunks(.validation, encoder: tok, chunkLength: P, pad: pad, remainder: .drop).chunks)
            default:
                let split = task == "qa-code" ? try QACodePairs.load(root: c.corpusRoot, options: c.qaCodeOptions)
                                              : try TranslationPairs.load(options: c.translationOptions)
                func pack(_ pairs: [QAPair]) -> [Chunk] {
                    Packing.pack(documents: pairs.map { tok.encode($0.question) + tok.encode($0.answer) }, chunkLength: P,
                                 eos: tok.eos, pad: pad, remainder: .drop)
                }
                old = (pack(split.train), pack(split.test))
            }
            XCTAssertGreaterThan(old.train.count, 100, task)
            XCTAssertEqual(train.map(\.tokens), old.train.map(\.tokens), task)
            XCTAssertEqual(validation.map(\.tokens), old.validation.map(\.tokens), task)
        }
    }

    func testDataFieldsReadFromYAMLAndOverrides() throws {
        var c = try TrainConfig.load(yamlText: "data:\n  - a.jsonl:0.3\n  - /d/b\ndata-format: pair\ninput-key: q\n",
                                     source: "t.yaml", over: TrainConfig.preset("small"))
        XCTAssertEqual(c.data, ["a.jsonl:0.3", "/d/b"])
        XCTAssertEqual(c.dataFormat, "pair")
        XCTAssertEqual(c.inputKey, "q")
        XCTAssertThrowsError(try c.validate(), "task code with data paths") { e in
            XCTAssertTrue("\(e)".contains("task must be data"), "\(e)")
        }
        c.task = "data"
        XCTAssertNoThrow(try c.validate())
        // The printed configuration reads back to the same one.
        XCTAssertEqual(try TrainConfig.load(yamlText: try c.yaml(), source: "printed"), c)
        try c.apply(override: "data=x.jsonl, y.jsonl.gz:2")
        XCTAssertEqual(c.data, ["x.jsonl", "y.jsonl.gz:2"])
        try c.apply(override: "validation-data=v.jsonl")
        try c.apply(override: "eval-data=e.jsonl")
        XCTAssertEqual(c.validationData, "v.jsonl")
        XCTAssertEqual(c.evalData, "e.jsonl")
        var builtIn = c
        builtIn.data = []; builtIn.task = "code"
        XCTAssertThrowsError(try builtIn.validate()) { XCTAssertTrue("\($0)".contains("validation-data"), "\($0)") }
        try c.apply(override: "eval-data=null")
        XCTAssertNil(c.evalData)
        for (o, field) in [("data=a:0", "data"), ("data-format=csv", "data-format"), ("max-bad-fraction=1", "max-bad-fraction")] {
            var d = c
            try d.apply(override: o)
            XCTAssertThrowsError(try d.validate(), o) { XCTAssertTrue("\($0)".contains(field), "\($0)") }
        }
        try c.apply(override: "data=")
        XCTAssertEqual(c.data, [])
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--data"), "\($0)") }
    }

    /// eval-data files: each kind, bad records counted, a mixed file's minority kind bad.
    func testEvalSetReadsBothKinds() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-evalset-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func file(_ name: String, _ lines: [String]) throws -> String {
            try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
            return dir + "/" + name
        }
        let t = try file("t.jsonl", [
            #"{"task_id": "x/0", "prompt": "def f():\n", "test": "def check(c): pass", "entry_point": "f"}"#,
            #"{"prompt": "def g():\n", "test": "def check(c): pass", "entry_point": "g"}"#,
        ])
        let set = try EvalSet.load(path: t)
        guard case .tests(let p) = set else { return XCTFail("\(set)") }
        XCTAssertEqual(p.map(\.taskID), ["x/0", "line 2"])
        XCTAssertEqual(p[1].entryPoint, "g")
        let r = try file("r.jsonl", [#"{"prompt": "a", "reference": "b"}"#, #"{"prompt": "c", "reference": "d\ne"}"#])
        XCTAssertEqual(try EvalSet.load(path: r), .reference(prompts: ["a", "c"], references: ["b", "d\ne"], oneLine: false))
        let mixed = try file("m.jsonl", [#"{"prompt": "a", "reference": "b"}"#, #"{"prompt": "a", "test": "t", "entry_point": "f"}"#,
                                         "junk"])
        XCTAssertThrowsError(try EvalSet.load(path: mixed)) { e in
            XCTAssertTrue("\(e)".contains("2 of 3 records are bad"), "\(e)")
            XCTAssertTrue("\(e)".contains(mixed + ":2: a tests record in a file of reference records"), "\(e)")
        }
        XCTAssertEqual(try EvalSet.load(path: mixed, maxBadFraction: 0.9).count, 1)
    }
}
