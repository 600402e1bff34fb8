import Model
import Rollout

/// The teacher-forced pass with shared prefixes (issue 15): the samples of one chunk run as one
/// sequence `chunk ++ gen₀ ++ … ++ gen_{m−1}` (`StridedGeometry.sharedLayout`), so the chunk's
/// P rows are computed once per group instead of once per sample, forward and backward; the
/// gradient of the chunk's keys and values sums the contributions of all m continuations
/// inside the attention backward, and the prefix is then backpropagated through once.
///
/// The loss is the per-sample loss summed over the group, term by term: each sample's
/// generated-token predictions keep their weights (rows renumbered into the shared sequence;
/// step-0 tokens are predicted from chunk rows, shared), and the chunk's CE predictions, which
/// every sample of the group carries with the same rows and targets, appear once with m times
/// the weight. So the gradient equals the per-sample path's up to Float32 summation order.
///
/// Micro-batches: a group is as many samples of a chunk as fit in `maxTokensPerBatch`
/// (`sharedGroupSizes`; a chunk with more samples is split into even groups and its prefix is
/// recomputed once per group, the memory of a micro-batch staying bounded); groups with the
/// same number of samples share a layout and are stacked into one forward/backward up to the
/// same limit.
extension PolicyLearner {
    /// Indices of `experiences` grouped by chunk (same `chunkID` and tokens), groups in order of
    /// first appearance, samples in their given order.
    static func chunkGroups(_ experiences: [Experience]) -> [[Int]] {
        var groups: [[Int]] = []
        var byID: [Int64: [Int]] = [:]   // chunk id → indices into `groups`
        for (j, e) in experiences.enumerated() {
            if let gi = byID[e.chunkID]?.first(where: { experiences[groups[$0][0]].chunk == e.chunk }) {
                groups[gi].append(j)
            } else {
                byID[e.chunkID, default: []].append(groups.count)
                groups.append([j])
            }
        }
        return groups
    }

    func accumulateShared(_ experiences: [Experience], totalSequences: Int,
                          layerReady: ((Int) -> Void)?) -> LearnerStats {
        let g = geometry, P = g.P, K = g.K, G = g.G, GK = G * K
        for e in experiences {
            precondition(e.chunk.count == P && e.generated.count == GK && e.advantages.count == K
                         && e.sampleLogProbs.count == GK, "experience does not match the geometry")
        }
        // Pieces (one prefix each), collected by sample count so equal layouts stack.
        var pieceSizes: [Int] = []
        var pieces: [Int: [[Int]]] = [:]
        for group in Self.chunkGroups(experiences) {
            var s = 0
            for m in g.sharedGroupSizes(samples: group.count, maxTokens: maxTokensPerBatch) {
                if pieces[m] == nil { pieceSizes.append(m) }
                pieces[m, default: []].append(Array(group[s ..< s + m]))
                s += m
            }
        }
        var batches: [(m: Int, pieces: [[Int]])] = []
        for m in pieceSizes {
            let list = pieces[m]!
            let perBatch = max(1, maxTokensPerBatch / g.sharedLength(samples: m))
            var s = 0
            while s < list.count {
                batches.append((m, Array(list[s ..< min(list.count, s + perBatch)])))
                s += perBatch
            }
        }
        let w = 1 / Float(totalSequences)
        let invT: Float = temperature > 0 ? 1 / temperature : 1
        let cw = w * ceCoef / Float(P - 1), gw = w / Float(GK)
        var stats = LearnerStats()
        for (bi, batch) in batches.enumerated() {
            let m = batch.m, S = g.sharedLength(samples: m)
            var tokens = [Int32]()
            tokens.reserveCapacity(batch.pieces.count * S)
            var preds = [Prediction]()
            preds.reserveCapacity(batch.pieces.count * (P - 1 + m * GK))
            for (b, piece) in batch.pieces.enumerated() {
                let base = b * S
                let chunk = experiences[piece[0]].chunk
                tokens += chunk
                for q in 0 ..< (P - 1) {
                    preds.append(Prediction(row: base + q, target: chunk[q + 1], invTemperature: 1, weight: Float(m) * cw))
                }
                for (i, j) in piece.enumerated() {
                    let e = experiences[j]
                    tokens += e.generated
                    for t in 0 ..< G {
                        for k in 0 ..< K {
                            preds.append(Prediction(row: base + g.sharedPredictionRow(sample: i, t: t, k: k),
                                                    target: e.generated[t * K + k], invTemperature: invT,
                                                    weight: gw * e.advantages[k]))
                        }
                    }
                }
            }
            model.layerGradientsReady = bi == batches.count - 1 ? layerReady : nil
            let r = backward(tokens: tokens, layout: g.sharedLayout(samples: m), predictions: preds)
            model.layerGradientsReady = nil
            let perPiece = P - 1 + m * GK
            for (b, piece) in batch.pieces.enumerated() {
                let lp = r.logProbs[(b * perPiece) ..< ((b + 1) * perPiece)]
                var ce = 0.0
                for q in 0 ..< (P - 1) { ce -= Double(lp[lp.startIndex + q]) }
                for (i, j) in piece.enumerated() {
                    let e = experiences[j]
                    let first = lp.startIndex + P - 1 + i * GK
                    var rl = 0.0, drift = 0.0
                    for idx in 0 ..< GK {
                        let v = Double(lp[first + idx])
                        rl -= Double(e.advantages[idx % K]) * v
                        drift = max(drift, abs(v - Double(e.sampleLogProbs[idx])))
                    }
                    stats.sequences += 1
                    stats.ceSum += ce / Double(P - 1)
                    stats.rlSum += rl / Double(GK)
                    stats.maxLogProbDrift = max(stats.maxLogProbDrift, drift)
                    // The sequence's own length, as in the per-sample path (the work done is
                    // less: the chunk is shared).
                    stats.tokens += Double(g.fullLength)
                }
            }
        }
        return stats
    }
}
