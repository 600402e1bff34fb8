import XCTest
import Foundation
@testable import Evaluation

final class HumanEvalTests: XCTestCase {
    static let toy = HumanEvalProblem(
        taskID: "Toy/0",
        prompt: "import math\n\n\ndef helper(x):\n    return x\n\n\ndef add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\n    >>> add(1, 2)\n    3\n    \"\"\"\n",
        canonicalSolution: "    return a + b\n",
        test: "\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
        entryPoint: "add")

    func testLoadsAll164Problems() throws {
        let problems = try HumanEval.load()
        XCTAssertEqual(problems.count, HumanEval.problemCount)
        XCTAssertEqual(problems.map(\.taskID), (0..<164).map { "HumanEval/\($0)" })
        for p in problems {
            XCTAssertFalse(p.entryPoint.isEmpty)
            XCTAssertTrue(p.prompt.contains("def \(p.entryPoint)("), p.taskID)
            XCTAssertTrue(p.test.contains("def check("), p.taskID)
        }
        XCTAssertEqual(problems[0].entryPoint, "has_close_elements")
    }

    func testLoadErrors() throws {
        XCTAssertThrowsError(try HumanEval.load(path: "/nonexistent/HumanEval.jsonl.gz")) {
            XCTAssertEqual($0 as? HumanEvalError, .fileNotFound("/nonexistent/HumanEval.jsonl.gz"))
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("he-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.jsonl")
        try "{\"task_id\": \"x\"}\n".write(to: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HumanEval.load(path: bad.path)) { e in
            guard case HumanEvalError.malformedLine(_, 1, _) = e else { return XCTFail("\(e)") }
        }
        let good = dir.appendingPathComponent("good.jsonl")
        let line = String(decoding: try JSONEncoder().encode(Self.toy), as: UTF8.self)
        try (line + "\n\n").write(to: good, atomically: true, encoding: .utf8)
        XCTAssertEqual(try HumanEval.load(path: good.path), [Self.toy])
        let empty = dir.appendingPathComponent("empty.jsonl")
        try "\n".write(to: empty, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HumanEval.load(path: empty.path))
    }

    func testBodyCompletionIsCutWhereTheFunctionEnds() {
        let c = "    return a + b\n\n\ndef other():\n    pass\n"
        XCTAssertEqual(HumanEval.truncateBody(c), "    return a + b\n\n")
        for stop in ["print(add(1, 2))", "if __name__ == '__main__':", "# Test", "assert add(1,2)==3", "class X:", "```", "Explanation: it adds"] {
            XCTAssertEqual(HumanEval.truncateBody("    s = a\n    return s + b\n" + stop + "\n    more\n"), "    s = a\n    return s + b", stop)
        }
        // Indentation repair for a body that lost its indentation.
        XCTAssertEqual(HumanEval.truncateBody("s = a + b\nreturn s\n\nprint(add(1, 2))"), "    s = a + b\n    return s\n")
        let (prog, tests) = HumanEval.program(for: Self.toy, completion: c)
        XCTAssertEqual(prog, Self.toy.prompt + "    return a + b\n\n\n")
        XCTAssertEqual(tests, Self.toy.test + "\n\ncheck(add)\n")
    }

    func testRedefinitionKeepsPreambleAndCutsDemoCode() {
        let c = "```python\nimport os\n\ndef add(a, b):\n    return a + b\n\ndef unused():\n    return 1\n\nprint(add(1, 2))\n```\nThis adds."
        let (prog, _) = HumanEval.program(for: Self.toy, completion: c)
        XCTAssertEqual(prog, "import math\n\n\ndef helper(x):\n    return x\n\n\n" + "import os\n\ndef add(a, b):\n    return a + b\n\ndef unused():\n    return 1\n\n")
        XCTAssertEqual(HumanEval.preamble(of: Self.toy), "import math\n\n\ndef helper(x):\n    return x\n\n\n")
    }

    func testToyProgramsThroughTheSandbox() throws {
        let base = try SandboxFixture.makeBase()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let sb = try SandboxFixture.sandbox(base: base)
        let report = try HumanEval.evaluate(
            problems: [Self.toy, Self.toy],
            completions: [["    return a + b\n", "    return a - b\n", "def add(a, b):\n    return b + a\n", "    return (\n"],
                          ["    while True:\n        pass\n"]],
            sandbox: sb)
        XCTAssertEqual(report.problems[0].passed, [true, false, true, false])
        XCTAssertEqual(report.problems[0].results.map(\.outcome), [.passed, .failed(.assertion), .passed, .failed(.syntax)])
        XCTAssertEqual(report.problems[1].results[0].outcome, .failed(.timeout))
        XCTAssertEqual(try report.passAtK(1), (0.5 + 0) / 2, accuracy: 1e-12)
        XCTAssertEqual(report.anyCorrect, 0.5)
        XCTAssertEqual(report.failureCounts, [.assertion: 1, .syntax: 1, .timeout: 1])
        XCTAssertThrowsError(try HumanEval.evaluate(problems: [Self.toy], completions: [], sandbox: sb))
    }

    /// Issue 6 Done-when: all 164 canonical solutions pass through our harness (pass@1 = 1.0),
    /// and wrong solutions fail.
    func testCanonicalSolutionsAllPass() throws {
        let problems = try HumanEval.load()
        let base = try SandboxFixture.makeBase()
        defer { try? FileManager.default.removeItem(atPath: base) }
        guard getuid() == 0 else { throw XCTSkip("sandbox needs root") }
        // A generous wall limit: this checks the harness, not speed, and the machine is shared.
        let sb = try Sandbox(configuration: SandboxConfiguration(limits: SandboxLimits(wallSeconds: 10, cpuSeconds: 10),
                                                                 baseDirectory: base, concurrency: 2,
                                                                 uidBase: SandboxFixture.uidBase))
        let t0 = Date()
        // One canonical sample per problem, and for the first 8 problems a wrong one.
        let completions = problems.enumerated().map { i, p in
            i < 8 ? [p.canonicalSolution, "    return None\n"] : [p.canonicalSolution]
        }
        let report = try HumanEval.evaluate(problems: problems, completions: completions, sandbox: sb)
        let canonical = HumanEvalReport(problems: report.problems.map { .init(taskID: $0.taskID, results: [$0.results[0]]) })
        for p in canonical.problems where !p.results[0].passed {
            XCTFail("\(p.taskID): \(p.results[0].outcome)\n\(p.results[0].stderr.suffix(800))")
        }
        XCTAssertEqual(try canonical.passAtK(1), 1.0)
        for p in report.problems.prefix(8) {
            XCTAssertFalse(p.results[1].passed, "\(p.taskID): `return None` must fail")
        }
        let slowest = report.problems.max { $0.results[0].wallSeconds < $1.results[0].wallSeconds }!
        print("HumanEval canonical: \(report.problems.count) problems in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s;"
              + " slowest \(slowest.taskID) \(String(format: "%.2f", slowest.results[0].wallSeconds)) s")
    }
}
