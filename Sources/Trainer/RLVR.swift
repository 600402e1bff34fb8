import Evaluation
import Foundation
import Model
import Rollout

/// The RLVR baseline's data and reward (issue 6): questions with a verifier.
///
///   * code tasks (`code`, `qa-code`): the stdlib functions whose docstrings carry doctest
///     examples (`DoctestProblems`), train split, only the sound ones; reward 1 when the
///     completion passes every example in the sandbox, else 0;
///   * `translation`: the German→English training pairs; reward = sentence BLEU (sacreBLEU's
///     defaults, exp smoothing) of the cleaned first line against the reference, divided by 100.
///
/// A step takes `rlvr-questions` questions (a seeded permutation per epoch, like the chunks),
/// samples `samples-per-chunk` full completions of each at `temperature`/`top-p` (at most
/// `rlvr-max-new-tokens`, ending at EOS — or at the end of the line for translation), scores
/// them and turns the rewards into RLOO advantages A_i = r_i − mean_{j≠i} r_j. The learner
/// then minimises −(1/(N·M)) Σ_i A_i Σ_t log π_T(y_i,t | q, y_i,<t), with N the step's
/// completions and M = `rlvr-max-new-tokens` (a constant, so long and short completions are
/// weighted per token alike).
public final class RLVRTask {
    public enum Source: Sendable {
        case code([DoctestProblem])
        case translation([QAPair])
    }

    public let source: Source
    /// Model prompt of each question.
    public let prompts: [[Int32]]
    public let stop: Set<Int32>
    let tokenizer: BPETokenizer
    let sandbox: Sandbox?

    public var count: Int { prompts.count }

    public init(source: Source, tokenizer: BPETokenizer, sandbox: Sandbox?) throws {
        self.source = source
        self.tokenizer = tokenizer
        switch source {
        case .code(let problems):
            guard let sandbox else { throw TrainerError.data("RLVR on code needs the sandbox") }
            self.sandbox = sandbox
            // As for HumanEval: the prompt without its trailing newline.
            prompts = problems.map { Downstream.codePrompt($0.modelPrompt, tokenizer: tokenizer) }
            stop = tokenizer.stopTokens
        case .translation(let pairs):
            self.sandbox = nil
            prompts = pairs.map { tokenizer.encodePrompt($0.question) }
            stop = Downstream.lineStops(tokenizer)
        }
        guard !prompts.isEmpty else { throw TrainerError.data("RLVR has no training questions") }
    }

    /// The problems for `config.task`: on code tasks only those proved sound in the sandbox
    /// (`DoctestProblems.keepSound`), decided on `decide` (rank 0) and applied by every rank
    /// through `share` (a broadcast of the kept indices), so all ranks agree even if a sandbox
    /// run times out on a loaded machine.
    public static func load(config c: TrainConfig, tokenizer: BPETokenizer, isDecider: Bool,
                            share: (inout [Int32]) throws -> Void) throws -> RLVRTask {
        switch c.task {
        case "translation":
            return try RLVRTask(source: .translation(try TranslationPairs.load(options: c.translationOptions).train),
                                tokenizer: tokenizer, sandbox: nil)
        default:
            let all = try DoctestProblems.load(root: c.corpusRoot, options: c.qaCodeOptions).train
            let sandbox = try Sandbox()
            var kept: [Int32] = []
            if isDecider {
                try sandbox.selfTest()
                let sound = Set(DoctestProblems.keepSound(all, sandbox: sandbox).map(\.problem.taskID))
                kept = all.indices.filter { sound.contains(all[$0].problem.taskID) }.map { Int32($0) }
            }
            try share(&kept)
            return try RLVRTask(source: .code(kept.map { all[Int($0)] }), tokenizer: tokenizer, sandbox: sandbox)
        }
    }

    /// Rewards of `completions[i][j]` (sample j of question `questions[i]`), in [0, 1].
    public func rewards(questions: [Int], completions: [[[Int32]]]) throws -> [[Double]] {
        let texts = try completions.map { samples in
            try samples.map { toks -> String in
                var t = toks
                if let last = t.last, stop.contains(last) { t.removeLast() }
                return try tokenizer.decode(t)
            }
        }
        switch source {
        case .code(let problems):
            var jobs: [(program: String, tests: String)] = []
            for (i, q) in questions.enumerated() {
                for text in texts[i] { jobs.append(HumanEval.program(for: problems[q].problem, completion: text)) }
            }
            let results = sandbox!.runAll(jobs)
            var k = 0
            return texts.map { s in s.map { _ in defer { k += 1 }; return results[k].passed ? 1 : 0 } }
        case .translation(let pairs):
            return questions.enumerated().map { i, q in
                texts[i].map { text in
                    BLEU.sentence(hypothesis: TranslationPairs.cleanHypothesis(text),
                                  reference: Downstream.reference(pairs[q])).score / 100
                }
            }
        }
    }

    /// RLOO advantages of one question's rewards: r_i − mean of the others (0 for one sample).
    public static func advantages(_ r: [Double]) -> [Double] {
        guard r.count > 1 else { return r.map { _ in 0 } }
        let total = r.reduce(0, +)
        return r.map { $0 - (total - $0) / Double(r.count - 1) }
    }
}

/// One sampled completion ready for the learner.
public struct RLVRSequence: Sendable, Equatable {
    public var prompt: [Int32]
    /// The completion, its stop token included when it stopped.
    public var completion: [Int32]
    public var advantage: Float
}
