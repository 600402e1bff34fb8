import XCTest
@testable import Model

/// Analytic gradients against central finite differences of a weighted negative log-likelihood
/// (`Σ_j w_j·(−log p_j)`), shared by the model's and the LoRA adapters' gradient checks.
///
/// Per tensor: the entries with the largest |analytic gradient| plus random ones. Bound: 1 % of
/// the tensor's largest gradient, plus the finite difference's own Float32 rounding. The
/// log-probs carry rounding errors of a few ulps each whose size depends on the BLAS kernel's
/// summation order, and in the difference of two losses they need not cancel, so the
/// difference is uncertain by about k·ε₃₂·Σ|w·log p| / h (k = 2: an ulp per log-prob in each of
/// the two evaluations).
enum FiniteDifferenceCheck {
    struct Tensor {
        var label: String
        /// The values perturbed in place (restored after each evaluation).
        var values: UnsafeMutablePointer<Float>
        var gradient: UnsafeBufferPointer<Float>
    }

    static func loss(_ m: Transformer, _ tokens: [Int32], _ layout: AttentionLayout, _ preds: [Prediction]) -> Double {
        let lp = m.logProbs(tokens: tokens, layout: layout, predictions: preds)
        var s = 0.0
        for (j, p) in preds.enumerated() { s += Double(p.weight) * Double(-lp[j]) }
        return s
    }

    /// Checks `tensors` of model `m`; returns the worst error / bound.
    @discardableResult
    static func check(_ tensors: [Tensor], model m: Transformer, tokens: [Int32], layout: AttentionLayout,
                      preds: [Prediction], largest: Int, random: Int, h: Float = 1e-2,
                      file: StaticString, line: UInt) -> Double {
        var rng = TF.RNG(99)
        let lp0 = m.logProbs(tokens: tokens, layout: layout, predictions: preds)
        let scale = zip(preds, lp0).reduce(0.0) { $0 + abs(Double($1.0.weight) * Double($1.1)) }
        let roundoff = 2 * Double(Float.ulpOfOne) * scale / Double(h)
        var worst = 0.0
        for t in tensors {
            let g = t.gradient
            let gmax = g.reduce(Float(0)) { max($0, abs($1)) }
            XCTAssertGreaterThan(gmax, 0, "\(t.label) got no gradient", file: file, line: line)
            var idx = Array(g.indices.sorted { abs(g[$0]) > abs(g[$1]) }.prefix(largest))
            for _ in 0..<random { idx.append(rng.int(g.count)) }
            for i in idx {
                let p = t.values + i
                let old = p.pointee
                p.pointee = old + h
                let lp = loss(m, tokens, layout, preds)
                p.pointee = old - h
                let lm = loss(m, tokens, layout, preds)
                p.pointee = old
                let fd = (lp - lm) / Double(2 * h)
                let err = abs(fd - Double(g[i]))
                let bound = 1e-2 * max(Double(gmax), 1e-3) + roundoff
                worst = max(worst, err / bound)
                XCTAssertLessThan(err, bound, "\(t.label)[\(i)]: analytic \(g[i]) vs fd \(fd) (max |g| \(gmax), "
                                  + "finite-difference rounding \(roundoff))", file: file, line: line)
            }
        }
        return worst
    }
}
