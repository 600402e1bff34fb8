import XCTest
import Foundation
@testable import Rollout
import Model

final class RewardsTests: XCTestCase {
    func randomMatrix(_ rows: Int, _ cols: Int, seed: UInt64) -> [Float] {
        var g = SplitMix64(seed: seed)
        return (0 ..< rows * cols).map { _ in Float(g.nextNormal()) }
    }

    func unitRows(_ x: [Float], _ n: Int, _ D: Int) -> [Float] {
        var y = x
        for i in 0 ..< n {
            let norm = (0 ..< D).reduce(0.0) { $0 + Double(x[i * D + $1] * x[i * D + $1]) }.squareRoot()
            for d in 0 ..< D { y[i * D + d] = Float(Double(x[i * D + d]) / norm) }
        }
        return y
    }

    func dot(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    func row(_ x: [Float], _ i: Int, _ D: Int) -> ArraySlice<Float> { x[i * D ..< (i + 1) * D] }

    // MARK: eigen-decomposition

    func testJacobiReconstructsSymmetricMatrices() throws {
        for n in [1, 2, 4, 6] {
            let r = randomMatrix(n, n, seed: UInt64(n))
            var A = [Double](repeating: 0, count: n * n)
            for i in 0 ..< n { for j in 0 ..< n { A[i * n + j] = Double(r[i * n + j] + r[j * n + i]) } }
            let (vals, V) = try XCTUnwrap(Whitening.symmetricEigen(A, n: n))
            XCTAssertEqual(vals, vals.sorted(by: >))
            for i in 0 ..< n {
                for j in 0 ..< n {
                    var rec = 0.0, orth = 0.0
                    for k in 0 ..< n { rec += V[i * n + k] * vals[k] * V[j * n + k]; orth += V[k * n + i] * V[k * n + j] }
                    XCTAssertEqual(rec, A[i * n + j], accuracy: 1e-12)
                    XCTAssertEqual(orth, i == j ? 1 : 0, accuracy: 1e-12)
                }
            }
        }
        XCTAssertNil(Whitening.symmetricEigen([1, .nan, .nan, 1], n: 2))
    }

    // MARK: whitening facts (spec §2.5)

    func testIndependentRolloutsBecomeOrthonormalAndDiversityVanishes() {
        let n = 4, D = 32
        let X = unitRows(randomMatrix(n, D, seed: 7), n, D)
        let g = unitRows(randomMatrix(1, D, seed: 8), 1, D)
        let w = Whitening.whiten(rollouts: X, groundTruth: g, n: n, D: D)
        XCTAssertEqual(w.outcome, .whitened)
        for i in 0 ..< n { for j in 0 ..< n {
            XCTAssertEqual(dot(row(w.rollouts, i, D), row(w.rollouts, j, D)), i == j ? 1 : 0, accuracy: 1e-5)
        } }
        let r = Rewards.block(generated: X, groundTruth: g, n: n, D: D, options: RewardOptions(beta: 1))
        for d in r.diversity { XCTAssertLessThanOrEqual(abs(d), 1e-5) }
        // Without whitening the same rollouts are far from orthogonal in general.
        let raw = Rewards.block(generated: X, groundTruth: g, n: n, D: D, options: RewardOptions(beta: 1, whitening: false))
        XCTAssertGreaterThan(raw.diversity.map(abs).max()!, 1e-3)
    }

    func testDuplicatedRolloutsArePenalised() {
        let D = 16
        var X = unitRows(randomMatrix(4, D, seed: 21), 4, D)
        for d in 0 ..< D { X[D + d] = X[d] }                       // rows 0 and 1 identical
        let g = randomMatrix(1, D, seed: 22)
        let r = Rewards.block(generated: X, groundTruth: g, n: 4, D: D, options: RewardOptions(beta: 1))
        XCTAssertEqual(r.whitening, .whitened)
        XCTAssertEqual(r.diversity[0], 1.0 / 3.0, accuracy: 1e-5)
        XCTAssertEqual(r.diversity[1], 1.0 / 3.0, accuracy: 1e-5)
        XCTAssertEqual(r.diversity[2], 0, accuracy: 1e-5)
        XCTAssertEqual(r.diversity[3], 0, accuracy: 1e-5)

        let same = Array((0 ..< 4).map { _ in Array(X[0 ..< D]) }.joined())
        let r4 = Rewards.block(generated: same, groundTruth: g, n: 4, D: D, options: RewardOptions(beta: 1))
        for d in r4.diversity { XCTAssertEqual(d, 0.5, accuracy: 1e-5) }
    }

    func testWhitenedAlignmentIsSignedCosineWithRawGT() {
        // x0 = (1, 0), x1 = (3, 0.1): nearly collinear, W's second row sum is negative.
        let X: [Float] = [1, 0, 3, 0.1]
        let g: [Float] = [0.3, 0.7]
        let w = Whitening.whiten(rollouts: X, groundTruth: g, n: 2, D: 2)
        let op = X.withUnsafeBufferPointer { Whitening.whiteningOperator($0, n: 2, D: 2)! }
        let rowSums = [op.W[0] + op.W[1], op.W[2] + op.W[3]]
        XCTAssertGreaterThan(rowSums[0], 0)
        XCTAssertLessThan(rowSums[1], 0)
        for i in 0 ..< 2 { for d in 0 ..< 2 {
            XCTAssertEqual(Double(w.groundTruth[i * 2 + d]), rowSums[i] * Double(g[d]), accuracy: 1e-4 * abs(rowSums[i]))
        } }
        let r = Rewards.block(generated: X, groundTruth: g, n: 2, D: 2, options: RewardOptions())
        for i in 0 ..< 2 {
            let xi = row(w.rollouts, i, 2)
            let cosRaw = dot(xi, g[...]) / (dot(xi, xi) * dot(g[...], g[...])).squareRoot()
            XCTAssertEqual(r.alignment[i], 2 * (rowSums[i] > 0 ? 1 : -1) * cosRaw, accuracy: 1e-5)
            // The flip is visible in the reward: row 1's alignment has the opposite sign of the
            // cosine between its whitened rollout and the raw GT direction.
            if i == 1 { XCTAssertLessThan(r.alignment[i] * cosRaw, 0) } else { XCTAssertGreaterThan(r.alignment[i] * cosRaw, 0) }
        }
    }

    func testSignedCosineIdentityOnRandomInputs() {
        let n = 4, D = 24
        let X = unitRows(randomMatrix(n, D, seed: 31), n, D)
        let g = unitRows(randomMatrix(1, D, seed: 32), 1, D)
        let w = Whitening.whiten(rollouts: X, groundTruth: g, n: n, D: D)
        let op = X.withUnsafeBufferPointer { Whitening.whiteningOperator($0, n: n, D: D)! }
        let r = Rewards.block(generated: X, groundTruth: g, n: n, D: D, options: RewardOptions())
        for i in 0 ..< n {
            let rs = (0 ..< n).reduce(0.0) { $0 + op.W[i * n + $1] }
            let xi = row(w.rollouts, i, D)
            let c = dot(xi, g[...]) / dot(xi, xi).squareRoot()
            XCTAssertEqual(r.alignment[i], 2 * (rs > 0 ? 1 : -1) * c, accuracy: 1e-5)
        }
    }

    // MARK: RLOO closed form (spec §6)

    func testRLOOClosedFormAndZeroSum() {
        let n = 4, D = 20
        for (seed, whitening) in [(41, true), (42, false), (43, true), (44, false)] as [(UInt64, Bool)] {
            var X = unitRows(randomMatrix(n, D, seed: seed), n, D)
            if seed == 43 { for d in 0 ..< D { X[2 * D + d] = X[d] } }   // a duplicate: non-zero div
            let g = unitRows(randomMatrix(1, D, seed: seed + 100), 1, D)
            for beta in [0.0, 0.5, 1.0] {
                let r = Rewards.block(generated: X, groundTruth: g, n: n, D: D,
                                      options: RewardOptions(alpha: 1, beta: beta, whitening: whitening))
                let ma = r.alignment.reduce(0, +) / 4, md = r.diversity.reduce(0, +) / 4
                for i in 0 ..< n {
                    let expected = beta == 0
                        ? (4.0 / 3.0) * (r.alignment[i] - ma)
                        : (4.0 / 3.0) * (r.alignment[i] - ma) - 2 * beta * (r.diversity[i] - md)
                    XCTAssertEqual(r.advantage[i], expected, accuracy: 1e-9)
                    XCTAssertEqual(r.reward[i], r.alignment[i] - beta * r.diversity[i], accuracy: 1e-12)
                }
                XCTAssertEqual(r.advantage.reduce(0, +), 0, accuracy: 1e-9)
            }
            if seed == 43 { XCTAssertGreaterThan(Rewards.block(generated: X, groundTruth: g, n: n, D: D, options: RewardOptions()).diversity[0], 0.1) }
        }
        // General n: A = α·n/(n−1)·Δalign − β·n/(n−2)·Δdiv.
        let a = [0.3, -0.2, 1.1, 0.4, 0.9], d = [0.1, 0.5, 0.2, 0.0, 0.3]
        let A = Rewards.rloo(alignment: a, diversity: d, alpha: 1.5, beta: 0.7)
        let ma = a.reduce(0, +) / 5, md = d.reduce(0, +) / 5
        for i in 0 ..< 5 {
            XCTAssertEqual(A[i], 1.5 * 5 / 4 * (a[i] - ma) - 0.7 * 5 / 3 * (d[i] - md), accuracy: 1e-12)
        }
    }

    func testHandComputedUnwhitenedPair() {
        // f0 = (1, 0), f1 = (0.6, 0.8), g = (1, 0), α = 1, β = 0.5, n = 2:
        // align = [2, 1.2]; div = 2·⟨f0,f1⟩ = 1.2 each; reward = [1.4, 0.6];
        // b_align = [1.2, 2], b_div = 0 (n = 2) → A = [0.2, −1.4].
        let r = Rewards.block(generated: [1, 0, 0.6, 0.8], groundTruth: [1, 0], n: 2, D: 2,
                              options: RewardOptions(alpha: 1, beta: 0.5, whitening: false))
        XCTAssertEqual(r.whitening, .unwhitened)
        for (x, y) in zip(r.alignment, [2, 1.2]) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        for (x, y) in zip(r.diversity, [1.2, 1.2]) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        for (x, y) in zip(r.reward, [1.4, 0.6]) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        for (x, y) in zip(r.advantage, [0.2, -1.4]) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        for (x, y) in zip(r.featureMatching, [1.4, 0.6]) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        // Alignment is a cosine: scaling a rollout does not change it; diversity is a raw dot.
        let s = Rewards.block(generated: [2, 0, 0.6, 0.8], groundTruth: [3, 0], n: 2, D: 2,
                              options: RewardOptions(alpha: 1, beta: 0.5, whitening: false))
        XCTAssertEqual(s.alignment[0], 2, accuracy: 1e-6)
        XCTAssertEqual(s.diversity[0], 2.4, accuracy: 1e-6)
    }

    func testSingleSample() {
        let f: [Float] = [0.6, 0.8, 0], g: [Float] = [0, 1, 0]
        for whitening in [true, false] {
            let r = Rewards.block(generated: f, groundTruth: g, n: 1, D: 3,
                                  options: RewardOptions(beta: 1, whitening: whitening))
            XCTAssertEqual(r.alignment[0], 1.6, accuracy: 1e-6)
            XCTAssertEqual(r.diversity, [0])
            XCTAssertEqual(r.advantage[0], r.reward[0], accuracy: 1e-12)
            XCTAssertEqual(r.reward[0], 1.6, accuracy: 1e-6)
        }
    }

    func testZeroGroundTruthGivesZeroAlignment() {
        let r = Rewards.block(generated: [1, 0, 0, 1], groundTruth: [0, 0], n: 2, D: 2, options: RewardOptions())
        XCTAssertEqual(r.alignment, [0, 0])
    }

    // MARK: feature-space (paper) GT whitening

    func testFeatureSpaceGTWhiteningMatchesDirectComputation() throws {
        let n = 4, D = 6
        let X = randomMatrix(n, D, seed: 51)
        let g = randomMatrix(1, D, seed: 52)
        let w = Whitening.whiten(rollouts: X, groundTruth: g, n: n, D: D, mode: .featureSpace)
        XCTAssertEqual(w.outcome, .whitened)
        // Direct: Σ = XᵀX (D×D), g̃ = V diag(1/√λ) Vᵀ g over the kept eigenpairs.
        var sigma = [Double](repeating: 0, count: D * D)
        for a in 0 ..< D { for b in 0 ..< D { for i in 0 ..< n { sigma[a * D + b] += Double(X[i * D + a]) * Double(X[i * D + b]) } } }
        let (vals, V) = try XCTUnwrap(Whitening.symmetricEigen(sigma, n: D))
        let smax = vals[0].squareRoot()
        var expected = [Double](repeating: 0, count: D)
        for j in 0 ..< D where max(vals[j], 0).squareRoot() > 1e-5 * smax {
            var proj = 0.0
            for d in 0 ..< D { proj += V[d * D + j] * Double(g[d]) }
            for d in 0 ..< D { expected[d] += V[d * D + j] * proj / vals[j].squareRoot() }
        }
        for i in 0 ..< n { for d in 0 ..< D {
            XCTAssertEqual(Double(w.groundTruth[i * D + d]), expected[d], accuracy: 1e-4 * (abs(expected[d]) + 1))
        } }
        // The rollouts are whitened identically in both modes.
        let code = Whitening.whiten(rollouts: X, groundTruth: g, n: n, D: D, mode: .code)
        for (a, b) in zip(code.rollouts, w.rollouts) { XCTAssertEqual(a, b) }
        // And the paper-mode GT differs from the code-mode GT (not a multiple of g in general).
        let c0 = dot(row(w.groundTruth, 0, D), g[...]) / (dot(row(w.groundTruth, 0, D), row(w.groundTruth, 0, D)) * dot(g[...], g[...])).squareRoot()
        XCTAssertLessThan(abs(c0), 0.999)
    }

    // MARK: failure handling

    func testNonFiniteInputFallsBackToRawFeatures() {
        let X: [Float] = [1, .nan, 0, 1]
        let w = Whitening.whiten(rollouts: X, groundTruth: [1, 0], n: 2, D: 2, jitterSeed: 43, jitterKey: 1)
        XCTAssertEqual(w.outcome, .unwhitened)
        XCTAssertEqual(w.rollouts[0], 1); XCTAssert(w.rollouts[1].isNaN)
        XCTAssertEqual(w.groundTruth, [1, 0, 1, 0])
    }

    // MARK: groups and statistics

    func testGroupSlicesSampleMajorFeatures() {
        let n = 3, K = 2, D = 5
        let f = randomMatrix(n * K, D, seed: 61), g = randomMatrix(K, D, seed: 62)
        let opts = RewardOptions(beta: 0.5)
        let gr = Rewards.group(generated: f, groundTruth: g, n: n, K: K, D: D, options: opts, jitterSeed: 1, groupId: 9)
        XCTAssertEqual(gr.K, 2)
        for k in 0 ..< K {
            var x = [Float]()
            for i in 0 ..< n { x += f[(i * K + k) * D ..< (i * K + k + 1) * D] }
            let b = Rewards.block(generated: x, groundTruth: Array(g[k * D ..< (k + 1) * D]), n: n, D: D, options: opts)
            XCTAssertEqual(gr.blocks[k], b)
        }
        XCTAssertEqual(gr.advantages(sample: 1), [Float(gr.blocks[0].advantage[1]), Float(gr.blocks[1].advantage[1])])
    }

    func testRewardStats() {
        let b1 = BlockRewards(alignment: [1, 2], diversity: [0.5, 0.1], reward: [0.5, 1.9], advantage: [0, 0], whitening: .whitened)
        let b2 = BlockRewards(alignment: [0, 4], diversity: [1, 0], reward: [-1, 4], advantage: [0, 0], whitening: .unwhitened)
        var s = RewardStats()
        s.add(b1)
        var t = RewardStats()
        t.add(b2)
        s.merge(t)
        XCTAssertEqual(s.rewardPass1, (0.5 + 1.9 - 1 + 4) / 4, accuracy: 1e-12)
        XCTAssertEqual(s.rewardPassN, (1.9 + 4) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.alignmentPass1, 7.0 / 4, accuracy: 1e-12)
        XCTAssertEqual(s.alignmentPassN, 3, accuracy: 1e-12)
        XCTAssertEqual(s.diversityPassN, 0.75, accuracy: 1e-12)
        // gt − div/2: b1 → [0.75, 1.95], b2 → [−0.5, 4]
        XCTAssertEqual(s.featureMatchingPass1, (0.75 + 1.95 - 0.5 + 4) / 4, accuracy: 1e-12)
        XCTAssertEqual(s.featureMatchingPassN, (1.95 + 4) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.unwhitenedBlocks, 1)
        XCTAssertEqual(RewardStats(packed: s.packed), s)
    }
}
