import ArgumentParser
import Foundation
import Model
import Trainer

/// `ebft-dist bench memory`: predicted bytes per rank by category next to the measured peak
/// (VmHWM) of one EBFT step run as a child `train` process.
struct BenchMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Predicted memory per rank by category (weights, critic, gradients, optimizer, activations, logits, KV cache) beside the measured peak of one EBFT step.",
        discussion: """
            The prediction (Trainer/MemoryPrediction.swift) counts every buffer of a step at its largest \
            size, from the model's shapes and the preset's geometry, for each role: learner, rollout \
            worker, and colocated (np 1 or --colocate). "runtime" is what this process holds before \
            loading any model (binary, libraries), measured here. The measurement runs one step of \
            `ebft-dist train` (evaluations off, the final checkpoint into a temporary directory) on \
            --np ranks (mpirun through the same settings as scripts/launch.sh when --np > 1) and reads \
            every rank's peak resident memory (rank 0: the step's `peak_rss_mb`, before the final checkpoint \
            is written; the others: the run's `memory` record). --predict-only skips it. \
            --lora-rank r predicts adapters of rank r on q,k,v,o,gate,up,down with AdamW state for \
            them alone and no second frozen copy; measuring it needs the trainer's lora-rank option.
            """)

    @Option(help: "Model: GGUF file, Hugging Face directory or random:… spec.") var model: String
    @Option(help: "Preset whose geometry the step uses.") var preset = "small"
    @Option(help: "Learners (L) of the predicted/measured run.") var learners = 1
    @Option(help: "Ranks of the measured run (1: colocated np 1).") var np = 1
    @Option(help: "Predict LoRA adapters of this rank instead of full fine-tuning.") var loraRank: Int?
    @Flag(help: "Predict (and measure) with the optimizer state sharded over the learners.") var shardOptimizer = false
    @Flag(help: "Only print the prediction.") var predictOnly = false
    @Option(help: "Extra train overrides for the measured run (key=value, repeatable).") var set: [String] = []

    func validate() throws {
        guard learners >= 1 else { throw ValidationError("--learners must be at least 1, got \(learners)") }
        guard np >= 1 else { throw ValidationError("--np must be at least 1, got \(np)") }
        guard np == 1 || learners < np else { throw ValidationError("--learners \(learners) leaves no worker among --np \(np) ranks") }
        if let r = loraRank, r < 1 { throw ValidationError("--lora-rank must be at least 1, got \(r)") }
    }

    func run() throws {
        let runtime = Double(PeakMemory.residentBytes() ?? 0)
        var config = try TrainConfig.preset(preset)
        for s in set { try config.apply(override: s) }
        // The shape only: the store is released before the measured run starts (a 1B-parameter
        // model would otherwise sit in this process beside the ranks it measures).
        let (c, P): (ModelConfig, Int) = try {
            let params: ParameterStore
            if RandomModelSpec.matches(model) {
                params = try RandomModelSpec.make(model, vocab: ModelConfig.smolLM2_135M.vocabSize)
            } else {
                params = try ModelSource.load(try resolveModelPath(model), log: { emitError("warning: " + $0) })
            }
            return (params.config, params.count)
        }()
        let workers = np == 1 ? 1 : np - learners
        print("bench memory: \(model): \(c.layers) layers, d=\(c.dim), V=\(c.vocabSize), \(P) parameters; preset \(preset) "
              + "(P=\(config.chunkLength), c=\(config.contextLength), G=\(config.generateLength), s=\(config.stride), "
              + "n=\(config.samplesPerChunk), \(config.chunksPerStep) chunks per step)")
        if let r = loraRank {
            print("LoRA rank \(r): \(MemoryPrediction.loraParameters(c, rank: r)) adapter parameters (q,k,v,o,gate,up,down)")
        }
        let roles: [MemoryPrediction.Role] = np == 1 ? [.colocated] : [.learner, .worker]
        let predictions = roles.map {
            MemoryPrediction.predict(model: c, parameters: P, config: config, role: $0, learners: np == 1 ? 1 : learners,
                                     workers: workers, loraRank: loraRank, shardOptimizer: shardOptimizer, runtime: runtime)
        }
        let mib = 1_048_576.0
        print(padRight("category", 16) + predictions.map { pad($0.role.rawValue + " MiB", 16) }.joined())
        for (i, line) in predictions[0].lines.enumerated() {
            print(padRight(line.category, 16) + predictions.map { pad(fixed($0.lines[i].bytes / mib, 1), 16) }.joined())
        }
        print(padRight("predicted peak", 16) + predictions.map { pad(fixed($0.total / mib, 1), 16) }.joined())
        fflush(nil)
        if predictOnly { return }
        if loraRank != nil && !TrainConfig.allKeys.contains("lora-rank") {
            print("measured: not run — this build's trainer has no lora-rank option (LoRA training is needed to measure the LoRA prediction)")
            return
        }
        let measured = try measure()
        print("measured peak RSS (VmHWM) of one step, MiB:")
        for (rank, v) in measured.enumerated() {
            let role: MemoryPrediction.Role = np == 1 ? .colocated : (rank < learners ? .learner : .worker)
            let p = predictions.first { $0.role == role }!.total / mib
            print("  rank \(rank) (\(role.rawValue)): measured \(fixed(v, 1)), predicted \(fixed(p, 1)) "
                  + "(prediction \(p >= v ? "+" : "")\(fixed(100 * (p - v) / v, 1)) %)")
        }
    }

    /// One step of `train` in a child process; every rank's peak RSS in MiB.
    func measure() throws -> [Double] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-bench-memory-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        var args = ["train", "--preset", preset, "--steps", "1", "--quiet", "--run-dir", dir,
                    "--set", "model=\(model)", "--set", "eval-every=0"]
        for s in set { args += ["--set", s] }
        if let r = loraRank { args += ["--set", "lora-rank=\(r)"] }
        if shardOptimizer { args += ["--set", "shard-optimizer=true"] }
        let process = Process()
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OMPI_") && !$0.key.hasPrefix("PMIX_") }
        if np == 1 {
            process.executableURL = URL(fileURLWithPath: exe)
            process.arguments = args
        } else {
            if getuid() == 0 { env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1" }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            env["OPENBLAS_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] ?? String(max(1, cores / np))
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["mpirun", "-np", String(np), "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS"]
                + (np > cores ? ["--oversubscribe"] : []) + [exe] + args + (learners > 1 ? ["--learners", String(learners)] : [])
        }
        process.environment = env
        print("measuring: \(([process.executableURL!.path] + (process.arguments ?? [])).joined(separator: " "))")
        fflush(nil)
        // The run's own output goes to a file, shown when it fails.
        let logPath = dir + ".log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: logPath) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        process.waitUntilExit()
        try? log.close()
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw ValidationError("the measured run failed (exit \(process.terminationStatus)):\n" + text.suffix(4000))
        }
        // Rank 0 writes the final checkpoint, whose checksumming maps the files (their pages count
        // in the resident set): its peak of the step is the train record's `peak_rss_mb`, taken
        // before. The other ranks write nothing: the final `memory` record.
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        let records = try text.split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        guard let step = records.last(where: { $0["kind"] as? String == "train" }),
              let memory = records.last(where: { $0["kind"] as? String == "memory" }) else {
            throw ValidationError("the measured run wrote no train or memory record")
        }
        return (0..<np).map { $0 == 0 ? (step["peak_rss_mb"] as? Double) ?? .nan : (memory["peak_rss_mb_rank\($0)"] as? Double) ?? .nan }
    }
}
