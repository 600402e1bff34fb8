import Foundation
import Model

/// The run's model-FLOP count (`flops`, `flops_total` in each train record) and `flop-budget`:
/// a comparison of methods on equal compute stops each at the same count (`StepCost`).
extension Trainer {
    /// Whether `flop-budget` is set and the steps so far have spent it.
    var budgetSpent: Bool {
        let b = context.config.flopBudget
        return b > 0 && flopsTotal >= b
    }

    /// Model FLOPs of this rank's RLVR rollouts (`StepCost.rlvr`): its completions come
    /// `samples-per-chunk` per question, in question order.
    func rlvrFLOPs(_ rl: RLVRRollout) -> Double {
        guard rlvr != nil, !rl.completions.isEmpty else { return 0 }
        let n = context.config.samplesPerChunk
        let questions = stride(from: 0, to: rl.completions.count, by: n).map { i in
            (prompt: rl.prompts[i].count, completions: rl.completions[i..<min(i + n, rl.completions.count)].map(\.count))
        }
        let cost = StepCost.rlvr(model: context.policy.config, questions: questions)
        return cost.sampling + cost.learner
    }

    /// The steps a `flop-budget` at least pays for in RLVR, and the most one step can cost: the
    /// longest prompts, every completion at `rlvr-max-new-tokens`.
    static func rlvrBudgetSteps(config c: TrainConfig, model: ModelConfig, task: RLVRTask) -> (atLeast: Int, most: Double) {
        let longest = task.prompts.map(\.count).max() ?? 1
        let q = min(c.rlvrQuestions, task.count)
        let most = StepCost.rlvr(model: model, questions: Array(
            repeating: (longest, Array(repeating: c.rlvrMaxNewTokens, count: c.samplesPerChunk)), count: q))
        let total = most.sampling + most.learner
        return (max(1, Int((c.flopBudget / total).rounded(.up))), total)
    }
}
