import Foundation
import Learner
import Model
import Rollout

/// The EBFT step loop in one process (every role colocated): sample → features → rewards →
/// teacher-forced backward → clip → AdamW, with metrics per step as JSON lines.
public final class Trainer {
    public let context: RunContext
    public let runDir: String
    public private(set) var optimizer: PolicyOptimizer
    let learner: PolicyLearner
    let metrics: JSONLWriter
    let log: (String) -> Void
    let progress: ProgressBar?

    public init(context: RunContext, showProgress: Bool = true, log: @escaping (String) -> Void = { _ in }) throws {
        self.context = context
        runDir = context.config.runDir
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        try context.config.yaml().write(toFile: runDir + "/config.yaml", atomically: true, encoding: .utf8)
        optimizer = context.makeOptimizer()
        learner = PolicyLearner(model: context.policy, geometry: context.geometry,
                                temperature: Float(context.config.temperature), ceCoef: Float(context.config.ceCoef))
        metrics = try JSONLWriter(path: runDir + "/metrics.jsonl")
        self.log = log
        progress = showProgress ? ProgressBar(total: context.totalSteps) : nil
    }

    /// Runs steps until `totalSteps`, evaluating every `evalEvery` steps (and before the first).
    public func run() throws {
        let c = context.config
        let evaluator = Evaluator(context: context)
        while optimizer.stepsTaken < context.totalSteps {
            let t = optimizer.stepsTaken
            if c.evalEvery > 0 && t % c.evalEvery == 0 { writeEval(evaluator, step: t) }
            let r = try step()
            metrics.write(r)
            progress?.update(step: t + 1, fields: [("reward", r["reward"] ?? .nan), ("align", r["alignment"] ?? .nan),
                                                   ("ce", r["ce"] ?? .nan)])
        }
        if c.evalEvery > 0 { writeEval(evaluator, step: optimizer.stepsTaken) }
    }

    func writeEval(_ evaluator: Evaluator, step: Int) {
        var r = MetricsRecord()
        r["step"] = Double(step)
        r.set("kind", "eval")
        let e = evaluator.evaluate(policy: context.policy)
        for k in e.keys { r[k] = e[k] }
        metrics.write(r)
        log(String(format: "eval @ step %d: ce %.4f  reward %.4f  alignment %.4f  fm-loss %.4f", step,
                   r["eval_ce"] ?? .nan, r["eval_reward_pass1"] ?? .nan, r["eval_alignment_pass1"] ?? .nan,
                   r["eval_feature_matching_loss"] ?? .nan))
    }

    /// One optimizer step on the chunks of step `optimizer.stepsTaken`.
    public func step() throws -> MetricsRecord {
        let t = optimizer.stepsTaken
        let c = context.config
        let start = Date()
        let worker = RolloutWorker(policy: context.policy, critic: context.critic, settings: context.rolloutSettings)
        let out = worker.run(chunks: context.chunks(step: t), policyVersion: Int64(t))
        var times = out.times
        let ls = times.time("backward") {
            learner.accumulate(out.experiences, totalSequences: out.experiences.count)
        }
        let opt = times.time("optimizer") { optimizer.step(params: context.policy.parameters, grads: learner.grads) }
        guard opt.applied else {
            throw TrainerError.diverged("step \(t): the gradient norm is \(opt.gradNorm); the update was skipped")
        }
        var r = MetricsRecord()
        r["step"] = Double(t + 1)
        r.set("kind", "train")
        let s = out.stats
        r["reward"] = s.rewardPass1
        r["alignment"] = s.alignmentPass1
        r["diversity"] = s.diversityPass1
        r["feature_matching"] = s.featureMatchingPass1
        r["reward_passn"] = s.rewardPassN
        let adv = out.experiences.flatMap(\.advantages)
        r["advantage_abs_mean"] = adv.isEmpty ? 0 : adv.map { Double(abs($0)) }.reduce(0, +) / Double(adv.count)
        r["advantage_max"] = Double(adv.max() ?? 0)
        r["advantage_min"] = Double(adv.min() ?? 0)
        r["ce"] = ls.ceSum / max(ls.sequences, 1)
        r["rl_loss"] = ls.rlSum / max(ls.sequences, 1)
        r["loss"] = (ls.rlSum + c.ceCoef * ls.ceSum) / max(ls.sequences, 1)
        r["logp_drift"] = ls.maxLogProbDrift
        r["grad_norm"] = opt.gradNorm
        r["lr"] = opt.learningRate
        r["sequences"] = ls.sequences
        r["generated_tokens"] = Double(out.generatedTokens)
        r["trained_tokens"] = ls.tokens
        r["unwhitened_blocks"] = s.unwhitenedBlocks
        for p in times.order { r["time_\(p)"] = times.seconds[p]! }
        r["time_step"] = Date().timeIntervalSince(start)
        return r
    }
}
