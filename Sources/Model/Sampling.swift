import Foundation

/// Picking one token from a row of logits (spec §4.6, §10.2).
///
/// The pick is a pure function of (logits, temperature, topP, uniform): with the uniform
/// drawn from `CounterRNG` keyed by the token's identity, the same logits always give the same
/// token, whatever the batch layout.
public enum Sampling {
    /// Picks a token.
    ///
    /// * `temperature == 0`: greedy — the argmax (lowest id among equal maxima); `logProb` is
    ///   `log softmax(logits)[token]` at temperature 1. `topP` and `uniform` are ignored.
    /// * `temperature > 0`: `p = softmax(logits / T)` (Float32 exponentials after subtracting
    ///   the maximum, sums accumulated in Double). With `topP < 1` the nucleus is the smallest
    ///   set of most probable tokens (ties: lower id first) whose mass reaches `topP`; the top
    ///   token is always kept. The kept probabilities are renormalised and the token is found
    ///   by inverse CDF with `uniform`, walking the kept tokens in ascending id order.
    ///   `logProb` is `log softmax(logits / T)[token]` *before* the top-p truncation — the
    ///   policy log-probability the learner differentiates.
    ///
    /// Preconditions (programmer errors; user options are checked by the config): `vocab > 0`,
    /// `temperature >= 0`, `0 < topP <= 1`, `0 <= uniform < 1`, logits not NaN and not all −∞.
    public static func pick(logits: UnsafePointer<Float>, vocab: Int, temperature: Float,
                            topP: Float, uniform: Double) -> (token: Int32, logProb: Float) {
        precondition(vocab > 0, "vocab must be positive, got \(vocab)")
        precondition(temperature >= 0 && temperature.isFinite, "temperature must be finite and >= 0, got \(temperature)")
        precondition(topP > 0 && topP <= 1, "topP must be in (0, 1], got \(topP)")
        precondition(uniform >= 0 && uniform < 1, "uniform must be in [0, 1), got \(uniform)")

        if temperature == 0 {
            var best = 0
            var bestValue = logits[0]
            for i in 1..<vocab where logits[i] > bestValue {
                best = i
                bestValue = logits[i]
            }
            precondition(!bestValue.isNaN && bestValue > -Float.infinity, "logits are NaN or all -inf")
            let lse = logSumExp(logits, vocab, scale: 1)
            return (Int32(best), Float(Double(bestValue) - lse))
        }

        // Scaled logits, their maximum and the Float exponentials.
        let T = temperature
        var m = -Float.infinity
        for i in 0..<vocab {
            let z = logits[i] / T
            precondition(!z.isNaN, "logit \(i) is NaN")
            if z > m { m = z }
        }
        precondition(m > -Float.infinity, "logits are all -inf")
        var e = [Float](repeating: 0, count: vocab)
        var sum = 0.0
        for i in 0..<vocab {
            let x = exp(logits[i] / T - m)
            e[i] = x
            sum += Double(x)
        }

        // Kept set: everything, or the nucleus (as a sorted list of ids).
        var token = -1
        if topP >= 1 {
            let target = uniform * sum
            var cum = 0.0
            var lastNonZero = 0
            for i in 0..<vocab where e[i] > 0 {
                cum += Double(e[i])
                lastNonZero = i
                if cum > target { token = i; break }
            }
            if token < 0 { token = lastNonZero }                   // rounding at the top end
        } else {
            // The nucleus is a prefix of the tokens sorted by probability (ties: lower id). Every
            // token below a cut-off is strictly less probable than every token above it, so
            // sorting only the tokens above the cut-off gives the same prefix whenever their mass
            // suffices; the cut-off is lowered until it does (exp(0) = 1 is the top value).
            let need = Double(topP) * sum
            var kept: [Int] = []
            var mass = 0.0
            for cut: Float in [1e-2, 1e-4, 1e-8, 0] {
                let candidates = cut > 0 ? (0..<vocab).filter { e[$0] >= cut } : Array(0..<vocab)
                let order = candidates.sorted { e[$0] > e[$1] || (e[$0] == e[$1] && $0 < $1) }
                kept.removeAll(keepingCapacity: true)
                mass = 0
                for i in order {
                    kept.append(i)
                    mass += Double(e[i])
                    if mass >= need { break }
                }
                if mass >= need || cut == 0 { break }
            }
            kept.sort()
            let target = uniform * mass
            var cum = 0.0
            for i in kept {
                cum += Double(e[i])
                if cum > target { token = i; break }
            }
            if token < 0 { token = kept.last(where: { e[$0] > 0 }) ?? kept[kept.count - 1] }
        }
        let logProb = Double(logits[token] / T - m) - log(sum)
        return (Int32(token), Float(logProb))
    }

    /// Array convenience for `pick(logits:vocab:temperature:topP:uniform:)`.
    public static func pick(logits: [Float], temperature: Float, topP: Float = 1,
                            uniform: Double) -> (token: Int32, logProb: Float) {
        logits.withUnsafeBufferPointer {
            pick(logits: $0.baseAddress!, vocab: $0.count, temperature: temperature, topP: topP, uniform: uniform)
        }
    }

    /// `log Σ_i exp(scale·logits[i])`, max-subtracted, summed in Double.
    public static func logSumExp(_ logits: UnsafePointer<Float>, _ vocab: Int, scale: Float) -> Double {
        var m = -Float.infinity
        for i in 0..<vocab { m = max(m, logits[i] * scale) }
        var sum = 0.0
        for i in 0..<vocab { sum += Double(exp(logits[i] * scale - m)) }
        return Double(m) + log(sum)
    }
}
