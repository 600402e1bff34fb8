import Foundation
import Model

/// Everything a rollout worker needs to turn chunks into experiences.
public struct RolloutSettings: Equatable, Sendable {
    public var geometry: StridedGeometry
    public var samples: Int
    public var sampling: SamplingOptions
    public var rewards: RewardOptions
    public var pooling: Pooling

    public init(geometry: StridedGeometry, samples: Int, sampling: SamplingOptions, rewards: RewardOptions,
                pooling: Pooling = .lastToken) {
        self.geometry = geometry
        self.samples = samples
        self.sampling = sampling
        self.rewards = rewards
        self.pooling = pooling
    }
}

/// Seconds spent per phase, keyed by phase name ("sample", "features", "reward", …).
public struct PhaseTimes: Equatable, Sendable {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var order: [String] = []
    public init() {}

    public mutating func add(_ phase: String, _ s: Double) {
        if seconds[phase] == nil { order.append(phase) }
        seconds[phase, default: 0] += s
    }

    public mutating func merge(_ o: PhaseTimes) { for p in o.order { add(p, o.seconds[p]!) } }

    /// Runs `body`, adding its wall time to `phase`.
    public mutating func time<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        add(phase, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        return r
    }
}

/// Sampling with the current policy, features with the frozen critic, rewards and RLOO
/// advantages: chunks in, experiences out (one per chunk and sample).
public final class RolloutWorker {
    public let policy: Transformer
    public let critic: FeatureNetwork
    public let settings: RolloutSettings

    public init(policy: Transformer, critic: FeatureNetwork, settings: RolloutSettings) {
        self.policy = policy
        self.critic = critic
        self.settings = settings
    }

    public struct Output: Sendable {
        public var experiences: [Experience]
        public var stats: RewardStats
        /// The same statistics from the raw (unwhitened) features: with whitening off, equal to
        /// `stats`. Their feature-matching proxy `align − div/2` is the unbiased estimate of
        /// `‖φ_gt‖² − L_CFM` (spec §2.2), which the whitened one is not.
        public var rawStats: RewardStats
        public var times: PhaseTimes
        public var generatedTokens: Int
    }

    /// `chunks`: (global chunk id, P tokens). `policyVersion`: the optimizer step of the weights.
    public func run(chunks: [(id: Int, tokens: [Int32])], policyVersion: Int64) -> Output {
        let s = settings, g = s.geometry, n = s.samples
        let sampler = StridedSampler(model: policy, geometry: g, samples: n, options: s.sampling)
        var out = Output(experiences: [], stats: RewardStats(), rawStats: RewardStats(), times: PhaseTimes(), generatedTokens: 0)
        // All chunks' decode steps batched together (`StridedSampler.maxBatchStreams`).
        let sampled = out.times.time("sample") { sampler.sample(chunks: chunks) }
        for ((id, x), rollouts) in zip(chunks, sampled) {
            let f = out.times.time("features") { critic.features(chunk: x, rollouts: rollouts, geometry: g) }
            let group = out.times.time("reward") {
                Rewards.group(generated: f.generated, groundTruth: f.groundTruth, n: n, K: g.K, D: critic.width,
                              options: s.rewards, jitterSeed: CounterRNG.derive(s.sampling.seed, .whiteningJitter),
                              groupId: UInt64(id))
            }
            out.stats.add(group, whiteningRequested: s.rewards.whitening)
            if s.rewards.whitening {
                var raw = s.rewards
                raw.whitening = false
                let r = out.times.time("reward") {
                    Rewards.group(generated: f.generated, groundTruth: f.groundTruth, n: n, K: g.K, D: critic.width, options: raw)
                }
                out.rawStats.add(r, whiteningRequested: false)
            } else {
                out.rawStats.add(group, whiteningRequested: false)
            }
            for i in 0..<n {
                out.experiences.append(Experience(
                    chunkID: Int64(id), sample: Int32(i), chunk: x, generated: rollouts.tokens[i],
                    sampleLogProbs: rollouts.logProbs[i], advantages: group.advantages(sample: i),
                    alignment: group.blocks.map { Float($0.alignment[i]) },
                    diversity: group.blocks.map { Float($0.diversity[i]) }, policyVersion: policyVersion))
            }
            out.generatedTokens += n * g.G * g.K
        }
        return out
    }
}
