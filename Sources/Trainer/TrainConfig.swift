import Foundation
import Model
import Rollout
import Yams

/// The one run configuration: loaded from a preset and/or a YAML file, overridden field by
/// field (`key=value`), checked by `validate()`, printed in full at start and saved with
/// every checkpoint. Field names are the YAML keys; defaults follow the authors' code
/// (spec §9) except where a preset says otherwise.
public struct TrainConfig: Codable, Equatable, Sendable {
    // MARK: model and data
    /// Policy model (GGUF or our safetensors checkpoint directory); nil = the installed SmolLM2.
    public var model: String? = nil
    /// Frozen feature network; nil = a copy of the initial policy weights (spec §5.1).
    public var critic: String? = nil
    /// `code` (unstructured stdlib code), `qa-code`, `translation` (built-in data), or `data`
    /// (the files named by `data`; set by `--data`).
    public var task: String = "code"
    /// `ebft`, later `sft`, `rlvr`.
    public var method: String = "ebft"
    /// Root of the code corpus (Python standard library sources).
    public var corpusRoot: String = "/usr/lib/python3.11"
    /// Fraction of corpus files held out for validation (split by path hash).
    public var validationFraction: Double = 0.05

    // MARK: your own data (issue 13; `DataSource`, `TokenCache`)
    /// Training data: files or directories, each `PATH` or `PATH:WEIGHT` (a mixture draws each
    /// chunk from a source with probability ∝ its weight). `--data` appends; `--set data=a,b`.
    public var data: [String] = []
    /// Comma-separated file-name patterns read from a directory in `data`.
    public var dataGlob: String = "*.jsonl,*.jsonl.gz,*.txt"
    /// `auto` (by the keys present), `text`, `pair` or `chat`.
    public var dataFormat: String = "auto"
    public var textKey: String = "text"
    public var inputKey: String = "prompt"
    public var outputKey: String = "response"
    /// Held-out data (same forms as `data`); nil = a hash split of `data` by `validation-fraction`.
    public var validationData: String? = nil
    /// Bad records (not JSON, missing key, wrong type, empty) allowed per source, as a fraction.
    public var maxBadFraction: Double = 0.01
    /// Token cache directory; empty = $XDG_CACHE_HOME/ebft-dist/tokens or ~/.cache/ebft-dist/tokens.
    public var dataCache: String = ""
    /// Downstream evaluation set (JSONL): `tests` records (prompt, test, entry_point → pass@k)
    /// or `reference` records (prompt, reference → BLEU and chrF); nil = the task's benchmark.
    public var evalData: String? = nil

    // MARK: strided sampling geometry (spec §1, §4)
    /// Chunk length P.
    public var chunkLength: Int = 1024
    /// First anchor c (shortest context).
    public var contextLength: Int = 8
    /// Block length G (tokens generated per rollout).
    public var generateLength: Int = 8
    /// Anchor stride s.
    public var stride: Int = 8
    /// Samples per chunk n.
    public var samplesPerChunk: Int = 4
    /// Chunks per optimizer step (rollout batch size).
    public var chunksPerStep: Int = 16
    public var temperature: Double = 0.6
    public var topP: Double = 1.0

    // MARK: rewards (spec §2.4–§2.6, §5)
    public var alignmentCoef: Double = 1.0
    public var diversityCoef: Double = 0.5
    public var ceCoef: Double = 0.03
    public var whitening: Bool = true
    /// `code` (n×n operator on the replicated GT, the default) or `feature-space` (paper).
    public var gtWhitening: String = "code"
    /// `last-token` or `mean`.
    public var pooling: String = "last-token"

    // MARK: optimisation (spec §7)
    public var learningRate: Double = 1e-6
    public var warmupRatio: Double = 0.03
    public var beta1: Double = 0.9
    public var beta2: Double = 0.95
    public var adamEps: Double = 1e-8
    public var weightDecay: Double = 0.0
    public var maxGradNorm: Double = 1.0

    // MARK: LoRA (issue 14; `LoRA.swift`)
    /// LoRA rank r; 0 = full fine-tuning. With r > 0 only the adapters are trained and the
    /// feature network is the base model with the adapters off.
    public var loraRank: Int = 0
    /// α: the adapters' update is scaled by α / r.
    public var loraAlpha: Double = 16
    /// Adapted projections: q, k, v, o, gate, up, down (or `all`).
    public var loraTargets: String = "q,k,v,o,gate,up,down"
    /// Only 0 (the adapters have no dropout).
    public var loraDropout: Double = 0
    /// A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) to start from.
    public var loraInit: String? = nil
    /// Optimizer steps; 0 = derive from `episodes` and the corpus size.
    public var steps: Int = 0
    public var episodes: Int = 2
    public var seed: UInt64 = 43
    /// Model FLOPs the training may spend (0: no budget). The run stops after the first step at
    /// which the counted FLOPs (`flops_total`: sampling, features and forward + backward, as
    /// `StepCost` counts them for the run's method; evaluations are not counted) reach it, or at
    /// `steps`, whichever comes first. EBFT and SFT steps cost the same every step, so their
    /// number of steps is known up front; RLVR's depend on its completions' lengths.
    public var flopBudget: Double = 0

    // MARK: divergence (issue 10; `DivergenceDetector`)
    /// Stop after this many bad steps in a row (a CE above 2·ln V, a CE spike, or a gradient
    /// that is exactly 0 although the loss has one); 0 = report them but never stop. A NaN or
    /// infinite loss or gradient norm stops the run at once whatever this says.
    public var maxBadSteps: Int = 3
    /// Good steps whose CE gives the mean and standard deviation of the spike z-score.
    public var spikeWindow: Int = 32
    /// A step's CE more than this many standard deviations above the window's mean is a spike.
    public var spikeZ: Double = 5

    // MARK: evaluation, checkpoints, output
    public var evalEvery: Int = 100
    public var evalChunks: Int = 128
    /// Sampling seeds per online evaluation: with more than one, the reward metrics are means
    /// over the seeds with standard errors (`…_se`), so a change can be told from sampling noise.
    public var evalSeeds: Int = 1
    public var saveEvery: Int = 0
    /// Downstream evaluation (HumanEval pass@1/pass@k for code tasks, corpus BLEU for
    /// translation; spec §10.2) every this many steps, 0 = never.
    public var evalDownEvery: Int = 0
    /// Also evaluate downstream before the first step (when `eval-down-every` > 0).
    public var evalDownStart: Bool = true
    /// HumanEval problems / test pairs to evaluate, 0 = all.
    public var evalDownLimit: Int = 0
    /// Samples per HumanEval problem (k of pass@k); translation scores the first sample.
    public var evalDownSamples: Int = 4
    public var evalDownMaxNewTokens: Int = 192
    public var evalDownTemperature: Double = 0.6
    public var evalDownTopP: Double = 0.95
    public var runDir: String = "runs/latest"

    // MARK: distribution (issue 5)
    /// Learner ranks; 0 = auto (`--learners auto`): the planner picks them (`Planner`, issue 15).
    public var learners: Int = 1
    public var colocate: Bool = false
    public var async: Bool = false
    public var stallTimeout: Double = 300
    /// Learner and feature network run each chunk's samples as one sequence with the chunk
    /// computed once (issue 15); false = one full strided sequence per sample (the old path,
    /// for comparison). Results are equal up to Float32 summation order.
    public var sharedPrefix: Bool = true
    /// Tokens per learner forward/backward (`micro-batch-tokens`): sequences are stacked up to
    /// this many; with shared prefixes a micro-batch is one chunk plus as many of its samples'
    /// continuations as fit in this many tokens (so at most P + this many rows), or several such
    /// groups stacked up to this many. Activation memory grows with it (`bench memory`).
    public var microBatchTokens: Int = 4096
    /// Shard Adam's moments and the update over the learners (ZeRO stage 1; `shard-optimizer`).
    public var shardOptimizer: Bool = false
    /// The planner's calibration for `learners: auto` (`ebft-dist bench step --calibration-out`);
    /// nil: measured in-process before training.
    public var planCalibration: String? = nil

    // MARK: the RLVR baseline (method rlvr)
    /// Questions per optimizer step (each sampled `samples-per-chunk` times).
    public var rlvrQuestions: Int = 8
    /// Longest completion sampled per question.
    public var rlvrMaxNewTokens: Int = 128

    public init() {}

    // MARK: presets

    public static let presetNames = ["small", "objective", "code", "translation"]

    /// `small`: runs on 2 cores in minutes (SmolLM2, stdlib code, P=128, c=G=s=8, n=4).
    /// `objective`: `small` at the settings where held-out EBFT objective was measured to rise
    /// (docs/results/objective: lr 1e-5, 8 chunks = 32 sequences per step, γ = 0, 40 steps,
    /// evaluations on 8 held-out chunks with 6 sampling seeds every 10 steps); ≈ 50 s per step
    /// at np 1 on 2 cores.
    /// `code`: spec §9.2 unstructured code (P=1024, c=G=s=8). `translation`: P=1024, c=G=4, s=2,
    /// mean pooling.
    public static func preset(_ name: String) throws -> TrainConfig {
        var c = TrainConfig()
        switch name {
        case "code":
            break
        case "small":
            c.chunkLength = 128
            c.chunksPerStep = 2
            c.learningRate = 1e-5
            c.steps = 8
            c.evalEvery = 4
            c.evalChunks = 4
            c.runDir = "runs/small"
        case "objective":
            c = try preset("small")
            c.chunksPerStep = 8
            c.ceCoef = 0
            c.steps = 40
            c.evalEvery = 10
            c.evalChunks = 8
            c.evalSeeds = 6
            c.runDir = "runs/objective"
        case "translation":
            c.task = "translation"
            c.contextLength = 4
            c.generateLength = 4
            c.stride = 2
            c.pooling = "mean"
        default:
            throw ConfigError.unknownPreset(name, known: presetNames)
        }
        return c
    }

    // MARK: derived geometry

    /// SFT and RLVR run colocated: every rank trains on its own share (SFT has no rollouts; an
    /// RLVR rollout is a handful of completions, not worth a transfer).
    public var runsColocated: Bool { colocate || method == "sft" || method == "rlvr" }

    /// Blocks per chunk K = (P − G − c)/s + 1.
    public var blocksPerChunk: Int { (chunkLength - generateLength - contextLength) / stride + 1 }

    // MARK: validation

    /// Checks every field; the error names the field and what is allowed.
    public func validate() throws {
        func need(_ ok: Bool, _ field: String, _ why: String) throws {
            if !ok { throw ConfigError.invalid(field: field, reason: why) }
        }
        try need(["code", "qa-code", "translation", "data"].contains(task), "task", "must be code, qa-code, translation or data")
        try need(task != "data" || !data.isEmpty, "data", "task data needs at least one data path (--data PATH)")
        try need(data.isEmpty || task == "data", "task", "data paths are given, so the task must be data (not \(task))")
        for d in data {
            do { _ = try DataSpec(parsing: d) } catch { throw ConfigError.invalid(field: "data", reason: "\(error)") }
        }
        try need(DataFormat(rawValue: dataFormat) != nil, "data-format", "must be auto, text, pair or chat")
        try need(!textKey.isEmpty && !inputKey.isEmpty && !outputKey.isEmpty, "text-key", "keys must not be empty")
        try need(validationData == nil || task == "data", "validation-data",
                 "needs task data (the built-in tasks have their own split)")
        try need(maxBadFraction >= 0 && maxBadFraction < 1, "max-bad-fraction", "must be in [0, 1)")
        try need(method != "rlvr" || task != "data", "method", "rlvr needs a task with a verifier (qa-code or translation)")
        try need(["ebft", "sft", "rlvr"].contains(method), "method", "must be ebft, sft or rlvr")
        try need(validationFraction > 0 && validationFraction < 1, "validation-fraction", "must be in (0, 1)")
        try need(chunkLength >= 2, "chunk-length", "must be at least 2")
        try need(contextLength >= 1, "context-length", "must be at least 1 (the first anchor needs a prefix)")
        try need(generateLength >= 1, "generate-length", "must be at least 1")
        try need(stride >= 1, "stride", "must be at least 1")
        try need(contextLength + generateLength <= chunkLength, "context-length",
                 "context-length + generate-length (\(contextLength + generateLength)) exceeds chunk-length (\(chunkLength))")
        try need((chunkLength - generateLength - contextLength) % stride == 0, "stride",
                 "(chunk-length − generate-length − context-length) = \(chunkLength - generateLength - contextLength) must be a multiple of stride \(stride)")
        try need(samplesPerChunk >= 1, "samples-per-chunk", "must be at least 1")
        try need(chunksPerStep >= 1, "chunks-per-step", "must be at least 1")
        try need(temperature >= 0 && temperature.isFinite, "temperature", "must be ≥ 0")
        try need(topP > 0 && topP <= 1, "top-p", "must be in (0, 1]")
        try need(alignmentCoef.isFinite && diversityCoef.isFinite && ceCoef.isFinite, "alignment-coef", "coefficients must be finite")
        try need(ceCoef >= 0, "ce-coef", "must be ≥ 0")
        try need(["code", "feature-space"].contains(gtWhitening), "gt-whitening", "must be code or feature-space")
        try need(["last-token", "mean"].contains(pooling), "pooling", "must be last-token or mean")
        try need(learningRate > 0 && learningRate.isFinite, "learning-rate", "must be > 0")
        try need(warmupRatio >= 0 && warmupRatio <= 1, "warmup-ratio", "must be in [0, 1]")
        try need(beta1 >= 0 && beta1 < 1, "beta1", "must be in [0, 1)")
        try need(beta2 >= 0 && beta2 < 1, "beta2", "must be in [0, 1)")
        try need(adamEps > 0, "adam-eps", "must be > 0")
        try need(weightDecay >= 0, "weight-decay", "must be ≥ 0")
        try need(maxGradNorm > 0, "max-grad-norm", "must be > 0")
        try need(maxBadSteps >= 0, "max-bad-steps", "must be ≥ 0 (0 = never stop for a bad step)")
        try need(spikeWindow >= 2, "spike-window", "must be at least 2 (a standard deviation needs two steps)")
        try need(spikeZ > 0 && spikeZ.isFinite, "spike-z", "must be a finite number > 0")
        try need(steps >= 0, "steps", "must be ≥ 0 (0 = derive from episodes)")
        try need(flopBudget >= 0, "flop-budget", "must be ≥ 0 (0 = no budget)")
        try need(steps > 0 || episodes >= 1, "episodes", "must be at least 1 when steps is 0")
        try need(evalEvery >= 0, "eval-every", "must be ≥ 0 (0 = never)")
        try need(evalChunks >= 1, "eval-chunks", "must be at least 1")
        try need(evalSeeds >= 1, "eval-seeds", "must be at least 1")
        try need(saveEvery >= 0, "save-every", "must be ≥ 0 (0 = only at the end)")
        try need(!runDir.isEmpty, "run-dir", "must not be empty")
        try need(evalDownEvery >= 0, "eval-down-every", "must be ≥ 0 (0 = never)")
        try need(evalDownLimit >= 0, "eval-down-limit", "must be ≥ 0 (0 = all)")
        try need(evalDownSamples >= 1, "eval-down-samples", "must be at least 1")
        try need(evalDownMaxNewTokens >= 1, "eval-down-max-new-tokens", "must be at least 1")
        try need(evalDownTemperature >= 0 && evalDownTemperature.isFinite, "eval-down-temperature", "must be ≥ 0")
        try need(evalDownTopP > 0 && evalDownTopP <= 1, "eval-down-top-p", "must be in (0, 1]")
        try need(rlvrQuestions >= 1, "rlvr-questions", "must be at least 1")
        try need(rlvrMaxNewTokens >= 1, "rlvr-max-new-tokens", "must be at least 1")
        try need(method != "rlvr" || samplesPerChunk >= 2, "samples-per-chunk", "RLVR's leave-one-out baseline needs at least 2 samples per question")
        try need(learners >= 1 || learners == Self.autoLearners, "learners", "must be at least 1, or auto (0)")
        try need(stallTimeout > 0, "stall-timeout", "must be > 0 seconds")
        try need(loraRank >= 0, "lora-rank", "must be ≥ 0 (0 = full fine-tuning)")
        try need(loraDropout == 0, "lora-dropout", "only 0 is supported (LoRA dropout is not implemented)")
        try need(loraInit == nil || loraRank > 0, "lora-init", "needs lora-rank > 0")
        try need(microBatchTokens >= 1, "micro-batch-tokens", "must be at least 1")
        try need(!(shardOptimizer && loraRank > 0), "shard-optimizer",
                 "shards full fine-tuning's optimizer state; with lora-rank > 0 only the adapters are trained (their state is small): drop one of the two")
        if loraRank > 0 {
            do { _ = try LoRAConfig.parseTargets(loraTargets) } catch {
                throw ConfigError.invalid(field: "lora-targets", reason: "\(error)")
            }
            do { try loraConfig!.validate() } catch { throw ConfigError.invalid(field: "lora-alpha", reason: "\(error)") }
            try need(critic == nil, "critic", "with LoRA the feature network is the base model with the adapters off; "
                     + "a separate critic is not supported")
        }
    }

    // MARK: YAML and overrides

    /// The YAML key of each field is its kebab-case name (`chunk-length`). Numbers read as a
    /// person would write them and parse back to the identical Double: the shortest decimal
    /// that round-trips (Swift's `description`: `1e-05`, `0.6`, `0.3333333333333333`), without
    /// a trailing `.0` (`300`). (Yams alone prints 15 significant digits, `6e-1`, which loses
    /// bits, or 17, `1.0000000000000001e-05`.)
    public func yaml() throws -> String {
        let text = try YAMLEncoder().encode(self)
        let doubles = Self.doubleFields(self)
        // The config is flat: one `key: value` line per field at column 0 (a long string may
        // continue on indented lines, which never start with a key).
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard let colon = line.firstIndex(of: ":"), let d = doubles[String(line[..<colon])] else { return String(line) }
            return "\(line[..<colon]): \(Self.yamlNumber(d))"
        }
        return lines.joined(separator: "\n")
    }

    /// The shortest text that parses back to exactly `d` (finite values; the config has no
    /// others): `description` without a trailing `.0`. (−0 reads back as 0, an equal value.)
    static func yamlNumber(_ d: Double) -> String {
        let s = d.description
        return s.hasSuffix(".0") ? String(s.dropLast(2)) : s
    }

    /// Every Double field by YAML key, found by reflection (so a new field is covered).
    static func doubleFields(_ c: TrainConfig) -> [String: Double] {
        var out: [String: Double] = [:]
        for child in Mirror(reflecting: c).children {
            if let label = child.label, let d = child.value as? Double { out[yamlKey(label)] = d }
        }
        return out
    }

    /// Loads a YAML file over `base`: keys present in the file replace the base's values;
    /// unknown keys are an error (a typo must not silently do nothing).
    public static func load(yamlFile path: String, over base: TrainConfig = TrainConfig()) throws -> TrainConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        return try load(yamlText: text, source: path, over: base)
    }

    /// Like `load(yamlFile:over:)` for YAML text (`source` names it in errors).
    public static func load(yamlText text: String, source path: String, over base: TrainConfig = TrainConfig()) throws -> TrainConfig {
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw ConfigError.unreadable(path: path, reason: "not valid YAML: \(error)")
        }
        guard let map = node as? [String: Any] else {
            if node == nil { return base }
            throw ConfigError.unreadable(path: path, reason: "the top level must be a mapping of field: value")
        }
        var c = base
        for (k, v) in map.sorted(by: { $0.key < $1.key }) {
            if let list = v as? [Any], yamlKey(k) == "data" {
                c.data = list.map { "\($0)" }
                continue
            }
            try c.set(k, to: v is NSNull ? "null" : "\(v)", source: path)
        }
        return c
    }

    /// Applies one `key=value` override (the CLI's `--set`). Keys are kebab-case or camelCase.
    public mutating func apply(override: String) throws {
        guard let eq = override.firstIndex(of: "=") else {
            throw ConfigError.badOverride(override, reason: "expected key=value")
        }
        try set(String(override[..<eq]), to: String(override[override.index(after: eq)...]), source: "--set")
    }

    /// Sets a field from its text form; the error names the field, the value and the type.
    public mutating func set(_ key: String, to text: String, source: String = "override") throws {
        let name = Self.yamlKey(key)
        var dict = try toDictionary()
        if name == "learners" && text.trimmingCharacters(in: .whitespaces).lowercased() == "auto" {
            return try set(key, to: "\(Self.autoLearners)", source: source)
        }
        guard let current = dict[name] ?? (Self.optionalFields.contains(name) ? NSNull() : nil) else {
            throw ConfigError.unknownField(key, known: Self.allKeys)
        }
        let t = text.trimmingCharacters(in: .whitespaces)
        let value: Any
        switch current {
        case is [Any]:
            // `data`: comma-separated paths; empty or null clears the list.
            value = t.isEmpty || t == "null" ? [] : t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        case is NSNull:
            value = (t == "null" || t.isEmpty) ? NSNull() : t
        case is NSNumber where Self.boolFields.contains(name):
            guard let b = Bool(t.lowercased()) else { throw ConfigError.badValue(field: key, value: t, expected: "true or false", source: source) }
            value = b
        case is String:
            value = t == "null" && Self.optionalFields.contains(name) ? NSNull() : t
        case is NSNumber:
            if Self.integerFields.contains(name) {
                guard let i = Int(t) else { throw ConfigError.badValue(field: key, value: t, expected: "an integer", source: source) }
                value = i
            } else {
                guard let d = Double(t), d.isFinite else { throw ConfigError.badValue(field: key, value: t, expected: "a number", source: source) }
                value = d
            }
        default:
            throw ConfigError.badValue(field: key, value: t, expected: "a value", source: source)
        }
        dict[name] = value
        let data = try JSONSerialization.data(withJSONObject: dict)
        do {
            self = try JSONDecoder().decode(TrainConfig.self, from: data)
        } catch {
            throw ConfigError.badValue(field: key, value: t, expected: "a value of the field's type", source: source)
        }
    }

    private func toDictionary() throws -> [String: Any] {
        let data = try JSONEncoder().encode(self)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    /// The kebab-case YAML key for a kebab-case, snake_case or camelCase spelling.
    static func yamlKey(_ key: String) -> String {
        var out = ""
        for ch in key {
            if ch.isUppercase { out += "-" + ch.lowercased() } else if ch == "_" { out += "-" } else { out.append(ch) }
        }
        return out
    }

    static let optionalFields: Set<String> = ["model", "critic", "validation-data", "eval-data", "lora-init", "plan-calibration"]
    static let boolFields: Set<String> = ["whitening", "colocate", "async", "eval-down-start", "shared-prefix",
                                           "shard-optimizer"]
    static let integerFields: Set<String> = [
        "chunk-length", "context-length", "generate-length", "stride", "samples-per-chunk", "chunks-per-step",
        "steps", "episodes", "seed", "max-bad-steps", "spike-window", "eval-every", "eval-chunks", "eval-seeds",
        "save-every", "learners", "lora-rank", "micro-batch-tokens",
        "eval-down-every", "eval-down-limit", "eval-down-samples", "eval-down-max-new-tokens",
        "rlvr-questions", "rlvr-max-new-tokens",
    ]

    /// Every key, kebab-case, in declaration order.
    public static var allKeys: [String] { CodingKeys.allCases.map(\.rawValue) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, critic, task, method
        case corpusRoot = "corpus-root", validationFraction = "validation-fraction"
        case data, dataGlob = "data-glob", dataFormat = "data-format", textKey = "text-key", inputKey = "input-key"
        case outputKey = "output-key", validationData = "validation-data", maxBadFraction = "max-bad-fraction"
        case dataCache = "data-cache", evalData = "eval-data"
        case chunkLength = "chunk-length", contextLength = "context-length"
        case generateLength = "generate-length", stride
        case samplesPerChunk = "samples-per-chunk", chunksPerStep = "chunks-per-step"
        case temperature, topP = "top-p"
        case alignmentCoef = "alignment-coef", diversityCoef = "diversity-coef", ceCoef = "ce-coef"
        case whitening, gtWhitening = "gt-whitening", pooling
        case learningRate = "learning-rate", warmupRatio = "warmup-ratio"
        case beta1, beta2, adamEps = "adam-eps", weightDecay = "weight-decay"
        case maxGradNorm = "max-grad-norm"
        case loraRank = "lora-rank", loraAlpha = "lora-alpha", loraTargets = "lora-targets", loraDropout = "lora-dropout"
        case loraInit = "lora-init"
        case steps, episodes, seed, flopBudget = "flop-budget"
        case maxBadSteps = "max-bad-steps", spikeWindow = "spike-window", spikeZ = "spike-z"
        case evalEvery = "eval-every", evalChunks = "eval-chunks", evalSeeds = "eval-seeds", saveEvery = "save-every"
        case evalDownEvery = "eval-down-every", evalDownStart = "eval-down-start", evalDownLimit = "eval-down-limit"
        case evalDownSamples = "eval-down-samples", evalDownMaxNewTokens = "eval-down-max-new-tokens"
        case evalDownTemperature = "eval-down-temperature", evalDownTopP = "eval-down-top-p"
        case runDir = "run-dir", learners, colocate, async, stallTimeout = "stall-timeout"
        case rlvrQuestions = "rlvr-questions", rlvrMaxNewTokens = "rlvr-max-new-tokens"
        case sharedPrefix = "shared-prefix", microBatchTokens = "micro-batch-tokens"
        case shardOptimizer = "shard-optimizer"
        case planCalibration = "plan-calibration"
    }
}

public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case unknownPreset(String, known: [String])
    case unknownField(String, known: [String])
    case badOverride(String, reason: String)
    case badValue(field: String, value: String, expected: String, source: String)
    case invalid(field: String, reason: String)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownPreset(p, known):
            return "unknown preset '\(p)'; choose one of: \(known.joined(separator: ", "))"
        case let .unknownField(f, known):
            return "unknown config field '\(f)'; fields are: \(known.joined(separator: ", "))"
        case let .badOverride(o, reason):
            return "bad override '\(o)': \(reason)"
        case let .badValue(field, value, expected, source):
            return "config field '\(field)' (from \(source)): '\(value)' is not \(expected)"
        case let .invalid(field, reason):
            return "config field '\(field)': \(reason)"
        case let .unreadable(path, reason):
            return "cannot read config file \(path): \(reason)"
        }
    }
}

extension TrainConfig {
    /// The LoRA settings (nil: full fine-tuning).
    public var loraConfig: LoRAConfig? {
        guard loraRank > 0 else { return nil }
        let targets = (try? LoRAConfig.parseTargets(loraTargets)) ?? []
        return LoRAConfig(rank: loraRank, alpha: loraAlpha, targets: targets)
    }
}
