import ArgumentParser
import Distributed
import Foundation
import Model
import Rollout
import Trainer

/// `ebft-dist bench step`: EBFT steps of a preset in one process, phase by phase, with the model
/// FLOPs each phase needs (`StepCost`), its MFU against the sgemm peak measured in the same run,
/// and the optimizer phase against the memcpy bandwidth measured in the same run.
struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "One EBFT step of a preset, phase by phase: time, model FLOPs needed, MFU; the optimizer against memcpy.",
        discussion: """
            Runs --steps training steps of the configuration (a preset, --config, --set, --model as for \
            train) in this one process (colocated, np 1), without evaluations or checkpoints, in a \
            temporary run directory unless --run-dir is given; reports the phases of the step of median time \
            among steps 2… (step 1 also touches fresh pages). "GFLOP" is the arithmetic the phase needs \
            (each token once; the chunk shared by the n samples once per chunk; see StepCost), so MFU \
            also counts work an implementation does twice as lost. The sgemm peak (1024³, best of 5) \
            is measured before and after the steps and the higher kept; memcpy copies a buffer of the \
            model's parameter count, best of 5, counting bytes read plus written. The optimizer must \
            move 7 × 4 bytes per trained parameter (read p, g, m, v; write p, m, v).
            """)

    @OptionGroup var config: ConfigOptions
    @Option(help: "Seconds a phase may last before the run is aborted as stalled.") var stallTimeout: Double = 3600
    @Option(help: "Write the reported step's phases as a planner calibration (JSON) to this file (for `ebft-dist plan --calibration`, `train --learners auto --set plan-calibration=`).")
    var calibrationOut: String?

    func run() throws {
        var c: TrainConfig
        do {
            c = try config.resolve()
            if config.steps == nil { c.steps = 3 }
            c.evalEvery = 0
            c.evalDownEvery = 0
            c.evalDownStart = false
            c.saveEvery = 0
            c.stallTimeout = stallTimeout
            if config.runDir == nil {
                c.runDir = NSTemporaryDirectory() + "ebft-bench-step-\(getpid())"
            }
            guard c.method == "ebft" else { throw ValidationError("bench step measures EBFT steps (method ebft), not \(c.method)") }
            try c.validate()
        } catch let e as ValidationError { throw e } catch { throw ValidationError("\(error)") }
        let cfg = c
        let temporary = config.runDir == nil
        defer { if temporary { try? FileManager.default.removeItem(atPath: cfg.runDir) } }
        try runOnWorld { world in
            guard world.size == 1 else {
                throw AllRanksError(message: "bench step runs in one process (np 1); it got \(world.size) ranks", code: 2)
            }
            let peak1 = ModelBench.sgemmPeak()
            emit("bench step: sgemm 1024³ peak \(fixed(peak1.wall, 1)) GFLOP/s (\(BLAS.threads) BLAS threads)")
            let watchdog = StallWatchdog(timeout: cfg.stallTimeout, rank: 0, channel: nil, note: nil,
                                         notice: { emitError($0) }) { report in
                emitError(report)
                world.abort(code: 3)
            }
            defer { watchdog.stop() }
            watchdog.enter("loading", step: 0)
            let context = try RunContext(config: cfg, loadCritic: true, progress: { watchdog.enter("loading: \($0)", step: 0) },
                                         log: { emitError($0) })
            let model = context.policy.parameters.config
            let parameters = context.policy.parameters.count
            let bandwidth = Self.memcpyBandwidth(floats: parameters)
            emit("bench step: \(cfg.chunksPerStep) chunks × \(cfg.samplesPerChunk) samples, P=\(context.geometry.P) "
                 + "K=\(context.geometry.K) G=\(context.geometry.G); \(model.architecture.rawValue) d=\(model.dim) "
                 + "\(model.layers) layers, \(parameters) parameters; memcpy \(fixed(bandwidth / 1e9, 1)) GB/s")
            let trainer = try Trainer(context: context, comm: world, showProgress: false, watchdog: watchdog,
                                      resume: nil, stopAfter: nil, log: { emitError($0) })
            try trainer.run(evalOnly: false)
            let peak2 = ModelBench.sgemmPeak()
            let peak = max(peak1.wall, peak2.wall)
            emit("bench step: sgemm peak re-measured \(fixed(peak2.wall, 1)) GFLOP/s; using \(fixed(peak, 1))")

            let records = try Self.trainRecords(cfg.runDir + "/metrics.jsonl")
            guard !records.isEmpty else { throw AllRanksError(message: "no train records in \(cfg.runDir)", code: 1) }
            let timed = records.count > 1 ? Array(records.dropFirst()) : records
            // The step of median time (the lower median for an even count), all its phases: so
            // the phases add up to that step.
            let chosen = timed.sorted { ($0["time_step"] ?? 0) < ($1["time_step"] ?? 0) }[(timed.count - 1) / 2]
            func value(_ key: String) -> Double { chosen[key] ?? 0 }
            let cost = StepCost(model: model, geometry: context.geometry, samples: cfg.samplesPerChunk,
                                chunks: cfg.chunksPerStep, criticLayers: Features.featureLayers(L: model.layers).max()!)
            emit("")
            emit("step \(Int(chosen["step"] ?? 0)): the median step time of step\(timed.count > 1 ? "s" : "") "
                 + timed.compactMap { $0["step"] }.map { String(Int($0)) }.joined(separator: ", "))
            emit("\(padRight("phase", 12)) \(pad("s", 8)) \(pad("GFLOP", 9)) \(pad("GFLOP/s", 9)) \(pad("MFU", 7))")
            func row(_ name: String, _ seconds: Double, _ flops: Double) {
                let rate = seconds > 0 ? flops / seconds / 1e9 : 0
                emit("\(padRight(name, 12)) \(pad(fixed(seconds, 3), 8)) \(pad(fixed(flops / 1e9, 1), 9)) "
                     + "\(pad(fixed(rate, 1), 9)) \(pad(fixed(100 * rate / peak, 1) + "%", 7))")
            }
            let sample = value("time_colocated_sample"), features = value("time_colocated_features")
            let backward = value("time_colocated_backward"), optimizer = value("time_colocated_optimizer")
            let reward = value("time_colocated_reward"), step = value("time_step")
            row("sample", sample, cost.sampling)
            row("features", features, cost.features)
            row("backward", backward, cost.learner)
            emit("\(padRight("reward", 12)) \(pad(fixed(reward, 3), 8))")
            let floor = cost.optimizerBytes / bandwidth
            emit("\(padRight("optimizer", 12)) \(pad(fixed(optimizer, 3), 8))   \(fixed(cost.optimizerBytes / 1e9, 2)) GB to move: "
                 + "\(fixed(floor, 3)) s at memcpy speed, \(fixed(optimizer / floor, 2))× that")
            row("step", step, cost.totalFLOPs)
            let other = step - sample - features - reward - backward - optimizer
            emit("(other: \(fixed(other, 3)) s)")
            if let path = calibrationOut {
                let cal = PlanCalibration(
                    threads: BLAS.threads, cores: ProcessInfo.processInfo.activeProcessorCount, model: model,
                    trainedParameters: context.trainable.count, geometry: context.geometry, samples: cfg.samplesPerChunk,
                    chunks: cfg.chunksPerStep, criticLayers: Features.featureLayers(L: model.layers).max()!,
                    sample: .init(seconds: sample, flops: cost.sampling), features: .init(seconds: features, flops: cost.features),
                    reward: .init(seconds: reward), backward: .init(seconds: backward, flops: cost.learner),
                    optimizer: .init(seconds: optimizer, bytes: cost.optimizerBytes), other: other, step: step,
                    memcpyBandwidth: bandwidth,
                    note: "bench step, step \(Int(chosen["step"] ?? 0)) (median of steps \(timed.compactMap { $0["step"] }.map { String(Int($0)) }.joined(separator: ", "))), \(ISO8601DateFormatter().string(from: Date()))")
                do { try cal.validate(); try cal.write(to: path) } catch {
                    throw AllRanksError(message: "cannot write the calibration: \(error)", code: 1)
                }
                emit("calibration written to \(path)")
            }
        }
    }

    /// memcpy bandwidth (bytes read + written per second), best of 5 copies of `floats` Float32.
    static func memcpyBandwidth(floats n: Int) -> Double { PlanMeasure.memcpyBandwidth(floats: n) }

    /// The `train` records of a metrics file (numeric fields only).
    static func trainRecords(_ path: String) throws -> [[String: Double]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  o["kind"] as? String == "train" else { return nil }
            return o.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }
}
