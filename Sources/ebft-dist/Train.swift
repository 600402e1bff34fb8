import ArgumentParser
import Foundation
import Distributed
import Learner
import Trainer

/// Options shared by commands that take a run configuration.
struct ConfigOptions: ParsableArguments {
    @Option(help: "Preset to start from: \(TrainConfig.presetNames.joined(separator: ", ")) (default small; with --resume, the checkpoint's configuration).")
    var preset: String?

    @Option(name: .customLong("config"), help: "YAML file whose fields override the preset.")
    var configFile: String?

    @Option(name: .customLong("set"), parsing: .singleValue,
            help: ArgumentHelp("Override one field, e.g. --set learning-rate=3e-5 (repeatable).",
                               valueName: "field=value"))
    var overrides: [String] = []

    @Option(help: "Optimizer steps (overrides the config's steps).") var steps: Int?
    @Option(help: "Run directory for metrics, config and checkpoints (with --resume: the resumed run's directory unless given).")
    var runDir: String?
    @Option(help: "Policy model (GGUF); default: the installed SmolLM2.") var model: String?
    @Option(help: "Random seed.") var seed: UInt64?
    @Option(help: "Task: code, qa-code, translation, or data (your files; --data sets it) (overrides the config's task).")
    var task: String?
    @Option(help: "Method: ebft, or the baselines sft and rlvr (overrides the config's method).") var method: String?
    @Option(name: .customLong("data"), parsing: .singleValue,
            help: ArgumentHelp("Train on this JSONL / JSONL.gz / text file or directory; PATH:WEIGHT for a mixture "
                               + "(repeatable; sets task data).", valueName: "path[:weight]"))
    var data: [String] = []

    /// The configuration: `base` (a resumed run's) or the preset, then the file, then overrides.
    /// `resumedRun`: the directory of the run being resumed, the run directory unless the file,
    /// `--set run-dir=` or `--run-dir` say otherwise (never the one recorded in the checkpoint).
    func resolve(base: TrainConfig? = nil, resumedRun: String? = nil) throws -> TrainConfig {
        var c = try preset.map(TrainConfig.preset) ?? base ?? TrainConfig.preset("small")
        if let d = resumedRun { c.runDir = d }
        if let f = configFile { c = try TrainConfig.load(yamlFile: f, over: c) }
        for o in overrides { try c.apply(override: o) }
        if let s = steps { c.steps = s }
        if let r = runDir { c.runDir = r }
        if let m = model { c.model = m }
        if let s = seed { c.seed = s }
        if let t = task { c.task = t }
        if let m = method { c.method = m }
        c.data += data
        // Data paths make the default task (code) the user's data.
        if !c.data.isEmpty && c.task == "code" && task == nil { c.task = "data" }
        try c.validate()
        return c
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune with EBFT (strided sampling, frozen-critic features, RLOO policy gradient) or the SFT/RLVR baselines.",
        discussion: """
        The configuration is a preset, then an optional YAML file, then --set overrides; the \
        resolved configuration is printed at start and saved as RUN_DIR/config.yaml. Every step \
        appends one JSON line to RUN_DIR/metrics.jsonl.
        """)

    @OptionGroup var config: ConfigOptions
    @Flag(help: "No progress bar.") var quiet = false

    @Option(help: "Learner ranks (the rest are rollout workers); default 1 when N ≥ 2; auto: the planner picks (with --set plan-calibration=FILE from `bench step --calibration-out`, else measured on one chunk first).")
    var learners: String?
    @Flag(help: "Every rank both samples and learns.") var colocate = false
    @Option(help: "Seconds a phase may last before the job is aborted as stalled.") var stallTimeout: Double?
    @Flag(name: .customLong("async"), help: """
        One-step-asynchronous mode (with separate learners and workers): workers sample step t+1 \
        with the weights of step t while the learners train on step t. Faster when sampling and \
        training take similar time, but each step's rollouts come from a policy one update old \
        and the REINFORCE gradient does not correct for it (the paper's method is on-policy); \
        metrics show the gap as logp_drift. Evaluations always use the current weights.
        """)
    var asyncMode = false
    @Option(help: "Continue from a checkpoint: a run directory (its latest checkpoint) or a checkpoint directory RUN/checkpoints/step-N. The run writes into that run directory (or --run-dir); the checkpoint's configuration is used unless --preset/--config/--set say otherwise.")
    var resume: String?
    @Option(help: "Stop after this many steps are done (with a checkpoint), e.g. to split a run across job allocations.")
    var stopAfter: Int?
    @Flag(help: "Only evaluate the starting weights (validation metrics and, with eval-down-every > 0 or not, the downstream metrics) at step 0 and write them to the run directory; no training step. The 'base' row of a comparison.")
    var evalOnly = false

    func run() throws {
        var c: TrainConfig
        var found: Checkpoint.Found?
        do {
            var base: TrainConfig?
            if let r = resume {
                let f = try Checkpoint.resolve(resume: r)
                base = try TrainConfig.load(yamlText: try Checkpoint.readState(f.directory).configYaml,
                                            source: f.directory + "/state.json")
                if f.runDirectory == nil && config.runDir == nil {
                    throw ValidationError("--resume \(r): the checkpoint \(f.directory) is not inside a run's checkpoints/ directory; say where the resumed run writes with --run-dir")
                }
                found = f
            }
            c = try config.resolve(base: base, resumedRun: found?.runDirectory)
            if let s = stopAfter, s < 1 { throw ValidationError("--stop-after must be at least 1") }
            if let l = learners {
                if l.lowercased() == "auto" { c.learners = TrainConfig.autoLearners } else {
                    guard let n = Int(l), n >= 1 else { throw ValidationError("--learners must be a positive integer or auto, got '\(l)'") }
                    c.learners = n
                }
            }
            if colocate { c.colocate = true }
            if asyncMode { c.async = true }
            if let s = stallTimeout { c.stallTimeout = s }
            try c.validate()
        } catch { throw ValidationError("\(error)") }
        let config = c
        let resumeFrom = found
        try runOnWorld { world in
            let auto = config.learnersAuto
            func assign(_ c: TrainConfig) throws -> RoleAssignment {
                do {
                    return try RoleAssignment(worldSize: world.size, learners: c.runsColocated ? nil : c.learners,
                                              colocate: c.runsColocated)
                } catch { throw AllRanksError(message: "\(error)", code: 2) }
            }
            var roles: RoleAssignment? = auto ? nil : try assign(config)
            let rank = world.rank
            let say: (String) -> Void = { line in if rank == 0 { emitError(line) } }
            say("configuration:\n" + (try config.yaml()))
            say("run directory: \(config.runDir)" + (resumeFrom.map { " (resuming from \($0.directory))" } ?? ""))
            if let f = resumeFrom?.fallback { say(f) }
            // Heartbeats between the ranks' watchdogs, so a stall report names the rank that did
            // not arrive; without MPI_THREAD_MULTIPLE, each rank reports only whom it waits for.
            var channel: HeartbeatChannel?
            var note: String?
            do { channel = try world.heartbeatChannel() } catch { note = "\(error)" }
            if let note, world.size > 1 { say("stall watchdog: \(note)") }
            let watchdog = StallWatchdog(timeout: config.stallTimeout, rank: rank, channel: channel, note: note,
                                         notice: { emitError($0) }) { report in
                emitError(report)
                world.abort(code: 3)
            }
            defer { watchdog.stop() }
            watchdog.enter("loading", step: 0)
            // Tokenising a large data set takes as long as it takes: each 1024 records (or each
            // look at another rank's progress) restarts the loading phase's stall clock.
            // With auto learners the roles are known only after planning: every rank loads the
            // feature network (a learner then holds a copy it does not use).
            let context = try RunContext(config: config, loadCritic: roles?.role(of: rank).isWorker ?? true,
                                         progress: { watchdog.enter("loading: \($0)", step: 0) }, log: say)
            if auto {
                watchdog.enter("planning learners", step: 0, waitingOn: rank == 0 ? [] : [0])
                let l = try AutoLearners.resolve(world: world, context: context, say: say)
                context.resolveAutoLearners(l)
                roles = try assign(context.config)
            }
            guard let roles else { throw AllRanksError(message: "no role assignment", code: 2) }
            say("ranks: \(world.size) — " + (roles.isColocated ? "colocated (every rank samples and learns)"
                : "learners \(roles.learnerRanks), rollout workers \(roles.workerRanks)"))
            if config.method == "rlvr" {
                say("\(context.totalSteps) steps × \(config.rlvrQuestions) questions × \(config.samplesPerChunk) completions of at most \(config.rlvrMaxNewTokens) tokens")
            } else {
                say("\(context.totalSteps) steps × \(config.chunksPerStep) chunks × \(config.samplesPerChunk) samples; "
                    + "K=\(context.geometry.K) blocks of G=\(config.generateLength) per chunk")
            }
            let trainer = try Trainer(context: context, comm: world, showProgress: !quiet, watchdog: watchdog,
                                      resume: resumeFrom?.directory, stopAfter: stopAfter, log: say)
            do {
                try trainer.run(evalOnly: evalOnly)
            } catch TrainerError.diverged(let why) {
                // Every rank stops here together (rank 0's verdict is broadcast): one message, exit 4.
                throw AllRanksError(message: "training diverged: \(why)", code: 4)
            }
            say("done: metrics in \(config.runDir)/metrics.jsonl")
        }
    }
}
