import Foundation

/// `random:key=value,...`: a randomly initialised model of a given shape, for tests and
/// benchmarks (`--set model=random:…`, `ebft-dist bench model --model random:…`).
///
/// Keys: dim, layers, heads, kv-heads, ffn, seed, std, context (the context length; unlimited
/// when absent) and the family options arch (llama, qwen2, qwen3, mistral: qwen2 adds q/k/v
/// biases, qwen3 q/k norms), head-dim, vocab, tied (true/false), attention-bias (llama, qwen3:
/// q/k/v and output biases), mlp-bias (llama), rope-theta, rope-scaling (`linear:F` or
/// `llama3:F:LOW:HIGH:ORIGINAL`). `shape=NAME` starts from a published shape (`shapes`) that
/// the other keys then change. An unknown or repeated key is an error.
public enum RandomModelSpec {
    public static let prefix = "random:"

    /// The keys, in the order the error message lists them.
    public static let keys = ["dim", "layers", "heads", "kv-heads", "ffn", "seed", "std", "context",
                              "shape", "arch", "head-dim", "vocab", "tied", "attention-bias", "mlp-bias",
                              "rope-theta", "rope-scaling"]

    /// Published shapes `shape=` starts from.
    public static let shapes: [String: ModelConfig] = [
        "smollm2-135m": .smolLM2_135M,
        "qwen2.5-0.5b": .qwen25_05B,
        "llama-3.2-1b": .llama32_1B,
    ]

    public struct SpecError: Error, CustomStringConvertible, LocalizedError {
        public var message: String
        public var description: String { message }
        public var errorDescription: String? { message }
    }

    /// Whether `spec` is a random-model spec.
    public static func matches(_ spec: String) -> Bool { spec.hasPrefix(prefix) }

    /// Parses `spec` and returns the randomly initialised store (N(0, std²) matrices and biases,
    /// norm weights 1). `vocab` is the vocabulary size unless `vocab=` or `shape=` gives one.
    public static func make(_ spec: String, vocab defaultVocab: Int) throws -> ParameterStore {
        func bad(_ s: String) -> SpecError { SpecError(message: s) }
        var v: [String: String] = [:]
        for part in spec.dropFirst(prefix.count).split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw bad("bad random model spec part '\(part)' (expected key=value)") }
            guard keys.contains(kv[0]) else {
                throw bad("unknown key '\(kv[0])' in '\(spec)'; the keys are \(keys.joined(separator: ", "))")
            }
            guard v[kv[0]] == nil else { throw bad("key '\(kv[0])' given twice in '\(spec)'") }
            v[kv[0]] = kv[1]
        }
        var base: ModelConfig? = nil
        if let s = v["shape"] {
            guard let c = shapes[s] else {
                throw bad("shape=\(s) is not known; the shapes are \(shapes.keys.sorted().joined(separator: ", "))")
            }
            base = c
        }
        func int(_ k: String, _ d: Int) throws -> Int {
            guard let s = v[k] else { return d }
            guard let i = Int(s), i > 0 else { throw bad("\(k)=\(s) is not a positive integer") }
            return i
        }
        func bool(_ k: String, _ d: Bool) throws -> Bool {
            guard let s = v[k] else { return d }
            guard let b = Bool(s) else { throw bad("\(k)=\(s) is not true or false") }
            return b
        }
        func number(_ s: String, _ what: String) throws -> Double {
            guard let x = Double(s), x.isFinite else { throw bad("\(what) '\(s)' is not a finite number") }
            return x
        }
        let arch: ModelArchitecture
        if let a = v["arch"] {
            guard let x = ModelArchitecture(rawValue: a) else {
                throw bad("arch=\(a) is not one of \(ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            arch = x
        } else {
            arch = base?.architecture ?? .llama
        }
        let dim = try int("dim", base?.dim ?? 32), heads = try int("heads", base?.heads ?? 4)
        let headDim: Int
        if v["head-dim"] != nil {
            headDim = try int("head-dim", 0)
        } else if let b = base, v["dim"] == nil, v["heads"] == nil {
            headDim = b.headDim
        } else {
            guard dim % heads == 0 else { throw bad("dim=\(dim) is not a multiple of heads=\(heads)") }
            headDim = dim / heads
        }
        var std = 0.02
        if let s = v["std"] {
            guard let x = Double(s), x >= 0, x.isFinite else { throw bad("std=\(s) is not a finite number ≥ 0") }
            std = x
        }
        let attentionBias = try bool("attention-bias", base?.outputBias ?? false)
        if v["attention-bias"] != nil && !(arch == .llama || arch == .qwen3) {
            throw bad("attention-bias is an option of arch=llama and arch=qwen3, not \(arch.rawValue)")
        }
        let mlpBias = try bool("mlp-bias", base?.mlpBias ?? false)
        if v["mlp-bias"] != nil && arch != .llama { throw bad("mlp-bias is an option of arch=llama, not \(arch.rawValue)") }
        var theta = Double(base?.ropeBase ?? 10000)
        if let s = v["rope-theta"] {
            theta = try number(s, "rope-theta")
            guard theta > 1 else { throw bad("rope-theta=\(s) must be > 1") }
        }
        var scaling = base?.ropeScaling
        if let s = v["rope-scaling"] {
            let f = s.split(separator: ":").map(String.init)
            switch (f.first, f.count) {
            case ("linear", 2):
                scaling = RopeScaling(kind: .linear, factor: try number(f[1], "rope-scaling factor"))
            case ("llama3", 5):
                guard let orig = Int(f[4]), orig > 0 else { throw bad("rope-scaling original context '\(f[4])' is not a positive integer") }
                scaling = RopeScaling(kind: .llama3, factor: try number(f[1], "rope-scaling factor"),
                                      lowFreqFactor: try number(f[2], "rope-scaling low_freq_factor"),
                                      highFreqFactor: try number(f[3], "rope-scaling high_freq_factor"),
                                      originalMaxPositionEmbeddings: orig)
            default:
                throw bad("rope-scaling=\(s): expected linear:FACTOR or llama3:FACTOR:LOW:HIGH:ORIGINAL_CONTEXT")
            }
        }
        let c = ModelConfig(dim: dim, layers: try int("layers", base?.layers ?? 2), heads: heads,
                            kvHeads: try int("kv-heads", base?.kvHeads ?? 2), headDim: headDim,
                            ffnDim: try int("ffn", base?.ffnDim ?? 64), vocabSize: try int("vocab", base?.vocabSize ?? defaultVocab),
                            ropeBase: Float(theta), normEps: base?.normEps ?? 1e-5,
                            tiedEmbeddings: try bool("tied", base?.tiedEmbeddings ?? true), architecture: arch,
                            qkvBias: arch == .qwen2 || attentionBias, outputBias: attentionBias,
                            mlpBias: mlpBias, qkNorm: arch == .qwen3, ropeScaling: scaling)
        do { try c.validate() } catch { throw bad("\(error)") }
        let p = ParameterStore(config: c)
        p.randomize(seed: UInt64(try int("seed", 1)), std: Float(std))
        p.contextLength = v["context"] == nil ? nil : try int("context", 0)
        return p
    }
}

extension ModelConfig {
    /// Qwen2.5-0.5B(-Instruct): q/k/v biases, tied embeddings, rope theta 10⁶.
    public static let qwen25_05B = ModelConfig(
        dim: 896, layers: 24, heads: 14, kvHeads: 2, headDim: 64, ffnDim: 4864, vocabSize: 151936,
        ropeBase: 1_000_000, normEps: 1e-6, tiedEmbeddings: true, architecture: .qwen2, qkvBias: true)

    /// Llama-3.2-1B's config.json: 16 layers of 2048, 32 heads of 64 (8 KV heads), ffn 8192,
    /// vocabulary 128,256, tied head, rope theta 500,000 with llama3 scaling (factor 32).
    public static let llama32_1B = ModelConfig(
        dim: 2048, layers: 16, heads: 32, kvHeads: 8, headDim: 64, ffnDim: 8192, vocabSize: 128_256,
        ropeBase: 500_000, normEps: 1e-5, tiedEmbeddings: true, architecture: .llama,
        ropeScaling: RopeScaling(kind: .llama3, factor: 32, lowFreqFactor: 1, highFreqFactor: 4,
                                 originalMaxPositionEmbeddings: 8192))
}
