import XCTest
@testable import Learner
@testable import Model
@testable import Rollout

/// Shared prefixes (issue 15): the chunk computed once for all its samples gives the per-sample
/// path's attention, log-probs, loss, every parameter gradient and the pooled features, up to
/// Float32 summation order, at several geometries, sample counts (n = 1 included), micro-batch
/// limits that split a chunk, with and without the CE term, both poolings.
///
/// Tolerances come from rounding analysis, not from runs. Higham's bound: a Float32 sum or dot
/// product of N terms in any order is within γ_N·Σ|terms| of the exact value (γ_N = N·u/(1−N·u),
/// u = 2⁻²⁴), so two orders differ by at most 2·γ_N·Σ|terms|, and along a chain of such steps the
/// N add (to first order). The two paths run the same operations on the same rows with sums
/// split differently (GEMM blocks of other shapes, the chunk's weight-gradient and key/value-
/// gradient contributions summed before instead of after the n copies), so N is the length of
/// all reductions on a value's path (`logProbChain`, `gradientChain`), and Σ|terms| is bounded
/// by a magnitude of the quantity named at each use.
final class SharedPrefixTests: XCTestCase {
    static let u = Double(Float.ulpOfOne) / 2
    static func gamma(_ n: Int) -> Double { Double(n) * u / (1 - Double(n) * u) }

    /// Reductions from the tokens to the residual stream after `depth` blocks when a query sees at
    /// most `S` keys: per block RMSNorm (d), q/k/v (d), scores (hd), softmax sum and p·v (S each),
    /// output projection (qDim), RMSNorm (d), gate/up (d), down (ffn).
    static func forwardChain(_ c: ModelConfig, depth: Int, S: Int) -> Int {
        depth * (c.dim + c.dim + c.headDim + 2 * S + c.qDim + c.dim + c.dim + c.ffnDim)
    }
    /// … to a log-prob: all blocks, final norm (d), logits (d), log-sum-exp (V).
    static func logProbChain(_ c: ModelConfig, S: Int) -> Int {
        forwardChain(c, depth: c.layers, S: S) + 2 * c.dim + c.vocabSize
    }
    /// … to a parameter gradient: the backward mirrors the forward, and a weight gradient sums
    /// over the `T` rows of a batch.
    static func gradientChain(_ c: ModelConfig, S: Int, T: Int) -> Int { 2 * logProbChain(c, S: S) + T }

    func model(layers: Int = 2, seed: UInt64 = 5) -> Transformer {
        let params = ParameterStore(config: .tiny(layers: layers))
        params.randomize(seed: seed, std: 0.15)
        // Norm weights away from 1 so every parameter's gradient path carries some weight.
        var rng = SplitMix64(seed: seed + 1)
        for v in params.layout.views where v.shape.count == 1 {
            for i in 0..<v.count { params.pointer[v.offset + i] = 0.8 + 0.4 * Float(rng.nextUniform()) }
        }
        return Transformer(parameters: params)
    }

    /// (P, c, G, s): K = 4, 3, 2, 1.
    static let geometries = [(10, 2, 2, 2), (16, 4, 4, 4), (9, 1, 3, 5), (7, 3, 4, 1)]

    func tokens(_ n: Int, _ rng: inout SplitMix64, vocab: Int = 61) -> [Int32] {
        (0..<n).map { _ in Int32(rng.nextInt(below: vocab)) }
    }

    /// `chunks` chunks × `n` samples with random tokens and advantages of both signs, listed
    /// interleaved (sample-major, as one learner's share of a step may arrive).
    func experiences(_ g: StridedGeometry, chunks: Int, n: Int, seed: UInt64) -> [Experience] {
        var rng = SplitMix64(seed: seed)
        let xs = (0..<chunks).map { _ in tokens(g.P, &rng) }
        var out: [Experience] = []
        for i in 0..<n {
            for (c, x) in xs.enumerated() {
                out.append(Experience(chunkID: Int64(10 + c), sample: Int32(i), chunk: x, generated: tokens(g.G * g.K, &rng),
                                      sampleLogProbs: [Float](repeating: 0, count: g.G * g.K),
                                      advantages: (0..<g.K).map { _ in Float(2 * rng.nextUniform() - 1) },
                                      alignment: [Float](repeating: 0, count: g.K), diversity: [Float](repeating: 0, count: g.K),
                                      policyVersion: 0))
            }
        }
        return out
    }

    /// Largest possible |logit|·invT in a batch by Cauchy–Schwarz: max ‖final hidden row‖ ·
    /// max ‖head row‖ (also bounds Σ|h_i·E_vi|, the magnitude a logit's rounding scales with).
    func logitBound(_ m: Transformer, tokens: [Int32], layout: AttentionLayout, invT: Float) -> Double {
        let d = m.config.dim
        let h = m.forward(tokens: tokens, layout: layout)
        var hmax = 0.0, emax = 0.0
        for r in 0..<(h.count / d) {
            hmax = max(hmax, h[(r * d)..<((r + 1) * d)].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
        }
        let E = m.parameters.pointer + m.parameters.layout.head
        for v in 0..<m.config.vocabSize {
            emax = max(emax, (0..<d).reduce(0.0) { $0 + Double(E[v * d + $1]) * Double(E[v * d + $1]) }.squareRoot())
        }
        return hmax * emax * Double(max(1, invT))
    }

    // MARK: - layout

    func testSharedLayoutSeesWhatEachSampleSees() throws {
        for (P, c, G, s) in Self.geometries {
            let g = try StridedGeometry(P: P, c: c, G: G, s: s)
            XCTAssertEqual(g.sharedLayout(samples: 1), g.layout(tDone: G))
            let per = g.layout(tDone: G), GK = G * g.K
            for m in [2, 3] {
                let l = g.sharedLayout(samples: m)
                XCTAssertEqual(l.count, P + m * GK)
                XCTAssertEqual(g.sharedLength(samples: m), l.count)
                for q in 0..<P {
                    XCTAssertEqual(l.visibleKeys(of: q), per.visibleKeys(of: q))
                    XCTAssertEqual(l.positions[q], per.positions[q])
                }
                for i in 0..<m {
                    for x in 0..<GK {
                        let q = P + i * GK + x
                        // Back to the sample's own sequence: a generated key P + i·GK + y is P + y.
                        let mapped = l.visibleKeys(of: q).map { $0 < P ? $0 : $0 - i * GK }
                        XCTAssertEqual(mapped, per.visibleKeys(of: P + x), "sample \(i) row \(x)")
                        XCTAssertTrue(l.visibleKeys(of: q).allSatisfy { $0 < P || ($0 - P) / GK == i })
                        XCTAssertEqual(l.positions[q], per.positions[P + x])
                    }
                    for t in 0..<G {
                        for k in 0..<g.K {
                            let row = g.sharedPredictionRow(sample: i, t: t, k: k), ref = g.predictionRow(t: t, k: k)
                            XCTAssertEqual(row < P ? row : row - i * GK, ref)
                        }
                    }
                }
            }
        }
    }

    func testGroupSizesAndChunkGroups() throws {
        let g = try StridedGeometry(P: 10, c: 2, G: 2, s: 2)   // GK = 8
        XCTAssertEqual(g.sharedGroupSizes(samples: 4, maxTokens: 1000), [4])
        // The limit counts continuations (G·K = 8 each); the chunk (P = 10) comes on top.
        XCTAssertEqual(g.sharedGroupSizes(samples: 4, maxTokens: 4 * 8), [4])
        XCTAssertEqual(g.sharedGroupSizes(samples: 4, maxTokens: 4 * 8 - 1), [2, 2])    // 3 fit → 2 groups, even
        XCTAssertEqual(g.sharedGroupSizes(samples: 5, maxTokens: 2 * 8 + 7), [2, 2, 1])
        XCTAssertEqual(g.sharedGroupSizes(samples: 3, maxTokens: 5), [1, 1, 1])          // not even one fits
        XCTAssertEqual(g.sharedGroupSizes(samples: 0, maxTokens: 100), [])
        var es = experiences(g, chunks: 2, n: 3, seed: 1)     // order c0 c1 c0 c1 c0 c1
        XCTAssertEqual(PolicyLearner.chunkGroups(es), [[0, 2, 4], [1, 3, 5]])
        es[5].chunkID = es[0].chunkID                         // same id, other tokens: its own group
        XCTAssertEqual(PolicyLearner.chunkGroups(es), [[0, 2, 4], [1, 3], [5]])
    }

    // MARK: - log-probs, loss and gradients

    func testLogProbsEqualPerSample() throws {
        let m = model()
        for (P, c, G, s) in Self.geometries {
            let g = try StridedGeometry(P: P, c: c, G: G, s: s)
            for n in [1, 3] {
                let es = experiences(g, chunks: 1, n: n, seed: UInt64(P * 10 + n))
                let invT: Float = 1 / 0.7
                var shared = es[0].chunk, preds: [Prediction] = []
                for (i, e) in es.enumerated() {
                    shared += e.generated
                    for t in 0..<G { for k in 0..<g.K {
                        preds.append(Prediction(row: g.sharedPredictionRow(sample: i, t: t, k: k),
                                                target: e.generated[t * g.K + k], invTemperature: invT))
                    } }
                }
                let lp = m.logProbs(tokens: shared, layout: g.sharedLayout(samples: n), predictions: preds)
                let chain = Self.logProbChain(m.config, S: g.sharedLength(samples: n))
                for (i, e) in es.enumerated() {
                    let own = (0..<G).flatMap { t in (0..<g.K).map { k in
                        Prediction(row: g.predictionRow(t: t, k: k), target: e.generated[t * g.K + k], invTemperature: invT)
                    } }
                    let ref = m.logProbs(tokens: e.strided, layout: g.layout(tDone: G), predictions: own)
                    let zAbs = logitBound(m, tokens: e.strided, layout: g.layout(tDone: G), invT: invT)
                    for j in ref.indices {
                        // log p = z_t − lse(z): each part carries the logits' rounding.
                        let tol = 2 * Self.gamma(chain) * (abs(Double(ref[j])) + 2 * zAbs)
                        XCTAssertEqual(Double(lp[i * G * g.K + j]), Double(ref[j]), accuracy: tol,
                                       "P=\(P) n=\(n) sample \(i) prediction \(j)")
                    }
                }
            }
        }
    }

    /// The learner's shared path against its per-sample path: loss terms, log-probs (through
    /// the drift statistic) and every parameter gradient.
    func checkLearner(_ g: StridedGeometry, chunks: Int, n: Int, ceCoef: Float, maxTokens: Int,
                      file: StaticString = #filePath, line: UInt = #line) {
        let m = model()
        let temperature: Float = 0.7, invT = 1 / temperature
        var es = experiences(g, chunks: chunks, n: n, seed: UInt64(g.P * 100 + n * 10 + chunks))
        // Sampling log-probs = the per-sample forward's, so the drift statistic is the largest
        // log-prob difference between the paths.
        var zAbs = 0.0, lpMax = 0.0
        for j in es.indices {
            let preds = PolicyLoss.predictions(for: es[j], geometry: g, temperature: temperature, ceCoef: 1, sequenceWeight: 1)
            let lp = m.logProbs(tokens: es[j].strided, layout: g.layout(tDone: g.G), predictions: preds)
            es[j].sampleLogProbs = Array(lp[(g.P - 1)...])
            lpMax = max(lpMax, lp.map { abs(Double($0)) }.max()!)
            zAbs = max(zAbs, logitBound(m, tokens: es[j].strided, layout: g.layout(tDone: g.G), invT: invT))
        }
        let total = es.count + 3   // other learners' sequences in the step
        func run(shared: Bool, _ list: [Experience], maxTokens: Int) -> (LearnerStats, [Float]) {
            let l = PolicyLearner(model: m, geometry: g, temperature: temperature, ceCoef: ceCoef)
            l.sharedPrefix = shared
            l.maxTokensPerBatch = maxTokens
            var ready: [Int] = []
            let st = l.accumulate(list, totalSequences: total) { ready.append($0) }
            XCTAssertEqual(ready, Array((0..<m.config.layers).reversed()), "layer hooks", file: file, line: line)
            return (st, Array(UnsafeBufferPointer(start: l.grads.pointer, count: l.grads.count)))
        }
        let (ref, gRef) = run(shared: false, es, maxTokens: 4096)
        let (got, gGot) = run(shared: true, es, maxTokens: maxTokens)
        // Σ_e |gradient of e alone|: the magnitude the reordered sums scale with.
        var absSum = [Double](repeating: 0, count: gRef.count)
        for e in es {
            let (_, ge) = run(shared: false, [e], maxTokens: 4096)
            for j in ge.indices { absSum[j] += abs(Double(ge[j])) }
        }
        let S = max(g.fullLength, g.sharedLength(samples: n))
        let lpTol = 2 * Self.gamma(Self.logProbChain(m.config, S: S)) * (lpMax + 2 * zAbs)
        XCTAssertEqual(got.sequences, ref.sequences, file: file, line: line)
        XCTAssertEqual(got.tokens, ref.tokens, file: file, line: line)
        XCTAssertEqual(got.ceSum, ref.ceSum, accuracy: ref.sequences * lpTol, "CE", file: file, line: line)
        XCTAssertEqual(got.rlSum, ref.rlSum, accuracy: ref.sequences * lpTol, "RL (|A| ≤ 1)", file: file, line: line)
        XCTAssertLessThanOrEqual(ref.maxLogProbDrift, lpTol, file: file, line: line)
        XCTAssertLessThanOrEqual(got.maxLogProbDrift, lpTol, "shared log-probs vs per-sample", file: file, line: line)
        let T = es.count * g.fullLength   // rows summed into a weight gradient, over all calls
        let gTol = 2 * Self.gamma(Self.gradientChain(m.config, S: S, T: T))
        var worst = 0.0
        for v in m.parameters.layout.views {
            let scale = (v.offset..<(v.offset + v.count)).map { absSum[$0] }.max()!
            var gmax: Float = 0
            for j in v.offset..<(v.offset + v.count) {
                gmax = max(gmax, abs(gRef[j]))
                let err = abs(Double(gGot[j]) - Double(gRef[j]))
                worst = max(worst, err / (gTol * scale))
                XCTAssertLessThanOrEqual(err, gTol * scale, "\(v.name)[\(j - v.offset)]: \(gGot[j]) vs \(gRef[j])",
                                         file: file, line: line)
            }
            XCTAssertGreaterThan(gmax, 0, "\(v.name) got no gradient", file: file, line: line)
        }
        print("P=\(g.P) K=\(g.K) G=\(g.G) n=\(n) chunks=\(chunks) γ=\(ceCoef) max=\(maxTokens): worst gradient error / bound \(worst)")
    }

    func testLearnerGradientsEqualPerSample() throws {
        for (P, c, G, s) in Self.geometries {
            let g = try StridedGeometry(P: P, c: c, G: G, s: s)
            for n in [1, 4] {
                for ce: Float in [0, 0.5] {
                    checkLearner(g, chunks: 2, n: n, ceCoef: ce, maxTokens: 4096)
                }
            }
        }
    }

    /// Micro-batches that split a chunk's samples (prefix recomputed per group) and stack groups.
    func testLearnerMicroBatchesEqualPerSample() throws {
        let g = try StridedGeometry(P: 16, c: 4, G: 4, s: 4)    // GK = 12
        // [2, 2]; [1, 1, 1]; [1, 1, 1, 1]; [3] with two chunks' groups (2 · 52 tokens) stacked.
        for (n, maxTokens) in [(4, 3 * 12), (3, 12), (4, 5), (3, 2 * (16 + 3 * 12))] {
            checkLearner(g, chunks: 3, n: n, ceCoef: 0.5, maxTokens: maxTokens)
        }
    }

    // MARK: - feature network

    func testFeaturesEqualPerSample() throws {
        let m = model(layers: 4, seed: 11)   // feature layers 1, 2, 3
        for (P, c, G, s) in Self.geometries {
            let g = try StridedGeometry(P: P, c: c, G: G, s: s)
            for n in [1, 4] {
                var rng = SplitMix64(seed: UInt64(P + n))
                let chunk = tokens(P, &rng)
                let r = ChunkRollouts(chunkID: 0, tokens: (0..<n).map { _ in tokens(G * g.K, &rng) },
                                      logProbs: [[Float]](repeating: [], count: n))
                for pooling in Pooling.allCases {
                    let f = FeatureNetwork(model: m, pooling: pooling)
                    f.sharedPrefix = false
                    let ref = f.features(chunk: chunk, rollouts: r, geometry: g)
                    f.sharedPrefix = true
                    let got = f.features(chunk: chunk, rollouts: r, geometry: g)
                    XCTAssertEqual(got.groundTruth.count, g.K * f.width)
                    XCTAssertEqual(got.generated.count, n * g.K * f.width)
                    // Features are (means of) unit vectors, entries ≤ 1: the chain to the deepest
                    // feature layer plus the joint norm over D.
                    let S = max(g.fullLength, g.sharedLength(samples: n))
                    let tol = 2 * Self.gamma(Self.forwardChain(m.config, depth: f.layers.max()!, S: S) + f.width)
                    for (a, b) in [(got.groundTruth, ref.groundTruth), (got.generated, ref.generated)] {
                        let err = zip(a, b).map { abs(Double($0) - Double($1)) }.max()!
                        XCTAssertLessThanOrEqual(err, tol, "P=\(P) n=\(n) \(pooling)")
                    }
                }
            }
        }
    }
}
