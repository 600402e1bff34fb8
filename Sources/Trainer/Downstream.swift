import Evaluation
import Foundation
import Model

/// Downstream evaluation (spec §10.2): ordinary autoregressive sampling from prompts with the
/// KV cache, scored by unit tests (HumanEval, pass@k) or BLEU (translation).
public enum Downstream {
    /// `samples` completions of every prompt, drawn in batches of streams that share each
    /// prompt's prefilled cache. Token t of sample i of prompt p uses the uniform keyed by
    /// (seed, p, i, 0, t). A completion ends at a `stop` token (not included) or after
    /// `maxNewTokens`. With `promptKeys`, prompt p is keyed by `promptKeys[p]` instead of p (so
    /// that a prompt's samples do not depend on which rank or batch it lands in); with
    /// `keepStop`, a completion that ended at a stop token keeps it as its last token.
    public static func sample(model: Transformer, prompts: [[Int32]], samples: Int, maxNewTokens: Int,
                              temperature: Float, topP: Float, seed: UInt64, stop: Set<Int32>,
                              promptKeys: [UInt64]? = nil, keepStop: Bool = false,
                              maxStreams: Int = 32) -> [[[Int32]]] {
        precondition(samples >= 1 && maxNewTokens >= 1)
        precondition(promptKeys == nil || promptKeys!.count == prompts.count, "one key per prompt")
        var out = [[[Int32]]](repeating: [], count: prompts.count)
        let perGroup = max(1, maxStreams / samples)
        var first = 0
        while first < prompts.count {
            let group = Array(first..<min(prompts.count, first + perGroup))
            first += group.count
            let prefixes = group.map { p -> PrefixKV in
                precondition(prompts[p].count >= 2, "prompt \(p) needs at least 2 tokens")
                return model.prefill(tokens: Array(prompts[p].dropLast()))
            }
            var streams: [DecodeStream] = []
            var owner: [(prompt: Int, sample: Int)] = []
            for (g, p) in group.enumerated() {
                for i in 0..<samples {
                    let n = prompts[p].count
                    streams.append(DecodeStream(prefix: g, prefixLength: n - 1, firstPosition: n - 1))
                    owner.append((p, i))
                }
            }
            let batch = DecodeBatch(model: model, prefixes: prefixes, streams: streams, maxNewTokens: maxNewTokens)
            var next = owner.map { prompts[$0.prompt].last! }
            var done = [Bool](repeating: false, count: streams.count)
            var generated = [[Int32]](repeating: [], count: streams.count)
            let V = model.config.vocabSize
            for t in 0..<maxNewTokens where done.contains(false) {
                let logits = batch.step(tokens: next)
                logits.withUnsafeBufferPointer { lb in
                    for b in 0..<streams.count where !done[b] {
                        let key = promptKeys?[owner[b].prompt] ?? UInt64(owner[b].prompt)
                        let u = CounterRNG.uniform(seed: seed, key, UInt64(owner[b].sample), 0, UInt64(t))
                        let tok = Sampling.pick(logits: lb.baseAddress! + b * V, vocab: V, temperature: temperature,
                                                topP: topP, uniform: u).token
                        next[b] = tok
                        if stop.contains(tok) {
                            done[b] = true
                            if keepStop { generated[b].append(tok) }
                        } else {
                            generated[b].append(tok)
                        }
                    }
                }
            }
            for (b, o) in owner.enumerated() {
                if out[o.prompt].isEmpty { out[o.prompt] = [[Int32]](repeating: [], count: samples) }
                out[o.prompt][o.sample] = generated[b]
            }
        }
        return out
    }

    public struct CodeResult: Sendable {
        public var problems: Int
        public var samples: Int
        public var passAt1: Double
        public var passAtK: Double
        public var failures: [String: Int]
        /// Per problem and sample: the completion, the program run, and how it ended.
        public var details: [(taskID: String, completion: String, program: String, passed: Bool, stderr: String)]
    }

    /// HumanEval: prompt = signature + docstring (tokenised with no special tokens), `samples`
    /// completions each, executed with the problem's tests in the sandbox; unbiased pass@1 and
    /// pass@k (k = samples).
    public static func humanEval(model: Transformer, tokenizer: BPETokenizer, problems: [HumanEvalProblem],
                                 samples: Int, maxNewTokens: Int, temperature: Float, topP: Float, seed: UInt64,
                                 sandbox: Sandbox) throws -> CodeResult {
        let (completions, report) = try humanEvalRun(model: model, tokenizer: tokenizer, problems: problems, promptKeys: nil,
                                                     samples: samples, maxNewTokens: maxNewTokens, temperature: temperature,
                                                     topP: topP, seed: seed, sandbox: sandbox)
        var failures: [String: Int] = [:]
        for (k, v) in report.failureCounts { failures["\(k)"] = v }
        var details: [(taskID: String, completion: String, program: String, passed: Bool, stderr: String)] = []
        for (i, p) in report.problems.enumerated() {
            for (j, r) in p.results.enumerated() {
                let built = HumanEval.program(for: problems[i], completion: completions[i][j])
                details.append((p.taskID, completions[i][j], built.program, r.passed, String(r.stderr.suffix(600))))
            }
        }
        return CodeResult(problems: problems.count, samples: samples, passAt1: try report.passAtK(1),
                          passAtK: try report.passAtK(samples), failures: failures, details: details)
    }

    /// Samples and executes HumanEval completions; prompt i's samples are keyed by
    /// `promptKeys[i]` (default i), so a subset evaluated on one rank draws the same tokens as
    /// in a whole-set run.
    public static func humanEvalRun(model: Transformer, tokenizer: BPETokenizer, problems: [HumanEvalProblem],
                                    promptKeys: [UInt64]?, samples: Int, maxNewTokens: Int, temperature: Float,
                                    topP: Float, seed: UInt64, sandbox: Sandbox) throws -> (completions: [[String]], report: HumanEvalReport) {
        // The prompt without its final newline: a lone trailing "\n" token is one the model
        // never saw before indented code (byte-level BPE merges "\n" with the indentation), and
        // it derails the continuation into prose. The completion then starts with the newline,
        // and prompt + completion only gains a blank line.
        let prompts = problems.map { codePrompt($0.prompt, tokenizer: tokenizer) }
        for (p, prompt) in zip(problems, prompts) {
            try model.checkContext(promptTokens: prompt.count, newTokens: maxNewTokens, what: "\(p.taskID)'s prompt")
        }
        let ids = sample(model: model, prompts: prompts, samples: samples, maxNewTokens: maxNewTokens,
                         temperature: temperature, topP: topP, seed: seed, stop: tokenizer.stopTokens, promptKeys: promptKeys)
        let completions = try ids.map { try $0.map { try tokenizer.decode($0) } }
        return (completions, try HumanEval.evaluate(problems: problems, completions: completions, sandbox: sandbox))
    }

    /// Translation: prompt "German: …\nEnglish:", one greedy-or-sampled hypothesis per pair,
    /// cut at the first line; corpus BLEU (sacreBLEU defaults) against the reference.
    public static func translationBLEU(model: Transformer, tokenizer: BPETokenizer, pairs: [QAPair], maxNewTokens: Int,
                                       temperature: Float, topP: Float, seed: UInt64) throws -> Double {
        let hyps = try translations(model: model, tokenizer: tokenizer, pairs: pairs, promptKeys: nil, maxNewTokens: maxNewTokens,
                                    temperature: temperature, topP: topP, seed: seed)
        return try BLEU.corpus(hypotheses: hyps, references: references(pairs)).score
    }

    /// The cleaned hypothesis (first line) for every pair; keys as in `humanEvalRun`.
    public static func translations(model: Transformer, tokenizer: BPETokenizer, pairs: [QAPair], promptKeys: [UInt64]?,
                                    maxNewTokens: Int, temperature: Float, topP: Float, seed: UInt64) throws -> [String] {
        let prompts = pairs.map { tokenizer.encodePrompt($0.question) }
        for (i, prompt) in prompts.enumerated() {
            try model.checkContext(promptTokens: prompt.count, newTokens: maxNewTokens,
                                   what: "translation pair \(i)'s prompt")
        }
        let ids = sample(model: model, prompts: prompts, samples: 1, maxNewTokens: maxNewTokens,
                         temperature: temperature, topP: topP, seed: seed, stop: lineStops(tokenizer), promptKeys: promptKeys)
        return try ids.map { TranslationPairs.cleanHypothesis(try tokenizer.decode($0[0])) }
    }

    public static func references(_ pairs: [QAPair]) -> [String] { pairs.map(reference) }

    /// The reference translation of a pair (its answer without the leading space).
    public static func reference(_ pair: QAPair) -> String { pair.answer.trimmingCharacters(in: .whitespaces) }

    /// A code prompt's tokens, without its trailing newlines (see `humanEvalRun`); BOS first
    /// when the model expects it.
    public static func codePrompt(_ prompt: String, tokenizer: BPETokenizer) -> [Int32] {
        var text = prompt
        while text.last == "\n" { text.removeLast() }
        return tokenizer.encodePrompt(text)
    }

    /// Where a one-line answer (a translation) ends: a stop token (EOS) or a newline token.
    public static func lineStops(_ tokenizer: BPETokenizer) -> Set<Int32> {
        var stop = tokenizer.stopTokens
        if let nl = tokenizer.id(of: "Ċ") { stop.insert(nl) }
        return stop
    }
}
