import Distributed
import Foundation
import Model
import Rollout

extension Trainer {
    /// Online evaluation on the validation chunks, split across the rollout workers and summed.
    func evaluate(step: Int) throws {
        let t0 = Date()
        if asyncMode {
            // Workers hold the weights one update behind; evaluate the current ones.
            var times = PhaseTimes(), bytes = 0.0
            try syncWeights(step: step, times: &times, bytes: &bytes)
        }
        // Per sampling seed: the run's reward statistics and the raw-feature ones (12 + 12).
        let E = max(1, context.config.evalSeeds), width = 2 * 12
        var sums = [Double](repeating: 0, count: 2 + E * width)
        if role.isWorker, let w = workerIndex, let critic = context.critic {
            watchdog?.enter("eval", step: step)
            let W = roles.workerRanks.count
            let mine = context.validation.enumerated().filter { $0.offset % W == w }
            let ce = Evaluator.validationNLL(model: context.policy, chunks: mine.map(\.element))
            sums[0] = ce.nll; sums[1] = ce.count
            var settings = context.rolloutSettings
            for e in 0..<E {
                // A phase per seed: the stall timeout bounds one pass over the chunks, not all E.
                watchdog?.enter(E > 1 ? "eval seed \(e + 1)/\(E)" : "eval rollouts", step: step)
                settings.sampling.seed = Evaluator.samplingSeed(run: context.config.seed, index: e)
                let out = RolloutWorker(policy: context.policy, critic: critic, settings: settings)
                    .run(chunks: mine.map { (id: $0.offset, tokens: $0.element.tokens) }, policyVersion: -1)
                sums.replaceSubrange((2 + e * width)..<(2 + (e + 1) * width), with: out.stats.packed + out.rawStats.packed)
            }
        }
        watchdog?.enter("eval reduce", step: step, waitingOn: Array(0..<comm.size))
        // The slowest here is a rollout worker: the first one signals (rank 0 may be a learner).
        try comm.politeWait(root: roles.workerRanks[0])
        try comm.allReduce(&sums, op: .sum)
        watchdog?.leave()
        guard rank == 0 else { return }
        let perSeed = (0..<E).map { e in
            (RewardStats(packed: Array(sums[(2 + e * width)..<(2 + e * width + 12)])),
             RewardStats(packed: Array(sums[(2 + e * width + 12)..<(2 + (e + 1) * width)])))
        }
        let ce = sums[1] > 0 ? sums[0] / sums[1] : .nan
        let alpha = context.config.alignmentCoef, beta = context.config.diversityCoef
        var r = MetricsRecord()
        r["step"] = Double(step)
        r.set("kind", "eval")
        r["eval_ce"] = ce
        r["eval_perplexity"] = exp(ce)
        // Means over the sampling seeds, and their standard errors when there are several.
        // With `perSeed`, each seed's value too (`KEY_seedE`), so that a later evaluation can be
        // compared with this one paired over seeds: evaluation e uses the same sampling seed at
        // every step (`Report.pairedChanges`).
        func put(_ key: String, perSeed logSeeds: Bool = false, _ value: (RewardStats, RewardStats) -> Double) {
            let values = perSeed.map(value)
            let m = UpdateCheck.MeanSE(values)
            r[key] = m.mean
            if E > 1 { r[key + "_se"] = m.se }
            if E > 1 && logSeeds {
                for (e, v) in values.enumerated() { r[Report.seedKey(key, e)] = v }
            }
        }
        put("eval_reward_pass1") { s, _ in s.rewardPass1 }
        put("eval_reward_passn") { s, _ in s.rewardPassN }
        put("eval_alignment_pass1") { s, _ in s.alignmentPass1 }
        put("eval_alignment_passn") { s, _ in s.alignmentPassN }
        put("eval_diversity_pass1") { s, _ in s.diversityPass1 }
        // gt − div/2 = ‖φ_gt‖² − L̂_CFM: the feature-matching loss proxy is its negation. Under
        // whitening these are computed on whitened features (as the reference code logs them).
        put("eval_feature_matching_pass1") { s, _ in s.featureMatchingPass1 }
        put("eval_feature_matching_loss") { s, _ in -s.featureMatchingPass1 }
        // On raw features whatever the whitening setting: the unbiased estimate of ‖φ_gt‖² − L_CFM,
        // and the objective the EBFT estimator climbs, α·align − (β/2)·div (issue 11).
        put("eval_alignment_raw_pass1") { _, raw in raw.alignmentPass1 }
        put("eval_feature_matching_raw_pass1", perSeed: true) { _, raw in raw.featureMatchingPass1 }
        put("eval_objective_raw", perSeed: true) { _, raw in alpha * raw.alignmentPass1 - beta / 2 * raw.diversityPass1 }
        r["time_eval"] = Date().timeIntervalSince(t0)
        metrics?.write(r)
        log(String(format: "eval @ step %d: ce %.4f  reward %.4f  alignment %.4f  fm-loss %.4f  raw objective %.4f", step, ce,
                   r["eval_reward_pass1"] ?? .nan, r["eval_alignment_pass1"] ?? .nan, r["eval_feature_matching_loss"] ?? .nan,
                   r["eval_objective_raw"] ?? .nan) + (E > 1 ? String(format: " ± %.4f", r["eval_objective_raw_se"] ?? .nan) : ""))
    }
}
