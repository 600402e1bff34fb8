import Evaluation
import Foundation
import Model
import Rollout

/// A user's downstream evaluation set (`eval-data`, issue 13): a JSONL(.gz) file whose records
/// are all of one kind, told by their keys:
///   * `tests` — `prompt`, `test`, `entry_point` (and optionally `task_id`,
///     `canonical_solution`): the HumanEval layout, scored by pass@1/pass@k in the sandbox;
///   * `reference` — `prompt`, `reference`: scored by corpus BLEU and chrF.
/// Records that are not JSON objects, lack a key, have a non-string value or are of the other
/// kind are skipped and counted as in training data (`max-bad-fraction`).
public enum EvalSet: Equatable {
    case tests([HumanEvalProblem])
    /// Prompts and references; `oneLine`: no reference spans lines, so a hypothesis ends at
    /// the first newline (as translation's do).
    case reference(prompts: [String], references: [String], oneLine: Bool)

    public var count: Int {
        switch self {
        case .tests(let p): return p.count
        case .reference(let p, _, _): return p.count
        }
    }

    public var kind: String {
        switch self {
        case .tests: return "tests"
        case .reference: return "reference"
        }
    }

    public static func load(path: String, maxBadFraction: Double = 0.01, log: (String) -> Void = { _ in }) throws -> EvalSet {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError.missing(path) }
        var stats = RecordStats()
        var problems: [HumanEvalProblem] = []
        var prompts: [String] = [], references: [String] = []
        var kind: String?
        try LineReader.forEachLine(path: path, maxBytes: RecordOptions().maxRecordBytes) { event in
            switch event {
            case let .line(n, bytes):
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
                let at = "\(path):\(n)"
                guard let o = try? JSONSerialization.jsonObject(with: Data(bytes)), let d = o as? [String: Any] else {
                    stats.bad(at, "not a JSON object"); return
                }
                let k = d["test"] != nil || d["entry_point"] != nil ? "tests" : d["reference"] != nil ? "reference" : nil
                guard let k else { stats.bad(at, "has neither 'test'+'entry_point' (tests) nor 'reference'"); return }
                if let kind, kind != k { stats.bad(at, "a \(k) record in a file of \(kind) records"); return }
                let keys = k == "tests" ? ["prompt", "test", "entry_point"] : ["prompt", "reference"]
                var v: [String: String] = [:]
                for key in keys {
                    guard let s = d[key] as? String else {
                        stats.bad(at, d[key] == nil ? "lacks the key '\(key)'" : "'\(key)' is not a string"); return
                    }
                    v[key] = s
                }
                guard !(v["prompt"]!.isEmpty) else { stats.bad(at, "empty prompt"); return }
                kind = k
                stats.records += 1
                if k == "tests" {
                    problems.append(HumanEvalProblem(taskID: d["task_id"] as? String ?? "line \(n)", prompt: v["prompt"]!,
                                                     canonicalSolution: d["canonical_solution"] as? String ?? "",
                                                     test: v["test"]!, entryPoint: v["entry_point"]!))
                } else {
                    prompts.append(v["prompt"]!); references.append(v["reference"]!)
                }
            case let .tooLong(n, size):
                stats.bad("\(path):\(n)", "line of \(size) bytes is too long")
            case let .truncated(n, message):
                stats.bad("\(path):\(n)", "compressed stream ends early or is corrupt (\(message))")
            }
        }
        if let e = stats.check(source: path, maxBadFraction: maxBadFraction) { throw e }
        if stats.bad > 0 {
            log("eval-data \(path): skipped \(stats.bad) bad records; first:\n  " + stats.reports.joined(separator: "\n  "))
        }
        if kind == "tests" { return .tests(problems) }
        return .reference(prompts: prompts, references: references, oneLine: !references.contains { $0.contains("\n") })
    }
}

extension Downstream {
    /// One hypothesis per prompt (samples keyed as in `humanEvalRun`): sampled until EOS, or
    /// with `oneLine` until the end of the first line; surrounding whitespace trimmed.
    public static func hypotheses(model: Transformer, tokenizer: BPETokenizer, prompts: [String], promptKeys: [UInt64]?,
                                  oneLine: Bool, maxNewTokens: Int, temperature: Float, topP: Float,
                                  seed: UInt64) throws -> [String] {
        let ids = prompts.map { tokenizer.encode($0, allowSpecial: false) }
        for (i, p) in ids.enumerated() {
            guard p.count >= 2 else {
                throw TrainerError.data("eval-data prompt \(i) has \(p.count) token; a prompt needs at least 2")
            }
            try model.checkContext(promptTokens: p.count, newTokens: maxNewTokens, what: "eval-data prompt \(i)")
        }
        let out = sample(model: model, prompts: ids, samples: 1, maxNewTokens: maxNewTokens, temperature: temperature,
                         topP: topP, seed: seed, stop: oneLine ? lineStops(tokenizer) : [tokenizer.eos], promptKeys: promptKeys)
        return try out.map { s -> String in
            let text = try tokenizer.decode(s[0])
            let cut = oneLine ? String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") : text
            return cut.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}
