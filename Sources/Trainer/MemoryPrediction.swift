import Model
import Rollout

/// Predicted resident bytes of one rank during an EBFT step (`ebft-dist bench memory`), by
/// category, from the model's shapes and the run's geometry. Every buffer the step allocates
/// and keeps is counted at the largest size the step asks of it (`Attention.Buffer`s grow to
/// the largest request and are not shrunk):
///
/// - weights: the flat Float32 parameters (padding included), 4·P; with LoRA also the adapters.
/// - frozen critic: rollout workers' copy of the initial weights for the feature network, 4·P
///   (none with LoRA: the critic is the base with the adapters off).
/// - gradients: learners' flat gradient, 4·P (LoRA: the adapters'; sharded, the reduce-scatter
///   sums in place, so no more).
/// - optimizer: Adam's m and v, 8·P (sharded: 8·P/L; LoRA: 8·A).
/// - activations: the policy's training workspace for the largest micro-batch of T tokens
///   (≤ 4096, whole strided sequences): per block rstd (2), q, k, v, attention output, lse,
///   mid-residual, gate, up; the residual stream at every block input (L + 1)·d; the shared
///   forward/backward buffers (`Transformer.Workspace`), and on workers the critic's inference
///   workspace for n strided sequences (one block's buffers, two residual buffers) plus the
///   three captured feature layers.
/// - logits: the vocabulary-projection chunk (256 rows × V) and its two [256 × d] buffers;
///   on workers the sampler's per-stream logits.
/// - KV cache: the sampler's prefix caches (P positions per chunk decoded together) and the decode cache of its streams × G
///   new tokens, every block, keys and values.
/// - runtime: what the process holds before any model (binary, libraries, MPI, tokenizer and
///   data): given by the caller (measured).
public struct MemoryPrediction: Equatable, Sendable {
    public enum Role: String, Sendable, CaseIterable {
        case learner, worker, colocated
        var learns: Bool { self != .worker }
        var samples: Bool { self != .learner }
    }

    public struct Line: Equatable, Sendable {
        public var category: String
        public var bytes: Double
    }

    public var role: Role
    public var lines: [Line]
    public var total: Double { lines.reduce(0) { $0 + $1.bytes } }

    /// LoRA adapters on q, k, v, o, gate, up, down of every block at rank r: A (r × in) and
    /// B (out × r) per projection, i.e. r·(in + out) parameters each.
    public static func loraParameters(_ c: ModelConfig, rank r: Int) -> Int {
        let d = c.dim, q = c.qDim, kv = c.kvDim, f = c.ffnDim
        let perLayer = (d + q) + 2 * (d + kv) + (q + d) + 2 * (d + f) + (f + d)
        return c.layers * r * perLayer
    }

    /// Floats per token the training forward keeps per block (`Transformer.LayerActs`).
    static func actsPerToken(_ c: ModelConfig) -> Int {
        let base = 2 + 2 * c.qDim + 2 * c.kvDim + c.heads + c.dim + 2 * c.ffnDim
        return base + (c.qkNorm ? c.qDim + c.kvDim + c.heads + c.kvHeads : 0)
    }

    /// Floats per token of the shared workspace: xn, h, rstdF, hN, dx, dxn, dhN, dq, dk, dv,
    /// datt, dgate, dup, dh (+ dqRaw, dkRaw with q/k norms).
    static func workspacePerToken(_ c: ModelConfig) -> Int {
        let d = c.dim, f = c.ffnDim
        return d + f + 1 + d + 3 * d + 2 * c.qDim + 2 * c.kvDim + 2 * f + max(f, d) + (c.qkNorm ? c.qDim + c.kvDim : 0)
    }

    /// - Parameters:
    ///   - parameters: the flat parameter count P (`ParameterLayout.count`).
    ///   - config: the run (geometry, samples, chunks per step).
    ///   - learners: L; `workers`: rollout workers (for colocated: the number of ranks).
    ///   - loraRank: adapters of this rank instead of full fine-tuning.
    ///   - shardOptimizer: Adam's state sharded over the L learners (full fine-tuning).
    ///   - runtime: bytes the process holds before the model (measured by the caller).
    public static func predict(model c: ModelConfig, parameters P: Int, config t: TrainConfig, role: Role,
                               learners L: Int, workers W: Int, loraRank: Int? = nil, shardOptimizer: Bool = false,
                               runtime: Double = 0, logitChunkRows: Int = 256,
                               maxBatchStreams: Int = StridedSampler.maxBatchStreams) -> MemoryPrediction {
        let f4 = 4.0
        let maxTokensPerBatch = t.microBatchTokens
        let d = c.dim, V = c.vocabSize
        let A = loraRank.map { loraParameters(c, rank: $0) } ?? 0
        let lora = loraRank != nil
        let K = (t.chunkLength - t.generateLength - t.contextLength) / t.stride + 1
        let S = t.chunkLength + t.generateLength * K        // strided sequence length
        let n = t.samplesPerChunk
        var lines: [Line] = []
        func add(_ name: String, _ bytes: Double) { lines.append(Line(category: name, bytes: bytes)) }
        add("runtime", runtime)
        add("weights", f4 * Double(P + A))
        if role.samples && !lora { add("frozen critic", f4 * Double(P)) } else { add("frozen critic", 0) }
        let shards = shardOptimizer && !lora && role == .learner ? L : (shardOptimizer && !lora && role == .colocated ? W : 1)
        if role.learns {
            let shardP = Double(P) / Double(shards)
            add("gradients", lora ? f4 * Double(A) : f4 * Double(P))
            add("optimizer", lora ? 2 * f4 * Double(A) : 2 * f4 * shardP)
        } else {
            add("gradients", 0); add("optimizer", 0)
        }
        // Training activations of the largest micro-batch.
        var acts = 0.0, logits = 0.0, kv = 0.0
        if role.learns {
            let total = t.chunksPerStep * n
            let chunksHere = role == .colocated ? (t.chunksPerStep + W - 1) / W : t.chunksPerStep
            let seqs = role == .colocated ? chunksHere * n : (total + L - 1) / L
            var T: Double
            if t.sharedPrefix, let g = try? StridedGeometry(P: t.chunkLength, c: t.contextLength, G: t.generateLength,
                                                           s: t.stride) {
                // Shared prefixes: a piece is one chunk's samples on this learner (sequence j goes
                // to learner j mod L) that fit the micro-batch, pieces of equal size stacked.
                let chunksWithSamples = role == .colocated ? chunksHere : t.chunksPerStep
                let samplesHere = role == .colocated || L == 1 ? n : (n + L - 1) / L
                let sizes = g.sharedGroupSizes(samples: samplesHere, maxTokens: maxTokensPerBatch)
                let m = sizes.max() ?? 1
                let pieces = chunksWithSamples * sizes.filter { $0 == m }.count
                let Sm = g.sharedLength(samples: m)
                T = Double(min(pieces, max(1, maxTokensPerBatch / Sm)) * Sm)
            } else {
                let perBatch = max(1, maxTokensPerBatch / S)
                T = Double(min(seqs, perBatch) * S)
            }
            let loraActs = lora ? 7 * (loraRank ?? 0) : 0
            acts += T * Double(c.layers * (actsPerToken(c) + loraActs) + (c.layers + 1) * d + workspacePerToken(c)) * f4
            logits += Double(logitChunkRows) * Double(V + 2 * d) * f4
        }
        if role.samples {
            // Critic inference over n strided sequences: block buffers (one block), two residual
            // buffers, xn and h, and the three captured layers.
            // (with shared prefixes one sequence of the chunk and the n samples' tokens)
            let Tc = Double(t.sharedPrefix ? t.chunkLength + n * t.generateLength * K : n * S)
            if !role.learns {
                // The policy's own workspace on a pure worker: the prefix forward of one chunk.
                let Tp = Double(t.chunkLength)
                acts += Tp * Double(actsPerToken(c) + 2 * d + d + c.ffnDim) * f4
            }
            acts += Tc * Double(actsPerToken(c) + 2 * d + d + c.ffnDim + 3 * d) * f4
            // The sampler decodes as many of this rank's chunks together as fit in
            // `maxBatchStreams` streams (at least one): their prefix caches, their streams'
            // decode caches and logits.
            let chunksHere = role == .colocated ? (t.chunksPerStep + W - 1) / W : (t.chunksPerStep + max(1, W) - 1) / max(1, W)
            let together = Double(max(1, min(chunksHere, maxBatchStreams / max(1, n * K))))
            let streams = together * Double(n * K)
            kv += together * Double(t.chunkLength) * Double(c.layers * c.kvDim * 2) * f4
            kv += streams * Double(t.generateLength) * Double(c.layers * c.kvDim * 2) * f4
            logits += 2 * streams * Double(V) * f4
        }
        add("activations", acts)
        add("logits", logits)
        add("KV cache", kv)
        return MemoryPrediction(role: role, lines: lines)
    }
}
