import XCTest
@testable import Learner
@testable import Model
@testable import Rollout

/// The sign of the EBFT update: a few REINFORCE steps on a fixed chunk raise the expected
/// alignment reward of the policy's own rollouts (tiny random model, frozen random critic).
final class EBFTStepTests: XCTestCase {
    func testStepsRaiseExpectedAlignment() throws {
        let params = ParameterStore(config: .tiny(vocabSize: 23))
        params.randomize(seed: 3, std: 0.2)
        let policy = Transformer(parameters: params)
        let critic = FeatureNetwork(model: Transformer(parameters: params.clone()))
        let g = try StridedGeometry(P: 16, c: 4, G: 4, s: 4)
        var rng = SplitMix64(seed: 9)
        let chunk = (0..<16).map { _ in Int32(rng.nextInt(below: 23)) }
        let rewards = RewardOptions(alpha: 1, beta: 0, whitening: false)

        func expectedAlignment() -> Double {
            var stats = RewardStats()
            for seed in 1000..<1012 {
                let s = RolloutSettings(geometry: g, samples: 4, sampling: SamplingOptions(temperature: 1, seed: UInt64(seed)),
                                        rewards: rewards)
                let out = RolloutWorker(policy: policy, critic: critic, settings: s).run(chunks: [(0, chunk)], policyVersion: 0)
                stats.merge(out.stats)
            }
            return stats.alignmentPass1
        }

        let before = expectedAlignment()
        let learner = PolicyLearner(model: policy, geometry: g, temperature: 1, ceCoef: 0)
        var opt = PolicyOptimizer(parameterCount: params.count, adam: AdamWConfig(),
                                  schedule: .constant(peak: 3e-3), maxGradNorm: 1)
        for step in 0..<12 {
            let s = RolloutSettings(geometry: g, samples: 4, sampling: SamplingOptions(temperature: 1, seed: UInt64(step)),
                                    rewards: rewards)
            let out = RolloutWorker(policy: policy, critic: critic, settings: s)
                .run(chunks: [(0, chunk), (1, chunk)], policyVersion: Int64(step))
            let stats = learner.accumulate(out.experiences, totalSequences: out.experiences.count)
            XCTAssertLessThan(stats.maxLogProbDrift, 1e-4, "rollouts must be on-policy")
            let r = opt.step(params: params, grads: learner.grads)
            XCTAssertTrue(r.applied)
            XCTAssertGreaterThan(r.gradNorm, 0)
        }
        let after = expectedAlignment()
        print("expected alignment before \(before), after \(after)")
        XCTAssertGreaterThan(after, before + 0.02, "expected alignment \(before) → \(after)")
    }
}
