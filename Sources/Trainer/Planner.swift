import Foundation
import Model
import Rollout

/// Predicts one EBFT step for every learner/worker split of N ranks (docs/results/planner.md):
/// each role's phase times, the bytes each link carries and the step time, from a calibration
/// (`PlanCalibration`: FLOP/s per phase at some core count) and a cluster (`PlanCluster`).
///
/// The step as `Trainer.step` runs it (synchronous, L learners, W workers):
///   workers: their chunks (chunk i → worker i mod W) → sample → features → rewards
///   transfer: every worker sends every learner one message (sequence j = position·n + sample
///             → learner j mod L), `ExperienceWire` bytes
///   learners: backward on their sequences (each chunk they hold a sample of: the prefix once,
///             plus their samples) → all-reduce of the gradient (ring) → clip + AdamW
///             (sharded: reduce-scatter, 1/L of the update, all-gather)
///   broadcast: learner 0 → the workers, the trained parameters (adapters with LoRA)
/// These run one after the other: learners wait for every worker's message, workers wait for
/// the weights. `--async` moves the broadcast before the backward but the step's metrics
/// all-reduce over every rank still ends each step for all of them, so the phases add up the
/// same way. The bucketed all-reduce is counted whole after the backward (Open MPI's
/// non-blocking collectives advance only inside MPI calls, once per block here). Colocated
/// (np 1 or `--colocate`): every rank samples its chunks and trains on them, then the
/// all-reduce over all N, the optimizer; no transfer or broadcast.
public struct Planner: Sendable {
    /// The run: model, geometry, step size, trained parameters.
    public struct Run: Equatable, Sendable {
        public var model: ModelConfig
        public var geometry: StridedGeometry
        public var samples: Int
        public var chunks: Int
        public var criticLayers: Int
        public var trainedParameters: Int
        public var lora: Bool
        public var shardOptimizer: Bool

        public init(model: ModelConfig, geometry: StridedGeometry, samples: Int, chunks: Int, criticLayers: Int,
                    trainedParameters: Int, lora: Bool = false, shardOptimizer: Bool = false) {
            self.model = model
            self.geometry = geometry
            self.samples = samples
            self.chunks = chunks
            self.criticLayers = criticLayers
            self.trainedParameters = trainedParameters
            self.lora = lora
            self.shardOptimizer = shardOptimizer
        }

        /// Bytes of one experience on the wire (`ExperienceWire.encode`): chunk id, sample,
        /// version (20 bytes), six arrays with an 8-byte length each: the chunk (P Int32),
        /// generated tokens and their log-probabilities (K·G each), advantages, alignment,
        /// diversity (K each).
        public var experienceBytes: Double {
            let g = geometry
            return Double(20 + 6 * 8 + 4 * (g.P + 2 * g.K * g.G + 3 * g.K))
        }
    }

    /// The calibrations, by ascending thread count; `calibration` is the one with the most.
    public let calibrations: [PlanCalibration]
    public var calibration: PlanCalibration { calibrations.last! }
    public let cluster: PlanCluster
    public let run: Run

    /// Per-chunk FLOPs: the prefix (chunk) part and one sample's part of each phase.
    let prefix: StepCost
    let perSample: StepCost

    public init(calibration: PlanCalibration, cluster: PlanCluster, run: Run) throws {
        try self.init(calibrations: [calibration], cluster: cluster, run: run)
    }

    /// Several calibrations of one machine at different BLAS thread counts: a rank's rates at
    /// C cores are interpolated linearly between the calibrated counts (through 0 at 0 cores).
    public init(calibrations: [PlanCalibration], cluster: PlanCluster, run: Run) throws {
        guard !calibrations.isEmpty else { throw PlanError.calibration("no calibration given") }
        for c in calibrations { try c.validate() }
        let sorted = calibrations.sorted { $0.threads < $1.threads }
        guard Set(sorted.map(\.threads)).count == sorted.count else {
            throw PlanError.calibration("two calibrations measured the same thread count (\(sorted.map(\.threads)))")
        }
        try cluster.validate()
        guard run.samples >= 1, run.chunks >= 1 else { throw PlanError.input("samples and chunks per step must be at least 1") }
        self.calibrations = sorted
        self.cluster = cluster
        self.run = run
        // StepCost is linear in n: the n = 0 cost is the chunk's, (n = 1) − (n = 0) a sample's.
        let zero = StepCost(model: run.model, geometry: run.geometry, samples: 0, chunks: 1, criticLayers: run.criticLayers,
                            trainedParameters: run.trainedParameters)
        let one = StepCost(model: run.model, geometry: run.geometry, samples: 1, chunks: 1, criticLayers: run.criticLayers,
                           trainedParameters: run.trainedParameters)
        prefix = zero
        var s = one
        s.sampling -= zero.sampling
        s.features -= zero.features
        s.learner -= zero.learner
        perSample = s
    }

    /// A learner/worker split: `learners` of N (the rest workers), or colocated.
    public struct Split: Equatable, Hashable, Sendable, CustomStringConvertible {
        public var learners: Int
        public var colocated: Bool
        public static func colocated(_ n: Int) -> Split { Split(learners: n, colocated: true) }
        public static func split(learners: Int) -> Split { Split(learners: learners, colocated: false) }
        public var description: String { colocated ? "colocated" : "\(learners) learner\(learners == 1 ? "" : "s")" }
    }

    /// Phase times of one role (its slowest rank), seconds.
    public struct RoleTimes: Equatable, Sendable {
        public var phases: [(String, Double)] = []
        public static func == (a: RoleTimes, b: RoleTimes) -> Bool {
            a.phases.map(\.0) == b.phases.map(\.0) && a.phases.map(\.1) == b.phases.map(\.1)
        }
        public subscript(_ name: String) -> Double { phases.first { $0.0 == name }?.1 ?? 0 }
        mutating func set(_ name: String, _ v: Double) {
            if let i = phases.firstIndex(where: { $0.0 == name }) { phases[i].1 = v } else { phases.append((name, v)) }
        }
    }

    /// Bytes one ordered rank pair carries per step.
    public struct Link: Equatable, Sendable {
        public var from: Int
        public var to: Int
        public var bytes: Double
        public var interHost: Bool
    }

    public struct Prediction: Equatable, Sendable {
        public var split: Split
        public var workers: Int
        /// Learner role (or colocated ranks), worker role, and the step's sequence of phases.
        public var learner: RoleTimes
        public var worker: RoleTimes
        /// The step's critical path, phase by phase (they add up to `step`).
        public var path: RoleTimes
        public var step: Double
        public var links: [Link]
        public var interHostBytes: Double { links.filter(\.interHost).reduce(0) { $0 + $1.bytes } }
        public var totalBytes: Double { links.reduce(0) { $0 + $1.bytes } }
    }

    /// Every split this many ranks allows: L = 1…N−1 separate learners, and colocated N (the
    /// only layout at N = 1).
    public var splits: [Split] {
        let n = cluster.ranks
        return (n > 1 ? (1..<n).map { Split.split(learners: $0) } : []) + [.colocated(n)]
    }

    /// A rank's rates computing on some number of cores.
    public struct Rates: Equatable, Sendable {
        public var sample, features, backward: Double  // FLOP/s
        public var optimizer: Double  // bytes/s
        public var reward: Double  // chunks/s
    }

    /// The rates at `cores` cores: linear between the calibrated thread counts and from 0 at 0
    /// cores up to the lowest; no gain assumed beyond the highest.
    public func rates(cores: Double) -> Rates {
        func at(_ rate: (PlanCalibration) -> Double) -> Double {
            var t0 = 0.0, r0 = 0.0
            for c in calibrations {
                let t = Double(c.threads), r = rate(c)
                if cores <= t { return r0 + (r - r0) * (cores - t0) / (t - t0) }
                (t0, r0) = (t, r)
            }
            return r0
        }
        return Rates(sample: at(\.sampleRate), features: at(\.featuresRate), backward: at(\.backwardRate),
                     optimizer: at(\.optimizerRate), reward: at { 1 / max($0.rewardSecondsPerChunk, 1e-12) })
    }

    /// Chunks of worker w (index among W workers): positions i with i mod W = w.
    func chunks(worker w: Int, of W: Int) -> Int { (0..<run.chunks).filter { $0 % W == w }.count }

    /// One worker's rollout phases on `k` chunks at rates `r`.
    func rollout(chunks k: Int, rates r: Rates) -> [(String, Double)] {
        let kD = Double(k), n = Double(run.samples)
        return [("sample", kD * (prefix.sampling + n * perSample.sampling) / r.sample),
                ("features", kD * (prefix.features + n * perSample.features) / r.features),
                ("reward", kD / r.reward)]
    }

    /// Learner FLOPs for a set of (chunk position → samples held).
    func learnerFLOPs(_ held: [Int: Int]) -> Double {
        held.values.reduce(0) { $0 + ($1 > 0 ? prefix.learner + Double($1) * perSample.learner : 0) }
    }

    var gradientBytes: Double { 4 * Double(run.trainedParameters) }

    public func predict(_ split: Split) throws -> Prediction {
        let N = cluster.ranks
        let L = split.learners
        guard L >= 1 else { throw PlanError.input("a split needs at least 1 learner") }
        if split.colocated {
            guard L == N else { throw PlanError.input("colocated runs make all \(N) ranks learners") }
        } else {
            guard L < N else { throw PlanError.input("\(L) learners leave no worker among \(N) ranks") }
        }
        let W = split.colocated ? N : N - L
        let learners = Array(0..<L)
        let workers = split.colocated ? learners : Array(L..<N)
        var links: [Int: [Int: Double]] = [:]
        func carry(_ a: Int, _ b: Int, _ bytes: Double) { if a != b { links[a, default: [:]][b, default: 0] += bytes } }

        // Rollouts: the slowest worker (its phases). Colocated ranks do theirs then their backward.
        var worker = RoleTimes()
        var rolloutOf: [Int: Double] = [:]
        for (w, rank) in workers.enumerated() {
            let phases = rollout(chunks: chunks(worker: w, of: W), rates: rates(cores: cluster.cores(of: rank, active: workers)))
            let total = phases.reduce(0) { $0 + $1.1 }
            rolloutOf[rank] = total
            if worker.phases.isEmpty || total > worker.phases.reduce(0, { $0 + $1.1 }) { worker.phases = phases }
        }

        // Which samples each learner holds, per chunk position.
        var held = [[Int: Int]](repeating: [:], count: L)
        for p in 0..<run.chunks {
            for s in 0..<run.samples {
                let l = split.colocated ? p % N : (p * run.samples + s) % L
                held[l][p, default: 0] += 1
            }
        }

        // Transfer (separate roles): one message per worker and learner.
        var transfer = 0.0
        if !split.colocated {
            var messages: [PlanCluster.Message] = []
            for (w, wr) in workers.enumerated() {
                var count = [Int](repeating: 0, count: L)
                for p in 0..<run.chunks where p % W == w {
                    for s in 0..<run.samples { count[(p * run.samples + s) % L] += 1 }
                }
                for l in 0..<L {
                    let bytes = 8 + Double(count[l]) * run.experienceBytes
                    messages.append(.init(from: wr, to: learners[l], bytes: bytes))
                    carry(wr, learners[l], bytes)
                }
            }
            transfer = cluster.concurrentTime(messages)
        }

        // Backward: the slowest learner; colocated ranks add their rollout first.
        var backward = 0.0, slowestColocated = 0.0, colocatedRollout = 0.0
        for l in 0..<L {
            let t = learnerFLOPs(held[l]) / rates(cores: cluster.cores(of: l, active: learners)).backward
            if split.colocated {
                let both = (rolloutOf[l] ?? 0) + t
                if both > slowestColocated { slowestColocated = both; backward = t; colocatedRollout = rolloutOf[l] ?? 0 }
            } else {
                backward = max(backward, t)
            }
        }

        // Gradient reduction and the update.
        let G = gradientBytes
        var allreduce = 0.0, optimizer = 0.0
        let optimizerBytes = 7 * G
        if run.shardOptimizer && L > 1 && !run.lora {
            let shard = (Double(run.trainedParameters) / Double(L)).rounded(.up) * 28
            allreduce = cluster.halfRingTime(learners, bytes: G) + cluster.halfRingTime(learners, bytes: G)
            optimizer = learners.map { shard / rates(cores: cluster.cores(of: $0, active: learners)).optimizer }.max()!
            ringLinks(learners, bytes: 2 * G * Double(L - 1) / Double(L), carry)
        } else {
            allreduce = cluster.allReduceTime(learners, bytes: G)
            optimizer = learners.map { optimizerBytes / rates(cores: cluster.cores(of: $0, active: learners)).optimizer }.max()!
            if L > 1 { ringLinks(learners, bytes: 2 * G * Double(L - 1) / Double(L), carry) }
        }

        // Weights to the workers.
        var broadcast = 0.0
        if !split.colocated {
            let group = [0] + workers
            broadcast = cluster.broadcastTime(group, bytes: G)
            for i in 1..<group.count { carry(group[i - 1], group[i], G) }
        }

        var learner = RoleTimes()
        learner.phases = [("transfer", transfer), ("backward", backward), ("allreduce", allreduce), ("optimizer", optimizer),
                          ("broadcast", broadcast)]
        var path = RoleTimes()
        if split.colocated {
            // The slowest rank's rollout + backward (they run independently until the all-reduce).
            path.phases = [("rollout", colocatedRollout), ("backward", backward), ("allreduce", allreduce),
                           ("optimizer", optimizer), ("other", calibration.other)]
            learner.phases = [("backward", backward), ("allreduce", allreduce), ("optimizer", optimizer)]
        } else {
            path.phases = [("rollout", worker.phases.reduce(0) { $0 + $1.1 }), ("transfer", transfer), ("backward", backward),
                           ("allreduce", allreduce), ("optimizer", optimizer), ("broadcast", broadcast),
                           ("other", calibration.other)]
        }
        let step = path.phases.reduce(0) { $0 + $1.1 }
        var flat: [Link] = []
        for (a, row) in links.sorted(by: { $0.key < $1.key }) {
            for (b, bytes) in row.sorted(by: { $0.key < $1.key }) {
                flat.append(Link(from: a, to: b, bytes: bytes, interHost: !cluster.sameHost(a, b)))
            }
        }
        return Prediction(split: split, workers: split.colocated ? 0 : W, learner: learner, worker: worker, path: path,
                          step: step, links: flat)
    }

    /// Ring links of `group` carrying `bytes` each.
    func ringLinks(_ group: [Int], bytes: Double, _ carry: (Int, Int, Double) -> Void) {
        guard group.count > 1 else { return }
        for i in group.indices { carry(group[i], group[(i + 1) % group.count], bytes) }
    }

    /// Every split's prediction, in `splits` order.
    public func predictAll() throws -> [Prediction] { try splits.map(predict) }

    /// The fastest of `predictions` (the first of equal ones), optionally among separate-role
    /// splits only.
    public static func fastest(_ predictions: [Prediction], separateRolesOnly: Bool = false) -> Prediction? {
        var best: Prediction?
        for p in predictions where !(separateRolesOnly && p.split.colocated && p.split.learners > 1) {
            if best == nil || p.step < best!.step { best = p }
        }
        return best
    }
}
