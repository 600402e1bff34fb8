import Foundation

/// Throughput of the transformer on this machine, compared with the sgemm peak measured in the
/// same process (for `ebft-dist bench model`).
public enum ModelBench {
    public struct Row: Sendable, CustomStringConvertible {
        public var name: String
        public var tokens: Int
        public var seconds: Double
        /// Model FLOPs of the measured work (forward = 2·matmul params + attention per token;
        /// forward+backward = 3× forward).
        public var flops: Double
        public var peakGFLOPS: Double

        public var tokensPerSecond: Double { Double(tokens) / seconds }
        public var gflops: Double { flops / seconds / 1e9 }
        /// Model FLOPs utilisation relative to the measured sgemm peak.
        public var mfu: Double { gflops / peakGFLOPS }

        public var description: String {
            func f(_ x: Double, _ p: Int) -> String { String(format: "%.\(p)f", x) }
            return "\(name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(f(tokensPerSecond, 1).leftPad(10)) tok/s "
                + "\(f(gflops, 1).leftPad(8)) GFLOP/s  MFU \(f(100 * mfu, 1).leftPad(5))%"
        }
    }

    /// Best-of-`repeats` GFLOP/s of an n×n×n sgemm.
    public static func sgemmPeak(n: Int = 1024, repeats: Int = 5) -> Double {
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            BLAS.sgemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(n * n * n) / best / 1e9
    }

    static func time(_ repeats: Int, _ body: () -> Void) -> Double {
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return best
    }

    /// Forward (with log-probs of all S−1 next tokens), forward+backward (loss over the same
    /// predictions) on one causal sequence of `sequenceLength`, and KV-cached decoding at each
    /// batch size in `decodeBatches` after a shared prefix of `decodePrefix` tokens.
    /// Random weights (N(0, 0.02)); timings are best of `repeats`.
    public static func run(config: ModelConfig = .smolLM2_135M, sequenceLength S: Int = 512,
                           decodeBatches: [Int] = [1, 16, 64], decodePrefix: Int = 512, decodeSteps: Int = 16,
                           repeats: Int = 2, seed: UInt64 = 1, log: ((String) -> Void)? = nil) -> [Row] {
        let peak = sgemmPeak()
        log?("sgemm 1024³ peak: \(String(format: "%.1f", peak)) GFLOP/s (\(BLAS.threads) threads)")
        let params = ParameterStore(config: config)
        params.randomize(seed: seed)
        let model = Transformer(parameters: params)
        var state = seed
        func tok() -> Int32 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32(truncatingIfNeeded: (state >> 33) % UInt64(config.vocabSize))
        }
        var rows: [Row] = []
        let tokens = (0..<S).map { _ in tok() }
        let layout = AttentionLayout.causal(length: S)
        let preds = (0..<S - 1).map { Prediction(row: $0, target: tokens[$0 + 1]) }
        let fwdFlops = Double(S) * config.flopsPerToken(contextLength: (S + 1) / 2)
        let tf = time(repeats) { _ = model.logProbs(tokens: tokens, layout: layout, predictions: preds) }
        rows.append(Row(name: "forward S=\(S) (+logprobs)", tokens: S, seconds: tf, flops: fwdFlops, peakGFLOPS: peak))
        log?(rows.last!.description)
        let grads = ParameterStore(like: params)
        let tb = time(repeats) { _ = model.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, grads: grads) }
        rows.append(Row(name: "forward+backward S=\(S)", tokens: S, seconds: tb, flops: 3 * fwdFlops, peakGFLOPS: peak))
        log?(rows.last!.description)
        model.recomputeActivations = true
        let tr = time(repeats) { _ = model.lossAndGradient(tokens: tokens, layout: layout, predictions: preds, grads: grads) }
        rows.append(Row(name: "forward+backward S=\(S) recompute", tokens: S, seconds: tr, flops: 3 * fwdFlops, peakGFLOPS: peak))
        log?(rows.last!.description)
        model.recomputeActivations = false

        let prefixTokens = (0..<decodePrefix).map { _ in tok() }
        let tp = time(1) { _ = model.prefill(tokens: prefixTokens) }
        rows.append(Row(name: "prefill P=\(decodePrefix)", tokens: decodePrefix, seconds: tp,
                        flops: Double(decodePrefix) * (config.flopsPerToken(contextLength: (decodePrefix + 1) / 2)
                                                      - 2 * Double(config.vocabSize * config.dim)),
                        peakGFLOPS: peak))
        log?(rows.last!.description)
        let prefix = model.prefill(tokens: prefixTokens)
        for B in decodeBatches {
            let streams = (0..<B).map { _ in DecodeStream(prefixLength: decodePrefix, firstPosition: decodePrefix) }
            var flops = 0.0
            let td = time(repeats) {
                let batch = DecodeBatch(model: model, prefix: prefix, streams: streams, maxNewTokens: decodeSteps)
                flops = 0
                for t in 0..<decodeSteps {
                    _ = batch.step(tokens: (0..<B).map { _ in tok() })
                    flops += Double(B) * config.flopsPerToken(contextLength: decodePrefix + t + 1)
                }
            }
            rows.append(Row(name: "decode B=\(B) after P=\(decodePrefix)", tokens: B * decodeSteps, seconds: td,
                            flops: flops, peakGFLOPS: peak))
            log?(rows.last!.description)
        }
        return rows
    }
}

extension String {
    fileprivate func leftPad(_ n: Int) -> String {
        count >= n ? self : String(repeating: " ", count: n - count) + self
    }
}
