import Foundation
import Model
import Rollout

extension Planner.Run {
    /// The run a training configuration describes, for `model`: its geometry, n, chunks per
    /// step, the feature network's depth, and what is trained (the model, or LoRA adapters).
    public init(config c: TrainConfig, model: ModelConfig) throws {
        let g = try StridedGeometry(P: c.chunkLength, c: c.contextLength, G: c.generateLength, s: c.stride)
        let lora = c.loraRank > 0
        self.init(model: model, geometry: g, samples: c.samplesPerChunk, chunks: c.chunksPerStep,
                  criticLayers: Features.featureLayers(L: model.layers).max()!,
                  trainedParameters: lora ? MemoryPrediction.loraParameters(model, rank: c.loraRank) : model.parameterCount,
                  lora: lora, shardOptimizer: c.shardOptimizer)
    }
}

extension TrainConfig {
    /// `learners: 0` (`--learners auto`, `--set learners=auto`): the planner picks L.
    public static let autoLearners = 0
    public var learnersAuto: Bool { learners == Self.autoLearners }

    /// The `plan-calibration` files (comma-separated: one per BLAS thread count measured).
    public var planCalibrationFiles: [String] {
        (planCalibration ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// With `learners` auto, the configuration with the planner's choice for `cluster.ranks`
    /// ranks (the fastest separate-roles split; 1 at one rank, which runs colocated) and that
    /// prediction; otherwise the configuration unchanged and nil.
    public func resolvingAutoLearners(calibrations: [PlanCalibration], cluster: PlanCluster,
                                      model: ModelConfig) throws -> (TrainConfig, Planner.Prediction?) {
        guard learnersAuto else { return (self, nil) }
        guard !runsColocated || cluster.ranks == 1 else {
            throw ConfigError.invalid(field: "learners", reason: "auto chooses between learners and rollout workers; this run is colocated (--colocate, or method \(method)): drop one of the two")
        }
        let planner = try Planner(calibrations: calibrations, cluster: cluster, run: try Planner.Run(config: self, model: model))
        guard let best = Planner.fastest(try planner.predictAll(), separateRolesOnly: true) else {
            throw PlanError.input("no split to choose from")
        }
        var c = self
        c.learners = best.split.colocated ? 1 : best.split.learners
        return (c, best)
    }
}

extension RunContext {
    /// Fixes `learners: auto` to the planner's choice (before the `Trainer` is made).
    public func resolveAutoLearners(_ l: Int) {
        precondition(config.learnersAuto && l >= 1, "learners is not auto, or \(l) < 1")
        config.learners = l
    }
}
