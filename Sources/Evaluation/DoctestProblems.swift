// Verifiable Q&A code problems for the RLVR baseline (issue 6): the stdlib functions of the
// qa-code task whose docstrings carry doctest examples (`>>> …`). The examples are the unit
// tests: a completion passes when every example of the function's *original* docstring gives
// the documented output with the completion's function in place of the original.
//
// A problem is a HumanEvalProblem, so program building, the sandbox and pass@k are shared:
//   prompt  = a one-line header that imports the function's module and copies its globals
//             (private helpers, constants, imports) into the program's namespace, and keeps the
//             original docstring, followed by the question (signature + docstring) exactly as
//             in the qa-code pairs;
//   tests   = `check(candidate)`: runs the original docstring's examples with the program's
//             globals (where the name now means the candidate) and asserts none failed.
// `modelPrompt` is what the model sees: the question alone, as in training.
//
// Only problems that are sound are kept (`keepSound`): the canonical body passes in the
// sandbox, and a body that raises fails (so the examples really exercise the function, not a
// module-qualified copy of the original).
import Foundation

public struct DoctestProblem: Sendable, Equatable {
    public var problem: HumanEvalProblem
    /// The qa-code question (signature + docstring stub) the model is prompted with.
    public var modelPrompt: String
    /// Dotted module name (`statistics`, `http.cookiejar`).
    public var module: String
}

public enum DoctestProblems {
    /// Every top-level function below `root` with `>>>` in its docstring, split like the
    /// qa-code pairs (by the question's hash, `options.testFraction`), deduplicated by question,
    /// HumanEval entry points and `options.excludedNames` excluded. Not yet checked: see
    /// `keepSound`.
    public static func load(root: String = QACodePairs.defaultRoot,
                            options: QACodePairs.Options = QACodePairs.Options()) throws -> (train: [DoctestProblem], test: [DoctestProblem]) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw TaskDataError.missing(path: root, hint: "install the apt package libpython3.11-stdlib (scripts/install-deps.sh)")
        }
        var excluded = options.excludedNames
        if options.excludeHumanEvalEntryPoints { excluded.formUnion(try QACodePairs.humanEvalEntryPoints()) }
        var train: [DoctestProblem] = [], test: [DoctestProblem] = []
        var seen = Set<String>()
        let threshold = UInt64((options.testFraction * 1_000_000).rounded())
        let base = root.hasSuffix("/") ? root : root + "/"
        for file in try QACodePairs.pythonFiles(under: root) {
            guard let source = try? String(contentsOfFile: file, encoding: .utf8),
                  let module = moduleName(relativePath: String(file.dropFirst(base.count))) else { continue }
            for f in QACodePairs.extractFunctions(source: source) where f.question.contains(">>>") {
                guard !excluded.contains(f.name), f.question.count <= options.maxQuestionChars,
                      f.answer.count <= options.maxAnswerChars, seen.insert(f.question).inserted else { continue }
                let p = DoctestProblem(problem: problem(module: module, function: f), modelPrompt: f.question, module: module)
                if fnv1a64(f.question) % 1_000_000 < threshold { test.append(p) } else { train.append(p) }
            }
        }
        return (train, test)
    }

    /// `a/b/c.py` → `a.b.c`; `a/__init__.py` → `a`; nil for names that are not importable.
    public static func moduleName(relativePath rel: String) -> String? {
        guard rel.hasSuffix(".py") else { return nil }
        var parts = rel.dropLast(3).split(separator: "/").map(String.init)
        if parts.last == "__init__" { parts.removeLast() }
        guard !parts.isEmpty, parts.allSatisfy({ p in
            !p.isEmpty && !p.first!.isNumber && p.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
        }) else { return nil }
        return parts.joined(separator: ".")
    }

    /// The problem for one extracted function of `module`.
    public static func problem(module: String, function f: QACodePairs.Function) -> HumanEvalProblem {
        let header = "import importlib as _il; _m = _il.import_module(\(pythonString(module))); "
            + "globals().update({_k: _v for _k, _v in vars(_m).items() if not (_k.startswith('__') and _k.endswith('__'))}); "
            + "_original_doc = getattr(_m, \(pythonString(f.name))).__doc__\n"
        let test = """
            def check(candidate):
                import doctest
                t = doctest.DocTestParser().get_doctest(_original_doc or '', dict(globals()), \(pythonString(f.name)), None, 0)
                runner = doctest.DocTestRunner(verbose=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
                runner.run(t, out=lambda s: None)
                failed, attempted = runner.summarize(verbose=False)
                assert attempted > 0, 'no doctest example ran'
                assert failed == 0, '%d of %d doctest examples failed' % (failed, attempted)

            """
        return HumanEvalProblem(taskID: "stdlib/\(module).\(f.name)", prompt: header + f.question,
                                canonicalSolution: f.answer, test: test, entryPoint: f.name)
    }

    /// The problems whose canonical body passes and whose raising body fails, in order.
    public static func keepSound(_ problems: [DoctestProblem], sandbox: Sandbox) -> [DoctestProblem] {
        var jobs: [(program: String, tests: String)] = []
        for p in problems {
            jobs.append(HumanEval.program(for: p.problem, completion: p.problem.canonicalSolution))
            jobs.append(HumanEval.program(for: p.problem, completion: "    raise NotImplementedError\n"))
        }
        let r = sandbox.runAll(jobs)
        return problems.enumerated().filter { r[2 * $0.offset].passed && !r[2 * $0.offset + 1].passed }.map(\.element)
    }

    /// A Python string literal for `s` (ASCII names only reach here; escaped defensively).
    static func pythonString(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
