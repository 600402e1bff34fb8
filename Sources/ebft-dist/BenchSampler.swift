import ArgumentParser
import Foundation
import Model
import Rollout

/// `ebft-dist bench sampler`: generated tokens/s of three ways to draw the same EBFT rollouts.
struct BenchSampler: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sampler",
        abstract: "Strided sampling speed: KV-cached strided vs the authors' full-recompute scheme vs naive per-prefix sampling.",
        discussion: """
            All three draw the same tokens (same RNG identity keys) from one chunk of real text with \
            the real model. (a) strided: the chunk is prefilled once and all K·n blocks decode \
            together with a KV cache; (b) reference: G forwards of the whole strided sequence (n \
            samples batched), as the authors' code does; (c) naive: every (prefix, sample) prefilled \
            and decoded separately. (c) is timed on --naive-blocks evenly spaced blocks and scaled to \
            all K blocks (its cost per block grows with the prefix, so evenly spaced blocks give an \
            unbiased estimate); the table says so.
            """)

    @Option(help: "Chunk length P.") var chunkLength = 1024
    @Option(help: "First anchor c.") var contextLength = 8
    @Option(help: "Block length G.") var generateLength = 8
    @Option(help: "Anchor stride s.") var stride = 8
    @Option(help: "Samples per chunk n.") var samples = 4
    @Option(help: "Blocks timed for the naive sampler (scaled to K).") var naiveBlocks = 8
    @Option(help: "Skip the reference scheme (b).") var skipReference = false
    @Option(help: "Model (GGUF); default: the installed SmolLM2.") var model: String?

    func run() throws {
        let path = try model ?? ModelLocator.defaultGGUF()
        let gguf = try GGUFFile(path: path)
        let tokenizer = try BPETokenizer(gguf: gguf)
        let m = Transformer(parameters: try ParameterStore.load(gguf: gguf))
        let g = try StridedGeometry(P: chunkLength, c: contextLength, G: generateLength, s: stride)
        let corpus = try StdlibCorpus()
        guard let text = corpus.documents(.train).texts.first(where: { $0.utf8.count > 8 * chunkLength }) else {
            throw ValidationError("no stdlib file long enough for a \(chunkLength)-token chunk")
        }
        let chunk = Array(tokenizer.encode(text, allowSpecial: false).prefix(chunkLength))
        let o = SamplingOptions(temperature: 0.6, topP: 1, seed: 43)
        let n = samples, K = g.K, G = g.G
        let generated = Double(n * K * G)
        print("bench sampler: P=\(g.P) c=\(g.c) G=\(G) s=\(g.s) → K=\(K) blocks, n=\(n) samples: \(Int(generated)) generated tokens per chunk")
        print("model \(path); BLAS threads \(BLAS.threads)")
        fflush(nil)

        func timed<R>(_ body: () -> R) -> (R, Double) {
            let t0 = Date()
            let r = body()
            return (r, Date().timeIntervalSince(t0))
        }
        let (strided, tStrided) = timed { StridedSampler(model: m, geometry: g, samples: n, options: o).sample(chunk: chunk, id: 0) }
        var rows: [(String, Double, String)] = [("(a) strided, KV cache", tStrided, "measured")]
        print(String(format: "(a) %.2f s", tStrided)); fflush(nil)
        if !skipReference {
            let (full, tFull) = timed {
                ReferenceSamplers.fullRecompute(model: m, geometry: g, samples: n, options: o, chunk: chunk, id: 0)
            }
            let differ = zip(full.tokens.joined(), strided.tokens.joined()).filter { $0 != $1 }.count
            var drift: Float = 0
            for (a, b) in zip(full.logProbs.joined(), strided.logProbs.joined()) { drift = max(drift, abs(a - b)) }
            rows.append(("(b) reference: G full re-forwards", tFull,
                         differ == 0 ? "measured; same tokens (max |Δ log-prob| \(drift))"
                                     : "measured; \(differ) of \(Int(generated)) tokens differ (float rounding near a sampling boundary)"))
            print(String(format: "(b) %.2f s", tFull)); fflush(nil)
        }
        let nb = max(1, min(naiveBlocks, K))
        let blocks = (0..<nb).map { ($0 * K + K / 2) / nb }  // evenly spaced, centred
        let (naive, tSubset) = timed {
            ReferenceSamplers.naive(model: m, geometry: g, samples: n, options: o, chunk: chunk, id: 0,
                                    sharePrefill: false, blocks: blocks)
        }
        let same = blocks.allSatisfy { k in (0..<n).allSatisfy { i in (0..<G).allSatisfy { t in naive.tokens[i][t * K + k] == strided.tokens[i][t * K + k] } } }
        let tNaive = tSubset * Double(K) / Double(nb)
        rows.append(("(c) naive per (prefix, sample)", tNaive,
                     "\(nb) of \(K) blocks timed (\(String(format: "%.2f", tSubset)) s), scaled ×\(String(format: "%.1f", Double(K) / Double(nb)))" + (same ? "; same tokens" : "; TOKENS DIFFER")))
        print("")
        print("\(padRight("sampler", 36)) \(pad("seconds", 9)) \(pad("tokens/s", 10)) \(pad("vs (a)", 8))  note")
        for (name, t, note) in rows {
            print("\(padRight(name, 36)) \(pad(fixed(t, 2), 9)) \(pad(fixed(generated / t, 1), 10)) \(pad(fixed(t / tStrided, 1) + "×", 8))  \(note)")
        }
    }
}
