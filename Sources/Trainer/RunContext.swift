import Evaluation
import Foundation
import Learner
import Model
import Rollout

extension BPETokenizer: TextEncoder {
    /// Plain text, special-token strings treated as text (training data is never ChatML).
    public func encode(_ text: String) -> [Int32] { encode(text, allowSpecial: false) }
}

/// Everything a run loads before its first step: the tokenizer, the policy and the frozen
/// critic (both from the same initial weights unless `critic` names another model), the
/// packed training and validation chunks, and the derived geometry and schedule.
public final class RunContext {
    /// The run's configuration (only `learners` changes after loading: `--learners auto`).
    public internal(set) var config: TrainConfig
    public let modelPath: String
    public let tokenizer: BPETokenizer
    public let policy: Transformer
    /// The trained LoRA adapters (`lora-rank` > 0; also `policy.lora`), nil for full fine-tuning.
    public let lora: LoRAWeights?
    /// The frozen feature network; only ranks that sample (rollout workers) load it. With LoRA
    /// it is the policy's own base weights with the adapters off (no second copy).
    public let critic: FeatureNetwork?
    public let geometry: StridedGeometry
    /// The training chunks (memory-mapped from the token cache for file sources).
    public let train: ChunkTable
    public let validation: [Chunk]
    public let chunkSampler: ChunkSampler
    /// The run's steps: `steps`, or `episodes` over the corpus; with `flop-budget`, EBFT and SFT
    /// stop at the step that reaches the budget. RLVR's cost depends on its completions: the
    /// trainer sets this to the steps its budget at least pays for (the learning-rate warmup's
    /// basis) and stops when the counted FLOPs reach the budget.
    public internal(set) var totalSteps: Int

    /// - Parameter loadCritic: false on ranks that never sample (pure learners).
    /// - Parameter progress: signs of life while the data is tokenised (for a stall watchdog).
    public init(config: TrainConfig, loadCritic: Bool = true, progress: (String) -> Void = { _ in },
                log: (String) -> Void = { _ in }) throws {
        try config.validate()
        self.config = config
        let spec = config.model ?? ""
        let initial: ParameterStore
        if spec.hasPrefix("random:") {
            // A randomly initialised model of the given shape with the installed SmolLM2's tokenizer
            // (for tests and benchmarks): random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1
            let gguf = try GGUFFile(path: try ModelLocator.defaultGGUF())
            tokenizer = try BPETokenizer(gguf: gguf)
            initial = try Self.randomModel(spec, vocab: tokenizer.vocabSize)
            // More embedding rows than tokens is fine (as for Qwen's padded vocabularies): a
            // random model of a published shape (shape=llama-3.2-1b) keeps its real head size.
            if initial.config.vocabSize < tokenizer.vocabSize {
                throw ConfigError.invalid(field: "model", reason: "\(spec) has a vocabulary of \(initial.config.vocabSize) "
                                          + "tokens; a random model is trained with the SmolLM2 tokenizer's "
                                          + "\(tokenizer.vocabSize), so it needs at least that many (drop vocab=)")
            }
            modelPath = spec
        } else {
            let path = spec.isEmpty ? try ModelLocator.defaultGGUF() : spec
            modelPath = path
            if try ModelSource.kind(of: path) == .gguf {
                let gguf = try GGUFFile(path: path)
                tokenizer = try BPETokenizer(gguf: gguf)
                initial = try ParameterStore.load(gguf: gguf)
            } else {
                // One of our checkpoints / an HF directory: weights and tokenizer from it.
                initial = try ModelSource.load(path, log: { log("warning: " + $0) }) // a checkpoint is verified
                tokenizer = try BPETokenizer.forModel(at: path, log: { log("warning: " + $0) })
                try tokenizer.checkFits(modelVocabulary: initial.config.vocabSize, model: path)
            }
        }
        log("model \(modelPath): \(initial.config.layers) layers, d=\(initial.config.dim), \(initial.count) parameters")
        geometry = try StridedGeometry(P: config.chunkLength, c: config.contextLength, G: config.generateLength,
                                       s: config.stride)
        try Self.checkContext(config: config, geometry: geometry, model: initial, name: modelPath)
        policy = Transformer(parameters: initial)
        if let lc = config.loraConfig {
            let adapters = LoRAWeights(config: lc, model: initial.config)
            if let dir = config.loraInit {
                do { try LoRAFiles.read(directory: dir, into: adapters) } catch {
                    throw ConfigError.invalid(field: "lora-init", reason: "\(error)")
                }
                log("lora: adapters from \(dir)")
            } else {
                adapters.initialize(seed: config.seed)
            }
            policy.lora = adapters
            lora = adapters
            log("lora: r=\(lc.rank), alpha=\(lc.alpha), targets \(lc.targets.map(\.hfName).joined(separator: ",")): "
                + "\(adapters.count) trained values (\(initial.count) frozen)")
        } else {
            lora = nil
        }
        if loadCritic, lora != nil {
            critic = FeatureNetwork(model: policy.withoutAdapters(),
                                    pooling: config.pooling == "mean" ? .mean : .lastToken)
        } else if loadCritic {
            let criticParams: ParameterStore
            if let c = config.critic {
                criticParams = try ModelSource.load(c, log: { log("warning: " + $0) })
                try Self.checkContext(config: config, geometry: geometry, model: criticParams, name: c, generates: false)
            } else {
                criticParams = initial.clone()
            }
            let f = FeatureNetwork(model: Transformer(parameters: criticParams),
                                   pooling: config.pooling == "mean" ? .mean : .lastToken)
            f.sharedPrefix = config.sharedPrefix
            critic = f
        } else {
            critic = nil
        }
        let t0 = Date()
        let data = try TrainingData.load(config: config, tokenizer: tokenizer, log: log, progress: progress)
        train = data.train
        validation = data.validation
        log("task \(config.task): \(train.count) train / \(data.validationCount) validation chunks of \(config.chunkLength) tokens "
            + "(\(data.bad) records skipped) in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
        guard !validation.isEmpty else {
            throw TrainerError.data("the validation split has no chunk of \(config.chunkLength) tokens; lower chunk-length or "
                                    + "raise validation-fraction" + (config.task == "data" ? " (or give validation-data)" : ""))
        }
        chunkSampler = try ChunkSampler(chunkCount: train.count, batchSize: config.chunksPerStep, seed: config.seed,
                                        mixture: data.mixture)
        if let e = config.evalData, config.evalDownEvery > 0 {
            // Read now, so a bad file stops the run before training (the trainer reads it again).
            let set = try EvalSet.load(path: e, maxBadFraction: config.maxBadFraction)
            log("eval-data \(e): \(set.count) \(set.kind) records")
        }
        totalSteps = config.steps > 0 ? config.steps : chunkSampler.totalSteps(epochs: config.episodes)
        if config.flopBudget > 0, let f = stepFLOPs(chunks: config.chunksPerStep) {
            let affordable = max(1, Int((config.flopBudget / f).rounded(.up)))
            if affordable < totalSteps { totalSteps = affordable }
            log(String(format: "flop-budget %.3g: %d steps of %.4g model FLOPs", config.flopBudget, totalSteps, f))
        }
    }

    /// Model FLOPs of a training step on `chunks` chunks, as `StepCost` counts them, for the
    /// methods whose steps cost the same every time: EBFT (sampling + features + forward and
    /// backward; the feature network counted at the policy's shape) and SFT (forward and backward
    /// of the chunks). Nil for RLVR, whose step depends on its completions
    /// (`StepCost.rlvr`). LoRA is counted as full fine-tuning (backward = 2 × forward).
    public func stepFLOPs(chunks: Int) -> Double? {
        let m = policy.config
        switch config.method {
        case "sft": return StepCost.sft(model: m, chunkLength: config.chunkLength, chunks: chunks)
        case "rlvr": return nil
        default:
            return StepCost(model: m, geometry: geometry, samples: config.samplesPerChunk, chunks: chunks,
                            criticLayers: Features.featureLayers(L: m.layers).max()!).totalFLOPs
        }
    }

    /// Packed training and validation chunks of the configured task (spec §3), all of them in
    /// memory (for tests; a run maps them from the token cache, `TrainingData`).
    static func chunks(config c: TrainConfig, tokenizer: BPETokenizer) throws -> (train: [Chunk], validation: [Chunk], skipped: Int) {
        var all = c
        all.evalChunks = Int.max
        let d = try TrainingData.load(config: all, tokenizer: tokenizer)
        return ((0..<d.train.count).map { d.train[$0] }, d.validation, d.bad)
    }

    /// The keys of `random:key=value,...`.
    static let randomModelKeys = RandomModelSpec.keys

    /// Parses `random:key=value,...` (`RandomModelSpec`: dim, layers, heads, kv-heads, ffn, seed,
    /// std, context and the family options). An unknown or repeated key is an error.
    static func randomModel(_ spec: String, vocab: Int) throws -> ParameterStore {
        do { return try RandomModelSpec.make(spec, vocab: vocab) } catch let e as RandomModelSpec.SpecError {
            throw ConfigError.invalid(field: "model", reason: e.message)
        }
    }

    /// The run's sequences against the model's context length: a strided sequence uses rotary
    /// positions up to `geometry.maxPosition` (SFT the chunk's, the same), and RLVR and
    /// downstream evaluation generate up to their max-new-tokens after a prompt of at least
    /// one token (`generates`: false for the critic, which only reads strided sequences). A model
    /// of unknown context (a random one without `context=`) is not checked.
    static func checkContext(config c: TrainConfig, geometry: StridedGeometry, model: ParameterStore,
                             name: String, generates: Bool = true) throws {
        guard let n = model.contextLength else { return }
        if geometry.maxPosition + 1 > n {
            let limit = model.slidingWindow == n
                ? "its sliding_window \(n) (sliding-window attention is not implemented: sequences must fit inside it)"
                : "the context length \(n)"
            throw ConfigError.invalid(field: "chunk-length", reason: "chunk-length \(c.chunkLength) needs rotary positions "
                                      + "0…\(geometry.maxPosition), past \(limit) of the model \(name)")
        }
        guard generates else { return }
        func budget(_ field: String, _ tokens: Int) -> ConfigError {
            .invalid(field: field, reason: "\(tokens) new tokens after a prompt do not fit the context length \(n) "
                     + "of the model \(name)")
        }
        if c.method == "rlvr" && c.rlvrMaxNewTokens + 1 > n { throw budget("rlvr-max-new-tokens", c.rlvrMaxNewTokens) }
        if c.evalDownEvery > 0 && c.evalDownMaxNewTokens + 1 > n {
            throw budget("eval-down-max-new-tokens", c.evalDownMaxNewTokens)
        }
    }

    public var rolloutSettings: RolloutSettings {
        let c = config
        return RolloutSettings(
            geometry: geometry, samples: c.samplesPerChunk,
            sampling: SamplingOptions(temperature: Float(c.temperature), topP: Float(c.topP), seed: c.seed),
            rewards: RewardOptions(alpha: c.alignmentCoef, beta: c.diversityCoef, whitening: c.whitening,
                                   gtWhitening: c.gtWhitening == "feature-space" ? .featureSpace : .code),
            pooling: c.pooling == "mean" ? .mean : .lastToken)
    }

    /// The run's optimizer over `count` parameters (default all; a learner's shard when sharded).
    public func makeOptimizer(count: Int? = nil) -> PolicyOptimizer {
        let c = config
        return PolicyOptimizer(
            parameterCount: count ?? lora?.count ?? policy.parameters.count,
            adam: AdamWConfig(beta1: c.beta1, beta2: c.beta2, eps: c.adamEps, weightDecay: c.weightDecay),
            schedule: .constantWithWarmup(peak: c.learningRate,
                                          warmupSteps: LRSchedule.warmupSteps(maxSteps: totalSteps, ratio: c.warmupRatio)),
            maxGradNorm: c.maxGradNorm)
    }

    /// The trained values as one flat buffer: the adapters with LoRA, else the whole policy.
    public var trainable: (pointer: UnsafeMutablePointer<Float>, count: Int) {
        if let lora { return (lora.pointer, lora.count) }
        return (policy.parameters.pointer, policy.parameters.count)
    }

    /// The chunks of optimizer step `t`: (global chunk id, tokens).
    public func chunks(step t: Int) -> [(id: Int, tokens: [Int32])] {
        chunkSampler.indices(step: t).map { ($0, train.tokens($0)) }
    }
}

extension TrainConfig {
    /// The task data options of this run: the held-out fraction is `validation-fraction`, the
    /// same for packing, RLVR questions and downstream test pairs.
    var qaCodeOptions: QACodePairs.Options {
        var o = QACodePairs.Options()
        o.testFraction = validationFraction
        return o
    }

    var translationOptions: TranslationPairs.Options {
        var o = TranslationPairs.Options()
        o.testFraction = validationFraction
        return o
    }
}
