import Dispatch
import Model

/// How tokens are drawn: temperature, nucleus, and the seed of the counter-based RNG.
public struct SamplingOptions: Equatable, Sendable {
    public var temperature: Float
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float, topP: Float = 1, seed: UInt64) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }
}

/// The n rollouts of one chunk: for every sample, `G·K` tokens in step-major order
/// (index `t·K + k` is token t of block k) and their log-probabilities at the sampling
/// temperature.
public struct ChunkRollouts: Equatable, Sendable {
    public var chunkID: Int
    public var tokens: [[Int32]]
    public var logProbs: [[Float]]

    public init(chunkID: Int, tokens: [[Int32]], logProbs: [[Float]]) {
        self.chunkID = chunkID
        self.tokens = tokens
        self.logProbs = logProbs
    }
}

/// Strided block-parallel sampling (spec §4) with a KV cache: the chunk's keys/values are
/// computed once and shared by every block of every sample; each decode step advances all
/// K·n blocks together as one batch. Token (t, k) of sample i of chunk `id` is drawn with the
/// uniform keyed by (seed, id, i, k, t), so the tokens do not depend on batching or ranks.
public struct StridedSampler {
    public let model: Transformer
    public let geometry: StridedGeometry
    public let samples: Int
    public let options: SamplingOptions

    public init(model: Transformer, geometry: StridedGeometry, samples: Int, options: SamplingOptions) {
        precondition(samples >= 1, "need at least one sample per chunk")
        self.model = model
        self.geometry = geometry
        self.samples = samples
        self.options = options
    }

    public func sample(chunk: [Int32], id: Int) -> ChunkRollouts {
        sample(chunks: [(id: id, tokens: chunk)])[0]
    }

    /// Most decode streams advanced together by `sample(chunks:)`: chunks join one batch while
    /// their n·K streams fit (a chunk with more streams decodes alone). More rows per sgemm read
    /// the weights once for more tokens; the logits [streams × vocab] bound the memory.
    public static var maxBatchStreams = 256

    /// The rollouts of several chunks: each chunk is prefilled on its own, then the decode steps
    /// of as many chunks as fit in `maxBatchStreams` streams run as one batch over their
    /// prefixes. Token (t, k) of sample i of chunk `id` is drawn with the uniform keyed by
    /// (seed, id, i, k, t), so the tokens are those of sampling each chunk alone.
    public func sample(chunks: [(id: Int, tokens: [Int32])]) -> [ChunkRollouts] {
        let streamsPerChunk = samples * geometry.K
        var out: [ChunkRollouts] = []
        var start = 0
        while start < chunks.count {
            var end = start + 1
            while end < chunks.count && (end - start + 1) * streamsPerChunk <= Self.maxBatchStreams { end += 1 }
            out += sampleBatch(Array(chunks[start..<end]))
            start = end
        }
        return out
    }

    func sampleBatch(_ chunks: [(id: Int, tokens: [Int32])]) -> [ChunkRollouts] {
        let g = geometry, K = g.K, G = g.G, n = samples, V = model.config.vocabSize, C = chunks.count
        let perChunk = n * K
        for c in chunks {
            precondition(c.tokens.count == g.P, "chunk has \(c.tokens.count) tokens, geometry wants P = \(g.P)")
        }
        // Step 0 of block k is predicted by the chunk's row a_k − 1 (spec §4.5).
        let prefixes = chunks.map { model.prefill(tokens: $0.tokens, logitRows: (0..<K).map { g.anchor($0) - 1 }) }
        var tokens = [[[Int32]]](repeating: [[Int32]](repeating: [Int32](repeating: 0, count: G * K), count: n), count: C)
        var logProbs = [[[Float]]](repeating: [[Float]](repeating: [Float](repeating: 0, count: G * K), count: n), count: C)
        // Stream b = ci·n·K + i·K + k.
        var current = [Int32](repeating: 0, count: C * perChunk)
        var currentLogP = [Float](repeating: 0, count: C * perChunk)
        let first = C == 1 ? prefixes[0].logits : prefixes.flatMap { $0.logits }   // [C, K, V]
        first.withUnsafeBufferPointer { lb in
            pickAll(count: C * perChunk, into: &current, &currentLogP) { b in
                let ci = b / perChunk, i = (b % perChunk) / K, k = b % K
                return (lb.baseAddress! + (ci * K + k) * V, self.uniform(chunks[ci].id, i, k, 0))
            }
        }
        record(step: 0, current, currentLogP, &tokens, &logProbs)
        if G > 1 {
            let streams = (0..<(C * perChunk)).map { b -> DecodeStream in
                let a = g.anchor(b % K)
                return DecodeStream(prefix: b / perChunk, prefixLength: a, firstPosition: a)
            }
            let batch = DecodeBatch(model: model, prefixes: prefixes, streams: streams, maxNewTokens: G - 1)
            for t in 1..<G {
                let logits = batch.step(tokens: current)
                logits.withUnsafeBufferPointer { lb in
                    pickAll(count: C * perChunk, into: &current, &currentLogP) { b in
                        (lb.baseAddress! + b * V, self.uniform(chunks[b / perChunk].id, (b % perChunk) / K, b % K, t))
                    }
                }
                record(step: t, current, currentLogP, &tokens, &logProbs)
            }
        }
        return (0..<C).map { ChunkRollouts(chunkID: chunks[$0].id, tokens: tokens[$0], logProbs: logProbs[$0]) }
    }

    @inline(__always)
    func uniform(_ id: Int, _ i: Int, _ k: Int, _ t: Int) -> Double {
        CounterRNG.samplingUniform(seed: options.seed, chunk: id, sample: i, block: k, token: t)
    }

    /// Draws one token per stream; `source(b)` gives stream b's logits and uniform.
    func pickAll(count: Int, into tokens: inout [Int32], _ logProbs: inout [Float],
                 _ source: (Int) -> (UnsafePointer<Float>, Double)) {
        let V = model.config.vocabSize, T = options.temperature, p = options.topP
        tokens.withUnsafeMutableBufferPointer { tb in
            logProbs.withUnsafeMutableBufferPointer { lb in
                let tp = tb.baseAddress!, lp = lb.baseAddress!
                withoutActuallyEscaping(source) { src in
                    let workers = min(count, Sampling.parallelism)
                    DispatchQueue.concurrentPerform(iterations: workers) { w in
                        var b = w
                        while b < count {
                            let (logits, u) = src(b)
                            let r = Sampling.pick(logits: logits, vocab: V, temperature: T, topP: p, uniform: u)
                            tp[b] = r.token
                            lp[b] = r.logProb
                            b += workers
                        }
                    }
                }
            }
        }
    }

    /// Stream b = ci·n·K + i·K + k's token t into chunk ci's sample i.
    func record(step t: Int, _ current: [Int32], _ currentLogP: [Float],
                _ tokens: inout [[[Int32]]], _ logProbs: inout [[[Float]]]) {
        let K = geometry.K, perChunk = samples * K
        for b in 0..<current.count {
            let ci = b / perChunk, i = (b % perChunk) / K, k = b % K
            tokens[ci][i][t * K + k] = current[b]
            logProbs[ci][i][t * K + k] = currentLogP[b]
        }
    }
}

extension Sampling {
    /// Threads used to draw tokens for many streams at once (the picks are independent);
    /// defaults to the BLAS thread count, so ranks × threads stays within the cores.
    public static var parallelism: Int = max(1, BLAS.threads)
}

/// The two slower ways to get the same rollouts, for tests and `bench sampler`.
public enum ReferenceSamplers {
    /// Every (prefix, sample) separately: prefill x[0 : a_k] and decode G tokens with one
    /// stream (ordinary autoregressive sampling with a KV cache, once per block and sample).
    /// `sharePrefill` reuses one prefill for the n samples of a block; `blocks` restricts the
    /// work to some blocks (for benchmarks; other blocks' tokens stay 0).
    public static func naive(model: Transformer, geometry g: StridedGeometry, samples n: Int,
                             options o: SamplingOptions, chunk: [Int32], id: Int,
                             sharePrefill: Bool = true, blocks: [Int]? = nil) -> ChunkRollouts {
        let K = g.K, G = g.G
        var tokens = [[Int32]](repeating: [Int32](repeating: 0, count: G * K), count: n)
        var logProbs = [[Float]](repeating: [Float](repeating: 0, count: G * K), count: n)
        for k in blocks ?? Array(0..<K) {
            let a = g.anchor(k)
            var prefix = model.prefill(tokens: Array(chunk[0..<a]), logitRows: [a - 1])
            for i in 0..<n {
                if i > 0 && !sharePrefill { prefix = model.prefill(tokens: Array(chunk[0..<a]), logitRows: [a - 1]) }
                var r = prefix.logits.withUnsafeBufferPointer {
                    Sampling.pick(logits: $0.baseAddress!, vocab: $0.count, temperature: o.temperature, topP: o.topP,
                                  uniform: CounterRNG.samplingUniform(seed: o.seed, chunk: id, sample: i, block: k, token: 0))
                }
                tokens[i][k] = r.token
                logProbs[i][k] = r.logProb
                guard G > 1 else { continue }
                let batch = DecodeBatch(model: model, prefix: prefix,
                                        streams: [DecodeStream(prefixLength: a, firstPosition: a)], maxNewTokens: G - 1)
                for t in 1..<G {
                    let logits = batch.step(tokens: [r.token])
                    r = logits.withUnsafeBufferPointer {
                        Sampling.pick(logits: $0.baseAddress!, vocab: $0.count, temperature: o.temperature, topP: o.topP,
                                      uniform: CounterRNG.samplingUniform(seed: o.seed, chunk: id, sample: i, block: k, token: t))
                    }
                    tokens[i][t * K + k] = r.token
                    logProbs[i][t * K + k] = r.logProb
                }
            }
        }
        return ChunkRollouts(chunkID: id, tokens: tokens, logProbs: logProbs)
    }

    /// The authors' scheme (spec §4.6): no KV cache; G full forwards of the whole strided
    /// sequence (n samples as a batch), step t reading one logits row per block.
    public static func fullRecompute(model: Transformer, geometry g: StridedGeometry, samples n: Int,
                                     options o: SamplingOptions, chunk: [Int32], id: Int) -> ChunkRollouts {
        let K = g.K, G = g.G, V = model.config.vocabSize
        var z = [[Int32]](repeating: chunk, count: n)
        var logProbs = [[Float]](repeating: [], count: n)
        for t in 0..<G {
            let S = g.P + t * K
            let rows = (0..<n).flatMap { i in (0..<K).map { k in i * S + g.predictionRow(t: t, k: k) } }
            let logits = model.logits(tokens: z.flatMap { $0 }, layout: g.layout(tDone: t), rows: rows)
            logits.withUnsafeBufferPointer { lb in
                for i in 0..<n {
                    for k in 0..<K {
                        let r = Sampling.pick(logits: lb.baseAddress! + (i * K + k) * V, vocab: V, temperature: o.temperature,
                                              topP: o.topP,
                                              uniform: CounterRNG.samplingUniform(seed: o.seed, chunk: id, sample: i, block: k, token: t))
                        z[i].append(r.token)
                        logProbs[i].append(r.logProb)
                    }
                }
            }
        }
        return ChunkRollouts(chunkID: id, tokens: z.map { Array($0[g.P...]) }, logProbs: logProbs)
    }
}
