import ArgumentParser
import Evaluation
import Foundation
import Model
import Trainer

/// `ebft-dist eval`: downstream metrics of a model (spec §10.2).
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Downstream evaluation: HumanEval pass@1/pass@k in the sandbox (code, qa-code) or corpus BLEU (translation).")

    @Option(help: "code | qa-code (HumanEval) or translation (BLEU on the de→en test pairs).") var task = "code"
    @Option(help: "Model: GGUF, one of our checkpoint directories or a run directory; default: the installed SmolLM2.")
    var model: String?
    @Option(help: "Problems / sentence pairs to evaluate (0 = all).") var limit = 0
    @Option(help: "Samples per problem (k of pass@k).") var samples = 4
    @Option(help: "Tokens to generate at most.") var maxNewTokens = 256
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0.6
    @Option(help: "Nucleus mass.") var topP: Float = 0.95
    @Option(help: "Random seed.") var seed: UInt64 = 43
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @Option(help: """
        Evaluate on this JSONL(.gz) file instead: records of kind tests (prompt, test, entry_point → pass@k) or \
        reference (prompt, reference → BLEU and chrF); --task is then ignored.
        """)
    var evalData: String?
    @Option(help: "Bad records allowed in --eval-data, as a fraction.") var maxBadFraction = 0.01
    @Option(help: "Write every completion, the program run and its outcome to this JSON-lines file (code tasks).")
    var save: String?

    func validate() throws {
        guard ["code", "qa-code", "translation"].contains(task) else { throw ValidationError("--task: code, qa-code or translation") }
        guard samples >= 1, maxNewTokens >= 1, limit >= 0 else { throw ValidationError("--samples, --max-new-tokens ≥ 1; --limit ≥ 0") }
    }

    func run() throws {
        let path = try resolveModelPath(model)
        let m = Transformer(parameters: try ModelSource.load(path, log: { emitError("warning: " + $0) }))
        let tokenizer = try BPETokenizer.forModel(at: path, log: { emitError("warning: " + $0) })
        try tokenizer.checkFits(modelVocabulary: m.config.vocabSize, model: path)
        let start = Date()
        var result: [String: Any] = ["task": task, "model": path]
        var set: EvalSet?
        if let f = evalData {
            set = try EvalSet.load(path: f, maxBadFraction: maxBadFraction, log: { emitError("warning: " + $0) })
            result["task"] = "eval-data"
            result["eval_data"] = f
            result["kind"] = set!.kind
        }
        if case let .reference(prompts, references, oneLine)? = set {
            let n = limit > 0 ? min(limit, prompts.count) : prompts.count
            let hyps = try Downstream.hypotheses(model: m, tokenizer: tokenizer, prompts: Array(prompts.prefix(n)),
                                                 promptKeys: nil, oneLine: oneLine, maxNewTokens: maxNewTokens, temperature: temperature,
                                                 topP: topP, seed: seed)
            let refs = Array(references.prefix(n))
            result["pairs"] = n
            result["bleu"] = try BLEU.corpus(hypotheses: hyps, references: refs).score
            result["chrf"] = try ChrF.corpus(hypotheses: hyps, references: refs)
            if let save {
                var lines = ""
                for (h, r) in zip(hyps, refs) {
                    let obj: [String: Any] = ["hypothesis": h, "reference": r]
                    let json = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                    lines += String(decoding: json, as: UTF8.self) + "\n"
                }
                try lines.write(toFile: save, atomically: true, encoding: .utf8)
            }
        } else if task == "translation" && set == nil {
            var pairs = try TranslationPairs.load().test
            if limit > 0 { pairs = Array(pairs.prefix(limit)) }
            let bleu = try Downstream.translationBLEU(model: m, tokenizer: tokenizer, pairs: pairs, maxNewTokens: min(maxNewTokens, 96),
                                                      temperature: temperature, topP: topP, seed: seed)
            result["pairs"] = pairs.count
            result["bleu"] = bleu
        } else {
            var problems: [HumanEvalProblem]
            if case .tests(let p)? = set { problems = p } else { problems = try HumanEval.load() }
            if limit > 0 { problems = Array(problems.prefix(limit)) }
            let sandbox = try Sandbox()
            try sandbox.selfTest()
            let r = try Downstream.humanEval(model: m, tokenizer: tokenizer, problems: problems, samples: samples,
                                             maxNewTokens: maxNewTokens, temperature: temperature, topP: topP, seed: seed,
                                             sandbox: sandbox)
            result["problems"] = r.problems
            result["samples"] = r.samples
            result["pass@1"] = r.passAt1
            result["pass@\(r.samples)"] = r.passAtK
            result["failures"] = r.failures
            if let save {
                var lines = ""
                for d in r.details {
                    let obj: [String: Any] = ["task_id": d.taskID, "completion": d.completion, "program": d.program,
                                              "passed": d.passed, "stderr": d.stderr]
                    lines += String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self) + "\n"
                }
                try lines.write(toFile: save, atomically: true, encoding: .utf8)
            }
        }
        result["seconds"] = Date().timeIntervalSince(start)
        if json {
            let d = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            for k in result.keys.sorted() { print("\(k): \(result[k]!)") }
        }
    }
}
