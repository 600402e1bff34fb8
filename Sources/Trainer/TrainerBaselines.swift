import Distributed
import Evaluation
import Foundation
import Learner
import Model
import Rollout

/// One rank's RLVR rollouts of a step: its questions' completions, rewards and advantages.
struct RLVRRollout {
    var prompts: [[Int32]] = []
    var completions: [[Int32]] = []
    var rewards: [Double] = []
    var advantages: [Float] = []
    var questions = 0
    /// Σ over questions of the best reward among its samples.
    var bestSum = 0.0
    /// Completions that ended at a stop token (not at the length limit).
    var stopped = 0.0
    var rewardSum: Double { rewards.reduce(0, +) }
}

/// Downstream evaluation data (spec §10.2), loaded once per rank.
enum DownstreamData {
    case humanEval([HumanEvalProblem], Sandbox?)
    case translation([QAPair])
    /// `eval-data` of kind reference (BLEU and chrF).
    case reference(prompts: [String], references: [String], oneLine: Bool)

    var count: Int {
        switch self {
        case .humanEval(let p, _): return p.count
        case .translation(let p): return p.count
        case .reference(let p, _, _): return p.count
        }
    }
}

extension Trainer {
    /// The step's gradient for the configured method.
    func learn(_ learner: PolicyLearner, _ batch: [Experience], _ rl: RLVRRollout, chunks: Int,
               layerReady: ((Int) -> Void)?) -> LearnerStats {
        let c = context.config
        switch c.method {
        case "sft":
            return learner.accumulateCE(batch.map(\.chunk), totalSequences: chunks, layerReady: layerReady)
        case "rlvr":
            let total = (rlvrSampler?.batchSize ?? 0) * c.samplesPerChunk
            // A rank with nothing to train on starts every all-reduce bucket in `finish()`.
            return learner.accumulateCompletions(prompts: rl.prompts, completions: rl.completions,
                                                 advantages: rl.advantages, totalSequences: total,
                                                 tokenScale: c.rlvrMaxNewTokens,
                                                 pad: context.tokenizer.pad ?? context.tokenizer.eos, layerReady: layerReady)
        default:
            return learner.accumulate(batch, totalSequences: chunks * c.samplesPerChunk, layerReady: layerReady)
        }
    }

    /// Samples `samples-per-chunk` completions of each question with the current policy, scores
    /// them with the verifier and computes RLOO advantages. Token t of sample i of question q at
    /// step s uses the uniform keyed by (rlvr seed, s·2³² + q, i, 0, t): the same on any rank.
    func rlvrRollout(task: RLVRTask, questions: [Int], step t: Int, times: inout PhaseTimes) throws -> RLVRRollout {
        let c = context.config
        var out = RLVRRollout()
        guard !questions.isEmpty else { return out }
        let prompts = questions.map { task.prompts[$0] }
        for (q, prompt) in zip(questions, prompts) {
            try context.policy.checkContext(promptTokens: prompt.count, newTokens: c.rlvrMaxNewTokens,
                                            what: "RLVR question \(q)'s prompt")
        }
        let comps = times.time("sample") {
            Downstream.sample(model: context.policy, prompts: prompts, samples: c.samplesPerChunk,
                              maxNewTokens: c.rlvrMaxNewTokens, temperature: Float(c.temperature), topP: Float(c.topP),
                              seed: CounterRNG.derive(c.seed, .rlvrSampling), stop: task.stop,
                              promptKeys: questions.map { UInt64(t) << 32 | UInt64($0) }, keepStop: true)
        }
        let rewards = try times.time("reward") { try task.rewards(questions: questions, completions: comps) }
        for (i, q) in questions.enumerated() {
            let adv = RLVRTask.advantages(rewards[i])
            out.questions += 1
            out.bestSum += rewards[i].max() ?? 0
            for j in 0..<comps[i].count {
                out.prompts.append(task.prompts[q])
                out.completions.append(comps[i][j])
                out.rewards.append(rewards[i][j])
                out.advantages.append(Float(adv[j]))
                if let last = comps[i][j].last, task.stop.contains(last) { out.stopped += 1 }
            }
        }
        return out
    }

    // MARK: downstream evaluation

    func downstreamDue(step t: Int) -> Bool {
        let c = context.config
        guard c.evalDownEvery > 0 else { return false }
        return t == 0 ? c.evalDownStart : t % c.evalDownEvery == 0
    }

    func loadDownstream() throws -> DownstreamData {
        if let downstream { return downstream }
        let c = context.config
        let d: DownstreamData
        var set: EvalSet?
        if let path = c.evalData { set = try EvalSet.load(path: path, maxBadFraction: c.maxBadFraction, log: log) }
        if case let .reference(prompts, references, oneLine)? = set {
            let n = c.evalDownLimit > 0 ? min(c.evalDownLimit, prompts.count) : prompts.count
            d = .reference(prompts: Array(prompts.prefix(n)), references: Array(references.prefix(n)), oneLine: oneLine)
        } else if c.task == "translation" && set == nil {
            var pairs = try TranslationPairs.load(options: c.translationOptions).test
            if c.evalDownLimit > 0 { pairs = Array(pairs.prefix(c.evalDownLimit)) }
            d = .translation(pairs)
        } else {
            var problems: [HumanEvalProblem]
            if case .tests(let p)? = set { problems = p } else { problems = try HumanEval.load() }
            if c.evalDownLimit > 0 { problems = Array(problems.prefix(c.evalDownLimit)) }
            var sandbox: Sandbox? = nil
            if role.isWorker {
                let s = try Sandbox()
                try s.selfTest()
                sandbox = s
            }
            d = .humanEval(problems, sandbox)
        }
        downstream = d
        return d
    }

    /// Downstream metrics of the current weights: the problems (or test pairs) are split across
    /// the rollout workers (item i → worker i mod W), each samples and scores its share, rank 0
    /// gathers the outcomes and writes one `downstream` record. Samples are keyed by the item's
    /// index, so the numbers do not depend on the number of ranks.
    func evaluateDownstream(step: Int) throws {
        let t0 = Date()
        let c = context.config
        if asyncMode {
            var times = PhaseTimes(), bytes = 0.0
            try syncWeights(step: step, times: &times, bytes: &bytes)
        }
        let data = try loadDownstream()
        var payload: [UInt8] = []
        if role.isWorker, let w = workerIndex {
            watchdog?.enter("downstream eval", step: step)
            let W = roles.workerRanks.count
            let mine = (0..<data.count).filter { $0 % W == w }
            let seed = CounterRNG.derive(c.seed, .downstreamSampling)
            var rows: [[String: Any]] = []
            switch data {
            case .humanEval(let problems, let sandbox):
                let (_, report) = try Downstream.humanEvalRun(
                    model: context.policy, tokenizer: context.tokenizer, problems: mine.map { problems[$0] },
                    promptKeys: mine.map(UInt64.init), samples: c.evalDownSamples, maxNewTokens: c.evalDownMaxNewTokens,
                    temperature: Float(c.evalDownTemperature), topP: Float(c.evalDownTopP), seed: seed, sandbox: sandbox!)
                for (i, p) in zip(mine, report.problems) {
                    rows.append(["i": i, "passed": p.passed, "failures": p.results.compactMap { $0.failureKind?.rawValue }])
                }
            case .translation(let pairs):
                let hyps = try Downstream.translations(
                    model: context.policy, tokenizer: context.tokenizer, pairs: mine.map { pairs[$0] },
                    promptKeys: mine.map(UInt64.init), maxNewTokens: min(c.evalDownMaxNewTokens, 96),
                    temperature: Float(c.evalDownTemperature), topP: Float(c.evalDownTopP), seed: seed)
                for (i, h) in zip(mine, hyps) { rows.append(["i": i, "hypothesis": h]) }
            case let .reference(prompts, _, oneLine):
                let hyps = try Downstream.hypotheses(
                    model: context.policy, tokenizer: context.tokenizer, prompts: mine.map { prompts[$0] },
                    promptKeys: mine.map(UInt64.init), oneLine: oneLine, maxNewTokens: c.evalDownMaxNewTokens,
                    temperature: Float(c.evalDownTemperature), topP: Float(c.evalDownTopP), seed: seed)
                for (i, h) in zip(mine, hyps) { rows.append(["i": i, "hypothesis": h]) }
            }
            payload = Array(try JSONSerialization.data(withJSONObject: rows))
        }
        watchdog?.enter("downstream gather", step: step, waitingOn: Array(0..<comm.size))
        try comm.politeWait(root: roles.workerRanks[0])
        let gathered = try comm.gather(bytes: payload, root: 0)
        watchdog?.leave()
        guard rank == 0, let gathered else { return }
        var rows: [Int: [String: Any]] = [:]
        for bytes in gathered where !bytes.isEmpty {
            guard let list = try JSONSerialization.jsonObject(with: Data(bytes)) as? [[String: Any]] else {
                throw TrainerError.data("downstream results from a rank are not a JSON list")
            }
            for row in list { if let i = row["i"] as? Int { rows[i] = row } }
        }
        guard rows.count == data.count else {
            throw TrainerError.data("downstream evaluation returned \(rows.count) of \(data.count) results")
        }
        var r = MetricsRecord()
        r["step"] = Double(step)
        r.set("kind", "downstream")
        r.set("task", c.task)
        switch data {
        case .humanEval(let problems, _):
            let outcomes = (0..<problems.count).map { (rows[$0]?["passed"] as? [Bool]) ?? [] }
            let k = c.evalDownSamples
            r.set("benchmark", "humaneval")
            if let path = c.evalData { r.set("eval_data", path) }
            r["problems"] = Double(problems.count)
            r["samples"] = Double(k)
            r["k"] = Double(k)
            r["pass1"] = try PassAtK.mean(outcomes: outcomes, k: 1)
            r["passk"] = try PassAtK.mean(outcomes: outcomes, k: k)
            r["solved"] = Double(outcomes.filter { $0.contains(true) }.count)
            var failures: [String: Int] = [:]
            for i in 0..<problems.count { for f in (rows[i]?["failures"] as? [String]) ?? [] { failures[f, default: 0] += 1 } }
            for kind in FailureKind.allCases { r["failed_\(kind.rawValue)"] = Double(failures[kind.rawValue] ?? 0) }
            log(String(format: "downstream @ step %d: HumanEval pass@1 %.4f  pass@%d %.4f  (%d problems)", step,
                       r["pass1"]!, k, r["passk"]!, problems.count))
        case .translation(let pairs):
            let hyps = (0..<pairs.count).map { (rows[$0]?["hypothesis"] as? String) ?? "" }
            let refs = Downstream.references(pairs)
            let bleu = try BLEU.corpus(hypotheses: hyps, references: refs).score
            r.set("benchmark", "de-en")
            r["pairs"] = Double(pairs.count)
            r["bleu"] = bleu
            r["chrf"] = try ChrF.corpus(hypotheses: hyps, references: refs)
            log(String(format: "downstream @ step %d: BLEU %.2f  chrF %.2f  (%d de→en pairs)", step, bleu, r["chrf"]!,
                       pairs.count))
        case let .reference(prompts, references, _):
            let hyps = (0..<prompts.count).map { (rows[$0]?["hypothesis"] as? String) ?? "" }
            r.set("benchmark", URL(fileURLWithPath: c.evalData ?? "eval-data").lastPathComponent)
            r["pairs"] = Double(prompts.count)
            r["bleu"] = try BLEU.corpus(hypotheses: hyps, references: references).score
            r["chrf"] = try ChrF.corpus(hypotheses: hyps, references: references)
            log(String(format: "downstream @ step %d: BLEU %.2f  chrF %.2f  (%d eval-data pairs)", step, r["bleu"]!,
                       r["chrf"]!, prompts.count))
        }
        r["time_downstream"] = Date().timeIntervalSince(t0)
        metrics?.write(r)
    }
}
