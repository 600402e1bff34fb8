import Evaluation
import Foundation
import Distributed
import Learner
import Model
import Rollout

/// The synchronous, on-policy EBFT step loop over MPI ranks (spec §8, issue 5):
///
///     learner 0 ──weights (flat broadcast)──▶ rollout workers
///     workers: their share of the step's chunks → sample → features → rewards → Experience
///              ──point-to-point──▶ learners (sequence j of the step goes to learner j mod L)
///     learners: teacher-forced forward/backward → all-reduce(grads) → clip → AdamW
///     all: metrics summed to rank 0 → progress + JSON lines
///
/// Colocated (N = 1, or `colocate`): every rank samples its share and trains on its own
/// experiences; no weight broadcast or experience messages, only the gradient all-reduce.
/// Sampling is keyed by (seed, chunk, sample, block, token) and experiences are accumulated in
/// step order, so a run gives the same tokens for any N and the same weights up to the order of
/// floating-point reductions.
public final class Trainer {
    public let context: RunContext
    public let roles: RoleAssignment
    let comm: Communicator
    let groups: RoleCommunicators
    /// Rank 0 plus every rollout worker (non-colocated only): the weight broadcast's group.
    let sync: Communicator?
    let rank: Int
    let role: Role
    public private(set) var optimizer: PolicyOptimizer?
    /// This learner's optimizer shard (`shard-optimizer` with several learners), else nil.
    var shard: OptimizerShard?
    let learner: PolicyLearner?
    /// Rank 0's metrics file, opened by `run()` (after a resume has trimmed it).
    var metrics: JSONLWriter?
    let progress: ProgressBar?
    let log: (String) -> Void
    let watchdog: StallWatchdog?
    /// Steps between learner-replica checksum comparisons.
    public var checksumEvery = 50
    public private(set) var stepsDone = 0
    /// The gradient signal-to-noise tracker (rank 0) and its estimate after the last step.
    var noiseTracker: GradientNoise?
    var noiseEstimate: GradientNoise.Estimate?
    /// Bytes of the last weight broadcast (sum over the receiving workers; 0 when colocated).
    var lastSyncBytes = 0.0
    /// Model FLOPs of the training steps so far (`flops_total`; the same on every rank).
    public private(set) var flopsTotal = 0.0
    /// The last step the loop may run: `context.totalSteps`, or unbounded for RLVR with a
    /// `flop-budget` and no `steps` (the budget ends it).
    let endStep: Int

    public static let phases = ["broadcast", "sample", "features", "reward", "transfer", "backward", "allreduce",
                                "optimizer", "eval"]

    /// The RLVR baseline's questions and verifier (method rlvr), and its question sampler.
    let rlvr: RLVRTask?
    let rlvrSampler: ChunkSampler?
    /// Downstream evaluation data, loaded at the first downstream evaluation.
    var downstream: DownstreamData?

    /// Checkpoint to continue from (a run directory or a checkpoint directory). The run writes to
    /// `config.runDir` whatever run the checkpoint came from (the caller points it there).
    let resume: String?
    /// Stop (with a checkpoint) once this many steps are done, even if the run is longer.
    let stopAfter: Int?
    /// Rank 0's watch for loss spikes, absurd CE and dead gradients (`watchDivergence`).
    var divergence: DivergenceDetector
    /// The model's tokenizer files and generation_config.json, written into every checkpoint.
    var checkpointSideFiles: [HFSideFile]?

    public init(context: RunContext, comm: Communicator, showProgress: Bool = true, watchdog: StallWatchdog? = nil,
                resume: String? = nil, stopAfter: Int? = nil, log: @escaping (String) -> Void = { _ in }) throws {
        self.resume = resume
        self.stopAfter = stopAfter
        let c = context.config
        self.context = context
        self.comm = comm
        rank = comm.rank
        divergence = DivergenceDetector(maxBadSteps: c.maxBadSteps, window: c.spikeWindow, spikeZ: c.spikeZ,
                                        vocabularySize: context.policy.config.vocabSize)
        if c.method == "rlvr" && c.steps == 0 && c.flopBudget == 0 {
            throw ConfigError.invalid(field: "steps", reason: "method rlvr needs an explicit number of steps (or a flop-budget)")
        }
        roles = try RoleAssignment(worldSize: comm.size, learners: c.runsColocated ? nil : c.learners,
                                   colocate: c.runsColocated)
        role = roles.role(of: rank)
        groups = try roles.split(comm)
        sync = roles.isColocated ? nil : try comm.split(color: (rank == 0 || role.isWorker) ? 0 : nil, key: rank)
        if role.isWorker && context.critic == nil {
            throw TrainerError.data("rank \(rank) samples but its run context has no feature network")
        }
        if c.method == "rlvr" {
            let task = try RLVRTask.load(config: c, tokenizer: context.tokenizer, isDecider: rank == 0) { [comm] kept in
                let n = try comm.broadcast(kept.count, root: 0)
                if comm.rank != 0 { kept = [Int32](repeating: 0, count: n) }
                if n > 0 { try comm.broadcast(&kept, root: 0) }
            }
            rlvr = task
            rlvrSampler = try ChunkSampler(chunkCount: task.count, batchSize: min(c.rlvrQuestions, task.count), seed: c.seed)
            if rank == 0 { log("rlvr: \(task.count) training questions with a verifier, \(c.rlvrQuestions) per step") }
            if c.flopBudget > 0 {
                let steps = Self.rlvrBudgetSteps(config: c, model: context.policy.config, task: task)
                context.totalSteps = c.steps > 0 ? min(c.steps, steps.atLeast) : steps.atLeast
                endStep = c.steps > 0 ? c.steps : .max
                if rank == 0 {
                    log(String(format: "flop-budget %.3g: at least %d RLVR steps (at most %.4g model FLOPs each); warm-up "
                               + "counted on those", c.flopBudget, steps.atLeast, steps.most))
                }
            } else {
                endStep = context.totalSteps
            }
        } else {
            rlvr = nil
            rlvrSampler = nil
            endStep = context.totalSteps
        }
        if role.isLearner {
            if c.shardOptimizer, let lc = groups.learners, lc.size > 1 {
                shard = OptimizerShard(count: context.policy.parameters.count, learners: lc.size, index: lc.rank)
                if rank == 0 { log("optimizer state sharded over \(lc.size) learners: \(shard!.layout.counts) parameters each") }
            }
            optimizer = context.makeOptimizer(count: shard?.range.count)
            let l = PolicyLearner(model: context.policy, geometry: context.geometry,
                                  temperature: Float(c.temperature), ceCoef: Float(c.ceCoef))
            l.sharedPrefix = c.sharedPrefix
            l.maxTokensPerBatch = c.microBatchTokens
            learner = l
        } else {
            optimizer = nil
            learner = nil
        }
        if rank == 0 {
            try FileManager.default.createDirectory(atPath: c.runDir, withIntermediateDirectories: true)
            try c.yaml().write(toFile: c.runDir + "/config.yaml", atomically: true, encoding: .utf8)
            if resume == nil { try? FileManager.default.removeItem(atPath: c.runDir + "/metrics.jsonl") }
            progress = showProgress ? ProgressBar(total: context.totalSteps) : nil
        } else {
            progress = nil
        }
        self.watchdog = watchdog
        self.log = rank == 0 ? log : { _ in }
    }

    var workerIndex: Int? { roles.workerRanks.firstIndex(of: rank) }

    /// One-step-asynchronous mode (`async`, not colocated): the learners broadcast θ_t as soon
    /// as they have step t's experiences, so the workers sample step t+1 with θ_t while the
    /// learners compute θ_{t+1}. Step t+1's rollouts are then one update stale.
    var asyncMode: Bool { context.config.async && !roles.isColocated }

    /// Runs steps until `totalSteps`, evaluating every `evalEvery` steps (and before the first)
    /// and downstream every `evalDownEvery` steps. `evalOnly`: only the evaluations of the
    /// starting weights (step 0), no training step (the "base" row of a comparison).
    public func run(evalOnly: Bool = false) throws {
        let c = context.config
        if let resume { try restore(from: resume) }
        if rank == 0 {
            // The TensorBoard event file mirrors metrics.jsonl (its carried-over records first).
            let m = try JSONLWriter(path: c.runDir + "/metrics.jsonl")
            m.tensorboard = try TensorBoardWriter.mirroring(metricsFile: m.path, directory: c.runDir)
            metrics = m
        }
        if rank == 0, resume != nil, let m = metrics { replayDivergence(metricsFile: m.path) }
        if evalOnly {
            var times = PhaseTimes(), bytes = 0.0
            try syncWeights(step: stepsDone, times: &times, bytes: &bytes)
            try evaluate(step: stepsDone)
            try evaluateDownstream(step: stepsDone)
            try reportPeakMemory()
            watchdog?.leave()
            return
        }
        var times = PhaseTimes(), bytes = 0.0
        try syncWeights(step: stepsDone, times: &times, bytes: &bytes)
        let end = min(endStep, stopAfter ?? .max)
        while stepsDone < end && !budgetSpent {
            let t = stepsDone
            if c.evalEvery > 0 && t % c.evalEvery == 0 { try evaluate(step: t) }
            if downstreamDue(step: t) { try evaluateDownstream(step: t) }
            var r = try step()
            let stop = try watchDivergence(&r)
            if let r {
                metrics?.write(r)
                progress?.update(step: t + 1, fields: [("reward", r["reward"] ?? .nan), ("align", r["alignment"] ?? .nan),
                                                       ("ce", r["ce"] ?? .nan)], note: r.strings["anomaly"].map {
                                    "BAD STEP: \($0) (\(Int(r["bad_steps"] ?? 0)) in a row)" })
            }
            if let stop { throw TrainerError.diverged(stop) }
            if (c.saveEvery > 0 && stepsDone % c.saveEvery == 0) || stepsDone == end || budgetSpent { try save() }
        }
        // The end of training: all its steps, or the budget spent (not an early `--stop-after`).
        let finished = stepsDone == endStep || budgetSpent
        if c.evalEvery > 0 && finished { try evaluate(step: stepsDone) }
        if c.evalDownEvery > 0 && finished && (stepsDone > 0 || c.evalDownStart) {
            try evaluateDownstream(step: stepsDone)
        }
        try reportPeakMemory()
        watchdog?.leave()
    }

    /// Every rank's peak resident memory (VmHWM) at the end of the run, gathered to rank 0:
    /// logged, and written as a `memory` record (`peak_rss_mb_rank<i>`, `peak_rss_mb_max`).
    func reportPeakMemory() throws {
        watchdog?.enter("peak memory", step: stepsDone, waitingOn: Array(0..<comm.size))
        let all = try comm.allGather([PeakMemory.residentMiB()])
        guard rank == 0 else { return }
        var r = MetricsRecord()
        r["step"] = Double(stepsDone)
        r.set("kind", "memory")
        r["peak_rss_mb_max"] = all.filter { !$0.isNaN }.max() ?? .nan
        for (i, v) in all.enumerated() { r["peak_rss_mb_rank\(i)"] = v }
        metrics?.write(r)
        log("peak RSS (MiB): " + all.enumerated().map { "rank \($0.offset) (\(roles.role(of: $0.offset))) "
            + String(format: "%.1f", $0.element) }.joined(separator: ", "))
    }

    // MARK: checkpoints

    /// Learner 0 writes weights, Adam moments, step and config (atomically, checksummed).
    func save() throws {
        let gathered = try gatherShardedMoments()
        guard rank == 0, let optimizer else { return }
        watchdog?.enter("checkpoint", step: stepsDone)
        let c = context.config
        let state = CheckpointState(stepsDone: stepsDone, adamStep: optimizer.adam.step, seed: c.seed,
                                    worldSize: comm.size, learners: roles.learnerRanks.count, colocate: roles.isColocated,
                                    configYAML: try c.yaml(), info: ["model": context.modelPath])
        let params = context.policy.parameters
        if checkpointSideFiles == nil {
            do {
                checkpointSideFiles = try TokenizerExport.sideFiles(runModel: context.modelPath,
                                                                    contextLength: params.contextLength ?? 8192)
            } catch {
                // Not worth losing the run over: the weights are still saved; export needs --tokenizer.
                log("warning: checkpoints are written without tokenizer files: \(error)")
                checkpointSideFiles = []
            }
        }
        var weights = Checkpoint.Weights.full(params)
        if let lora = context.lora {
            // The base model by absolute path (a random: spec as it is): the adapter's meaning.
            let m = context.modelPath
            let base = RandomModelSpec.matches(m) ? m : URL(fileURLWithPath: m).standardizedFileURL.path
            weights = .lora(lora, baseModel: base)
        }
        let dir = try Checkpoint.save(runDir: c.runDir, weights: weights, optimizer: gathered ?? optimizer.adam,
                                      state: state, sideFiles: checkpointSideFiles ?? [])
        log("checkpoint: \(dir)")
        watchdog?.leave()
    }

    /// Learner 0 loads the checkpoint and hands weights and Adam state to the other learners;
    /// the workers get the weights with the first broadcast. This run's metrics.jsonl becomes
    /// the checkpoint's run's records up to its step (later ones will be written again); the
    /// checkpoint's run is only read when it is another directory.
    func restore(from path: String) throws {
        watchdog?.enter("resume", step: 0, waitingOn: rank == 0 ? [] : [0])
        var steps = 0
        var source: String?
        if rank == 0, var opt = optimizer {
            let found = try Checkpoint.resolve(resume: path)
            for m in found.messages { log(m) }
            let state: CheckpointState
            if let lora = context.lora {
                state = try Checkpoint.load(found.directory, into: lora, optimizer: &opt.adam)
            } else {
                state = try Checkpoint.load(found.directory, into: context.policy.parameters, optimizer: &opt.adam)
            }
            optimizer = opt
            steps = state.stepsDone
            source = found.runDirectory
            log("resumed from \(found.directory) after step \(steps); writing to \(context.config.runDir)")
        }
        steps = try comm.broadcast(steps, root: 0)
        if let shard, let lc = groups.learners {
            optimizer = try scatterShardedState(shard: shard, comm: lc)
        } else if let lc = groups.learners, lc.size > 1, var opt = optimizer {
            let p = context.trainable
            try lc.broadcast(p.pointer, count: p.count, root: 0)
            try opt.adam.m.withUnsafeMutableBufferPointer { try lc.broadcast($0, root: 0) }
            try opt.adam.v.withUnsafeMutableBufferPointer { try lc.broadcast($0, root: 0) }
            opt.adam.step = try lc.broadcast(opt.adam.step, root: 0)
            optimizer = opt
        }
        stepsDone = steps
        var flops = 0.0
        if rank == 0 {
            try carryMetrics(from: source, after: steps)
            flops = carriedFLOPs(after: steps)
        }
        flopsTotal = try comm.broadcast(flops, root: 0)
        watchdog?.leave()
    }

    // MARK: the step

    /// One optimizer step. Returns the step's metrics on rank 0, nil elsewhere.
    @discardableResult
    public func step() throws -> MetricsRecord? {
        let t = stepsDone
        let c = context.config
        let start = Date()
        noiseEstimate = nil
        var times = PhaseTimes()
        var bytesSent = 0.0, bytesReceived = 0.0

        // Rollouts on this rank's share of the step's chunks.
        let chunks = context.chunks(step: t)
        let position = Dictionary(uniqueKeysWithValues: chunks.enumerated().map { (Int64($0.element.id), $0.offset) })
        var mine: [Experience] = []
        var stats = RewardStats()
        var generated = 0
        let sft = c.method == "sft"
        var rl = RLVRRollout()
        if let task = rlvr, let sampler = rlvrSampler, let w = workerIndex {
            watchdog?.enter("rollout", step: t)
            let W = roles.workerRanks.count
            let questions = sampler.indices(step: t).enumerated().filter { $0.offset % W == w }.map(\.element)
            rl = try rlvrRollout(task: task, questions: questions, step: t, times: &times)
            generated = rl.completions.reduce(0) { $0 + $1.count }
        } else if sft, let w = workerIndex {
            // SFT: every rank trains on its share of the chunks; nothing is sampled.
            let W = roles.workerRanks.count
            mine = chunks.enumerated().filter { $0.offset % W == w }.map {
                Experience(chunkID: Int64($0.element.id), sample: 0, chunk: $0.element.tokens, generated: [],
                           sampleLogProbs: [], advantages: [], alignment: [], diversity: [], policyVersion: Int64(t))
            }
        } else if role.isWorker, let w = workerIndex, let critic = context.critic {
            watchdog?.enter("rollout", step: t)
            let W = roles.workerRanks.count
            let share = chunks.enumerated().filter { $0.offset % W == w }.map { $0.element }
            let out = RolloutWorker(policy: context.policy, critic: critic, settings: context.rolloutSettings)
                .run(chunks: share, policyVersion: Int64(t))
            times.merge(out.times)
            stats = out.stats
            generated = out.generatedTokens
            mine = out.experiences
        }

        // Experiences to learners.
        var batch: [Experience] = []
        if roles.isColocated {
            batch = mine
        } else {
            try times.time("transfer") {
                if role.isWorker { bytesSent += try sendExperiences(mine, step: t, position: position) }
                if role.isLearner {
                    let (received, bytes) = try receiveExperiences(step: t)
                    batch = received
                    bytesReceived += bytes
                }
            }
        }

        // Async: hand the workers the current weights now; they sample the next step with them
        // while the learners work on this one.
        if asyncMode { try syncWeights(step: t, times: &times, bytes: &bytesSent) }

        // Gradients and the update.
        var ls = LearnerStats()
        var opt: PolicyOptimizer.Result?
        if role.isLearner, let learner, var optimizer {
            // The local copy must own Adam's moments alone: with `self.optimizer` still holding
            // them, the update's first write would copy m and v (2 × 4 bytes per parameter, into
            // freshly faulted pages) before touching them. It is handed back however the block ends.
            self.optimizer = nil
            defer { self.optimizer = optimizer }
            batch.sort { (position[$0.chunkID] ?? 0, $0.sample) < (position[$1.chunkID] ?? 0, $1.sample) }
            watchdog?.enter("backward", step: t)
            if let shard, let lc = groups.learners {
                ls = try shardedBackward(learner, batch, rl, chunks: chunks.count, shard: shard, comm: lc, step: t,
                                         times: &times, bytes: &bytesSent)
            } else if let lc = groups.learners, lc.size > 1, learner.loraGrads != nil {
                // LoRA: the adapters' gradient is small; one all-reduce after the backward.
                ls = times.time("backward") { learn(learner, batch, rl, chunks: chunks.count, layerReady: nil) }
                watchdog?.enter("gradient all-reduce", step: t, waitingOn: roles.learnerRanks)
                let g = learner.gradient
                try times.time("allreduce") { try lc.allReduce(g.pointer, count: g.count, op: .sum) }
                bytesSent += Double(g.count * 4)
            } else if let lc = groups.learners, lc.size > 1 {
                // Bucketed all-reduce: each block's gradient starts reducing as soon as the
                // backward has finished it; the rest (embedding, final norm) after the backward.
                let reducer = BucketedReduction.allReduce(comm: lc, grads: learner.grads)
                ls = try times.time("backward") {
                    let s = learn(learner, batch, rl, chunks: chunks.count) { l in reducer.blockReady(l) }
                    try reducer.failure.map { throw $0 }
                    return s
                }
                watchdog?.enter("gradient all-reduce", step: t, waitingOn: roles.learnerRanks)
                try times.time("allreduce") { try reducer.finish() }
                bytesSent += Double(learner.grads.count * 4)
            } else {
                ls = times.time("backward") { learn(learner, batch, rl, chunks: chunks.count, layerReady: nil) }
            }
            watchdog?.enter("optimizer", step: t)
            if let shard, let lc = groups.learners {
                opt = try shardedUpdate(&optimizer, grads: learner.grads, shard: shard, comm: lc, step: t, times: &times,
                                        bytes: &bytesSent)
            } else {
                opt = times.time("optimizer") {
                    optimizer.step(params: context.trainable.pointer, grads: learner.gradient.pointer)
                }
            }
            if rank == 0, let o = opt, o.applied {
                noiseEstimate = gradientNoise(optimizer, o, chunks: chunks.count)
            }
            // A non-finite gradient skipped the update; `watchDivergence` stops every rank.
        }
        stepsDone = t + 1
        // Synchronous: the new weights go to the workers now, so the next step sees them.
        if !asyncMode { try syncWeights(step: stepsDone, times: &times, bytes: &bytesSent) }
        if role.isLearner && (stepsDone % checksumEvery == 0 || stepsDone == context.totalSteps) {
            try verifyReplicas(step: stepsDone)
        }

        // Metrics, summed (and maxed) over the world.
        watchdog?.enter("metrics", step: t, waitingOn: Array(0..<comm.size))
        try comm.politeWait(root: 0)
        let adv = rlvr != nil ? rl.advantages.map(Double.init) : mine.flatMap(\.advantages).map(Double.init)
        var sums = stats.packed + ls.packed
            + [Double(generated), bytesSent, bytesReceived, adv.map(abs).reduce(0, +), Double(adv.count)]
            + [rl.rewardSum, Double(rl.rewards.count), rl.bestSum, Double(rl.questions), rl.stopped, rlvrFLOPs(rl)]
        try comm.allReduce(&sums, op: .sum)
        // Every rank counts the step's FLOPs alike (RLVR's from the ranks' rollouts, summed).
        let stepFLOPs = context.stepFLOPs(chunks: chunks.count) ?? sums[sums.count - 1]
        flopsTotal += stepFLOPs
        let rss = PeakMemory.residentMiB()
        var maxes: [Double] = [ls.maxLogProbDrift, adv.max() ?? -.infinity, -(adv.min() ?? .infinity), rss.isNaN ? 0 : rss]
        try comm.allReduce(&maxes, op: .max)
        let allTimes = try comm.allGather(Self.phases.map { times.seconds[$0] ?? 0 })
        watchdog?.leave()
        guard rank == 0, let o = opt else { return nil }

        let s = RewardStats(packed: Array(sums[0..<12]))
        let l = LearnerStats(packed: Array(sums[12..<17]))
        let tail = Array(sums[17...])
        var r = MetricsRecord()
        r["step"] = Double(stepsDone)
        r.set("kind", "train")
        r.set("method", c.method)
        if rlvr != nil {
            r["reward"] = tail[6] > 0 ? tail[5] / tail[6] : .nan
            r["reward_passn"] = tail[8] > 0 ? tail[7] / tail[8] : .nan
            r["completions_stopped"] = tail[6] > 0 ? tail[9] / tail[6] : .nan
            r["advantage_abs_mean"] = tail[4] > 0 ? tail[3] / tail[4] : 0
            r["advantage_max"] = maxes[1]
            r["advantage_min"] = -maxes[2]
        } else if !sft {
            r["reward"] = s.rewardPass1
            r["alignment"] = s.alignmentPass1
            r["diversity"] = s.diversityPass1
            r["feature_matching"] = s.featureMatchingPass1
            r["reward_passn"] = s.rewardPassN
            r["advantage_abs_mean"] = tail[4] > 0 ? tail[3] / tail[4] : 0
            r["advantage_max"] = maxes[1]
            r["advantage_min"] = -maxes[2]
            r["logp_drift"] = maxes[0]
        }
        if rlvr == nil { r["ce"] = l.ceSum / max(l.sequences, 1) }
        r["rl_loss"] = l.rlSum / max(l.sequences, 1)
        r["loss"] = sft ? l.ceSum / max(l.sequences, 1)
            : rlvr != nil ? l.rlSum / max(l.sequences, 1) : (l.rlSum + c.ceCoef * l.ceSum) / max(l.sequences, 1)
        r["grad_norm"] = o.gradNorm
        if let e = noiseEstimate {
            // Adam's first moment against the recent squared norms (Learner/GradientNoise.swift).
            r["grad_signal_fraction"] = e.signalFraction
            if e.noiseScale.isFinite { r["grad_noise_scale"] = e.noiseScale }
        }
        r["lr"] = o.learningRate
        r["sequences"] = l.sequences
        r["generated_tokens"] = tail[0]
        r["trained_tokens"] = l.tokens
        r["bytes_sent"] = tail[1]
        r["bytes_received"] = tail[2]
        // The weight broadcast of this step (learner 0 to the workers): the adapters with LoRA.
        r["sync_bytes"] = lastSyncBytes
        r["unwhitened_blocks"] = s.unwhitenedBlocks
        r["ranks"] = Double(comm.size)
        // Peak resident memory so far (VmHWM, MiB): this rank's, and the largest of any rank's.
        r["peak_rss_mb"] = rss
        r["peak_rss_mb_max"] = maxes[3]
        // Per role, the slowest rank's time in each phase.
        for (roleName, members) in roleGroups() {
            for (i, p) in Self.phases.enumerated() {
                let worst = members.map { allTimes[$0 * Self.phases.count + i] }.max() ?? 0
                if worst > 0 { r["time_\(roleName)_\(p)"] = worst }
            }
        }
        r["flops"] = stepFLOPs
        r["flops_total"] = flopsTotal
        r["time_step"] = Date().timeIntervalSince(start)
        return r
    }

    /// The gradient signal-to-noise estimate after an applied step (rank 0, a learner): the
    /// clipped gradient's squared norm and the bias-corrected first moment's. The noise scale is
    /// in sequences (chunks × samples, or chunks for SFT, or questions × samples for RLVR).
    /// The moment's norm comes from the optimizer's fused pass (no extra pass over m).
    func gradientNoise(_ opt: PolicyOptimizer, _ result: PolicyOptimizer.Result, chunks: Int) -> GradientNoise.Estimate? {
        let c = context.config
        guard c.beta1 > 0, let m = result.momentNorm else { return nil }
        if noiseTracker == nil { noiseTracker = GradientNoise(beta: c.beta1) }
        let clipped = min(result.gradNorm, opt.maxGradNorm)
        let step = opt.adam.step
        let m2 = m * m / Foundation.pow(1 - Foundation.pow(c.beta1, Double(step)), 2)
        let batch = Double(c.method == "rlvr" ? c.rlvrQuestions * c.samplesPerChunk
                           : c.method == "sft" ? chunks : chunks * c.samplesPerChunk)
        return noiseTracker?.update(gradNorm2: clipped * clipped, momentNorm2: m2, momentSteps: step, batch: batch)
    }

    func roleGroups() -> [(String, [Int])] {
        if roles.isColocated { return [("colocated", Array(0..<comm.size))] }
        return [("learner", roles.learnerRanks), ("worker", roles.workerRanks)]
    }

    // MARK: weights

    /// Learner 0 broadcasts the flat policy after `t` steps (with that version number) to the
    /// rollout workers.
    func syncWeights(step t: Int, times: inout PhaseTimes, bytes: inout Double) throws {
        guard let sync else { return }
        // The root waits for the workers to take the weights; a worker waits for the root.
        watchdog?.enter("weight broadcast", step: t, waitingOn: rank == 0 ? roles.workerRanks : [0])
        try times.time("broadcast") {
            try sync.politeWait(root: 0)
            let version = try sync.broadcast(Int64(t), root: 0)
            guard version == Int64(t) else {
                throw TrainerError.replicasDisagree("rank \(rank) expects the weights after step \(t) but learner 0 sent those after step \(version)")
            }
            // With LoRA only the adapters: every rank loaded the frozen base weights itself.
            let p = context.trainable
            try sync.broadcast(p.pointer, count: p.count, root: 0)
        }
        lastSyncBytes = Double(context.trainable.count * 4 * (sync.size - 1))
        if rank == 0 { bytes += lastSyncBytes }
    }

    /// Learners compare a checksum of their parameters; replicas must be identical.
    func verifyReplicas(step: Int) throws {
        guard let lc = groups.learners, lc.size > 1 else { return }
        let p = context.trainable
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let words = UnsafeRawPointer(p.pointer).bindMemory(to: UInt32.self, capacity: p.count)
        for i in 0..<p.count { h = (h ^ UInt64(words[i])) &* 0x0000_0100_0000_01b3 }
        let value = Int64(bitPattern: h)
        var both = [value, -value]
        watchdog?.enter("replica checksum", step: step, waitingOn: roles.learnerRanks)
        try lc.allReduce(&both, op: .max)
        if both[0] != value || -both[1] != value {
            throw TrainerError.replicasDisagree("after step \(step) the learners' parameters differ (checksums \(both[0]) vs \(-both[1])); stopping")
        }
    }

    // MARK: experience transfer

    func tag(_ step: Int) -> Int { 1 + step % max(1, min(comm.maxTag, 30_000)) }

    /// Sends each learner its share (sequence j of the step → learner j mod L); every learner
    /// gets exactly one message per worker per step, possibly empty. Returns the bytes sent.
    func sendExperiences(_ exps: [Experience], step t: Int, position: [Int64: Int]) throws -> Double {
        let L = roles.learnerRanks.count, n = context.config.samplesPerChunk
        var shares = [[Experience]](repeating: [], count: L)
        for e in exps {
            let seq = (position[e.chunkID] ?? 0) * n + Int(e.sample)
            shares[seq % L].append(e)
        }
        var total = 0.0
        watchdog?.enter("send experiences", step: t, waitingOn: roles.learnerRanks)
        for (i, dest) in roles.learnerRanks.enumerated() {
            let bytes = ExperienceWire.encode(shares[i])
            try comm.send(bytes, to: dest, tag: tag(t))
            total += Double(bytes.count)
        }
        return total
    }

    /// Receives one message from every worker (in arrival order), decoded.
    func receiveExperiences(step t: Int) throws -> ([Experience], Double) {
        var pending = roles.workerRanks
        var out: [Experience] = []
        var bytes = 0.0
        watchdog?.enter("receive experiences", step: t, waitingOn: pending)
        while !pending.isEmpty {
            var got = false
            for w in pending {
                if try comm.tryProbe(from: w, tag: tag(t)) != nil {
                    let m = try comm.receive(from: w, tag: tag(t))
                    bytes += Double(m.bytes.count)
                    out += try ExperienceWire.decode(m.bytes)
                    pending.removeAll { $0 == w }
                    watchdog?.stillWaiting(on: pending)
                    got = true
                }
            }
            if !got { usleep(200) }
        }
        return (out, bytes)
    }
}
