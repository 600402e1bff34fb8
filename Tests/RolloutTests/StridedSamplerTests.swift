import XCTest
@testable import Model
@testable import Rollout

final class StridedSamplerTests: XCTestCase {
    func tinyModel(seed: UInt64 = 7) -> Transformer {
        let p = ParameterStore(config: .tiny())
        p.randomize(seed: seed, std: 0.3)
        return Transformer(parameters: p)
    }

    func chunk(_ P: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        return (0..<P).map { _ in Int32(rng.nextInt(below: vocab)) }
    }

    /// The KV-cached strided sampler draws exactly the naive per-prefix sampler's tokens, with
    /// the same log-probabilities, and so does the authors' full-recompute scheme.
    func testStridedEqualsNaiveAndFullRecompute() throws {
        let m = tinyModel()
        for (P, c, G, s) in [(20, 4, 4, 4), (20, 2, 4, 2), (13, 3, 1, 3), (16, 1, 3, 6)] {
            let g = try StridedGeometry(P: P, c: c, G: G, s: s)
            for temperature: Float in [1.0, 0.6, 0] {
                let o = SamplingOptions(temperature: temperature, topP: temperature == 0.6 ? 0.9 : 1, seed: 43)
                let x = chunk(P, vocab: m.config.vocabSize, seed: UInt64(P * 31 + c))
                let strided = StridedSampler(model: m, geometry: g, samples: 3, options: o).sample(chunk: x, id: 5)
                let naive = ReferenceSamplers.naive(model: m, geometry: g, samples: 3, options: o, chunk: x, id: 5)
                let full = ReferenceSamplers.fullRecompute(model: m, geometry: g, samples: 3, options: o, chunk: x, id: 5)
                let what = "P=\(P) c=\(c) G=\(G) s=\(s) T=\(temperature)"
                XCTAssertEqual(strided.tokens, naive.tokens, what)
                XCTAssertEqual(strided.tokens, full.tokens, what)
                for i in 0..<3 {
                    XCTAssertEqual(strided.tokens[i].count, G * g.K)
                    for j in 0..<(G * g.K) {
                        XCTAssertEqual(strided.logProbs[i][j], naive.logProbs[i][j], accuracy: 1e-5, what)
                        XCTAssertEqual(strided.logProbs[i][j], full.logProbs[i][j], accuracy: 1e-5, what)
                    }
                }
            }
        }
    }

    /// Samples differ across sample index, chunk id and seed, and do not depend on the thread count.
    func testIdentityKeyedRandomness() throws {
        let m = tinyModel()
        let g = try StridedGeometry(P: 20, c: 4, G: 4, s: 4)
        let x = chunk(20, vocab: m.config.vocabSize, seed: 1)
        let o = SamplingOptions(temperature: 1, seed: 43)
        let a = StridedSampler(model: m, geometry: g, samples: 4, options: o).sample(chunk: x, id: 0)
        XCTAssertNotEqual(a.tokens[0], a.tokens[1])
        let b = StridedSampler(model: m, geometry: g, samples: 4, options: o).sample(chunk: x, id: 1)
        XCTAssertNotEqual(a.tokens, b.tokens)
        let c = StridedSampler(model: m, geometry: g, samples: 4, options: SamplingOptions(temperature: 1, seed: 44))
            .sample(chunk: x, id: 0)
        XCTAssertNotEqual(a.tokens, c.tokens)
        let saved = Sampling.parallelism
        Sampling.parallelism = 1
        defer { Sampling.parallelism = saved }
        let d = StridedSampler(model: m, geometry: g, samples: 4, options: o).sample(chunk: x, id: 0)
        XCTAssertEqual(a, d)
        // Fewer samples: the first samples are the same draws.
        let e = StridedSampler(model: m, geometry: g, samples: 2, options: o).sample(chunk: x, id: 0)
        XCTAssertEqual(Array(a.tokens[0..<2]), e.tokens)
    }

    /// Chunks decoded as one batch (several prefixes) draw the tokens of sampling each chunk
    /// alone, with the same log-probabilities up to the sgemm's row count (1e-5 as above); the
    /// batches follow `maxBatchStreams`.
    func testSeveralChunksInOneBatchEqualEachChunkAlone() throws {
        let m = tinyModel()
        let g = try StridedGeometry(P: 20, c: 4, G: 4, s: 4)   // K = 4: 12 streams per chunk at n = 3
        let o = SamplingOptions(temperature: 0.8, topP: 0.95, seed: 11)
        let chunks = (0..<5).map { (id: 40 + $0, tokens: chunk(20, vocab: m.config.vocabSize, seed: UInt64(100 + $0))) }
        let sampler = StridedSampler(model: m, geometry: g, samples: 3, options: o)
        let alone = chunks.map { sampler.sample(chunk: $0.tokens, id: $0.id) }
        let saved = StridedSampler.maxBatchStreams
        defer { StridedSampler.maxBatchStreams = saved }
        for limit in [1, 24, 36, 1000] {   // one chunk per batch (a chunk is never split), 2, 3, all 5
            StridedSampler.maxBatchStreams = limit
            let batched = sampler.sample(chunks: chunks)
            XCTAssertEqual(batched.map(\.chunkID), chunks.map(\.id), "limit \(limit)")
            for (a, b) in zip(alone, batched) {
                XCTAssertEqual(a.tokens, b.tokens, "limit \(limit), chunk \(a.chunkID)")
                for (x, y) in zip(a.logProbs.joined(), b.logProbs.joined()) {
                    XCTAssertEqual(x, y, accuracy: 1e-5, "limit \(limit), chunk \(a.chunkID)")
                }
            }
        }
        XCTAssertNotEqual(alone[0].tokens, alone[1].tokens)
    }
}
