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
    public let config: TrainConfig
    public let modelPath: String
    public let tokenizer: BPETokenizer
    public let policy: Transformer
    /// The frozen feature network; only ranks that sample (rollout workers) load it.
    public let critic: FeatureNetwork?
    public let geometry: StridedGeometry
    public let train: [Chunk]
    public let validation: [Chunk]
    public let chunkSampler: ChunkSampler
    public let totalSteps: Int

    /// - Parameter loadCritic: false on ranks that never sample (pure learners).
    public init(config: TrainConfig, loadCritic: Bool = true, log: (String) -> Void = { _ in }) throws {
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
        if loadCritic {
            let criticParams: ParameterStore
            if let c = config.critic {
                criticParams = try ModelSource.load(c, log: { log("warning: " + $0) })
                try Self.checkContext(config: config, geometry: geometry, model: criticParams, name: c, generates: false)
            } else {
                criticParams = initial.clone()
            }
            critic = FeatureNetwork(model: Transformer(parameters: criticParams),
                                    pooling: config.pooling == "mean" ? .mean : .lastToken)
        } else {
            critic = nil
        }
        let t0 = Date()
        let (tr, va, skipped) = try Self.chunks(config: config, tokenizer: tokenizer)
        train = tr
        validation = Array(va.prefix(config.evalChunks))
        log("task \(config.task): \(train.count) train / \(va.count) validation chunks of \(config.chunkLength) tokens "
            + "(\(skipped) files skipped) in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
        guard !validation.isEmpty else {
            throw TrainerError.data("the validation split has no chunk of \(config.chunkLength) tokens; lower chunk-length or raise validation-fraction")
        }
        chunkSampler = try ChunkSampler(chunkCount: train.count, batchSize: config.chunksPerStep, seed: config.seed)
        totalSteps = config.steps > 0 ? config.steps : chunkSampler.totalSteps(epochs: config.episodes)
    }

    /// Packed training and validation chunks of the configured task (spec §3): `code` is the
    /// stdlib sources as documents; `qa-code` and `translation` are question/answer pairs, each
    /// tokenised separately (no BOS) and concatenated; documents are joined by EOS and cut into
    /// chunks of P tokens, the last partial chunk dropped.
    static func chunks(config c: TrainConfig, tokenizer: BPETokenizer) throws -> (train: [Chunk], validation: [Chunk], skipped: Int) {
        let P = c.chunkLength, pad = tokenizer.pad ?? tokenizer.eos
        func pack(_ pairs: [QAPair]) -> [Chunk] {
            let docs = pairs.map { tokenizer.encode($0.question) + tokenizer.encode($0.answer) }
            return Packing.pack(documents: docs, chunkLength: P, eos: tokenizer.eos, pad: pad, remainder: .drop)
        }
        switch c.task {
        case "code":
            let corpus = try StdlibCorpus(root: c.corpusRoot, validationFraction: c.validationFraction)
            let tr = corpus.chunks(.train, encoder: tokenizer, chunkLength: P, pad: pad, remainder: .drop)
            let va = corpus.chunks(.validation, encoder: tokenizer, chunkLength: P, pad: pad, remainder: .drop)
            return (tr.chunks, va.chunks, tr.skipped.count + va.skipped.count)
        case "qa-code":
            let split = try QACodePairs.load(root: c.corpusRoot, options: c.qaCodeOptions)
            return (pack(split.train), pack(split.test), 0)
        case "translation":
            let split = try TranslationPairs.load(options: c.translationOptions)
            return (pack(split.train), pack(split.test), 0)
        default:
            throw ConfigError.invalid(field: "task", reason: "unknown task '\(c.task)'")
        }
    }

    /// The keys of `random:key=value,...`.
    static let randomModelKeys = ["dim", "layers", "heads", "kv-heads", "ffn", "seed", "std", "context"]

    /// Parses `random:key=value,...` (dim, layers, heads, kv-heads, ffn, seed, std, context: the
    /// context length, unlimited when absent). An unknown or repeated key is an error.
    static func randomModel(_ spec: String, vocab: Int) throws -> ParameterStore {
        func bad(_ reason: String) -> ConfigError { .invalid(field: "model", reason: reason) }
        var v: [String: String] = [:]
        for part in spec.dropFirst("random:".count).split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw bad("bad random model spec part '\(part)' (expected key=value)") }
            guard randomModelKeys.contains(kv[0]) else {
                throw bad("unknown key '\(kv[0])' in '\(spec)'; the keys are \(randomModelKeys.joined(separator: ", "))")
            }
            guard v[kv[0]] == nil else { throw bad("key '\(kv[0])' given twice in '\(spec)'") }
            v[kv[0]] = kv[1]
        }
        func int(_ k: String, _ d: Int) throws -> Int {
            guard let s = v[k] else { return d }
            guard let i = Int(s), i > 0 else { throw bad("\(k)=\(s) is not a positive integer") }
            return i
        }
        let dim = try int("dim", 32), heads = try int("heads", 4)
        guard dim % heads == 0 else { throw bad("dim=\(dim) is not a multiple of heads=\(heads)") }
        var std = 0.02
        if let s = v["std"] {
            guard let x = Double(s), x >= 0, x.isFinite else { throw bad("std=\(s) is not a finite number ≥ 0") }
            std = x
        }
        let c = ModelConfig(dim: dim, layers: try int("layers", 2), heads: heads, kvHeads: try int("kv-heads", 2),
                            headDim: dim / heads, ffnDim: try int("ffn", 64), vocabSize: vocab)
        try c.validate()
        let p = ParameterStore(config: c)
        p.randomize(seed: UInt64(try int("seed", 1)), std: Float(std))
        p.contextLength = v["context"] == nil ? nil : try int("context", 0)
        return p
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
            throw ConfigError.invalid(field: "chunk-length", reason: "chunk-length \(c.chunkLength) needs rotary positions "
                                      + "0…\(geometry.maxPosition), past the context length \(n) of the model \(name)")
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

    public func makeOptimizer() -> PolicyOptimizer {
        let c = config
        return PolicyOptimizer(
            parameterCount: policy.parameters.count,
            adam: AdamWConfig(beta1: c.beta1, beta2: c.beta2, eps: c.adamEps, weightDecay: c.weightDecay),
            schedule: .constantWithWarmup(peak: c.learningRate,
                                          warmupSteps: LRSchedule.warmupSteps(maxSteps: totalSteps, ratio: c.warmupRatio)),
            maxGradNorm: c.maxGradNorm)
    }

    /// The chunks of optimizer step `t`: (global chunk id, tokens).
    public func chunks(step t: Int) -> [(id: Int, tokens: [Int32])] {
        chunkSampler.indices(step: t).map { ($0, train[$0].tokens) }
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
