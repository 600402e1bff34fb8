import Foundation
import Model
import Rollout

/// Online evaluation (spec §10.1) on held-out chunks: validation cross-entropy (plain causal
/// teacher forcing, all P−1 predictions, T = 1) and the feature-matching metrics of strided
/// rollouts sampled exactly as in training but with a separate seed stream.
public struct Evaluator {
    public let context: RunContext

    public init(context: RunContext) { self.context = context }

    /// Token-mean NLL of `chunks` under `model` (causal, T = 1).
    public static func validationCE(model: Transformer, chunks: [Chunk]) -> Double {
        var nll = 0.0, count = 0.0
        for c in chunks {
            let x = c.tokens
            let preds = (0..<(x.count - 1)).map { Prediction(row: $0, target: x[$0 + 1]) }
            let lp = model.logProbs(tokens: x, layout: .causal(length: x.count), predictions: preds)
            for v in lp { nll -= Double(v) }
            count += Double(lp.count)
        }
        return count > 0 ? nll / count : .nan
    }

    /// Metrics of the current policy, under the `eval_` prefix.
    public func evaluate(policy: Transformer) -> MetricsRecord {
        var r = MetricsRecord()
        var times = PhaseTimes()
        let ce = times.time("eval_ce") { Self.validationCE(model: policy, chunks: context.validation) }
        r["eval_ce"] = ce
        r["eval_perplexity"] = exp(ce)
        var settings = context.rolloutSettings
        settings.sampling.seed = CounterRNG.derive(context.config.seed, .validationSampling)
        let worker = RolloutWorker(policy: policy, critic: context.critic, settings: settings)
        let chunks = context.validation.enumerated().map { (id: $0.offset, tokens: $0.element.tokens) }
        let out = times.time("eval_rollout") { worker.run(chunks: chunks, policyVersion: -1) }
        let s = out.stats
        r["eval_reward_pass1"] = s.rewardPass1
        r["eval_reward_passn"] = s.rewardPassN
        r["eval_alignment_pass1"] = s.alignmentPass1
        r["eval_alignment_passn"] = s.alignmentPassN
        r["eval_diversity_pass1"] = s.diversityPass1
        // gt − div/2 = ‖φ_gt‖² − L̂_CFM: the feature-matching loss proxy is its negation.
        r["eval_feature_matching_pass1"] = s.featureMatchingPass1
        r["eval_feature_matching_loss"] = -s.featureMatchingPass1
        for p in times.order { r["time_\(p)"] = times.seconds[p]! }
        return r
    }
}
