/// Global-norm gradient clipping over a flat gradient (as `torch.nn.utils.clip_grad_norm_`).
public enum GradClip {
    /// The L2 norm of `g`, accumulated in Double.
    public static func globalNorm(_ g: UnsafePointer<Float>, count: Int) -> Double {
        // Four independent Double accumulators: deterministic, and faster than one chain.
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= count {
            let a = Double(g[i]), b = Double(g[i + 1]), c = Double(g[i + 2]), d = Double(g[i + 3])
            s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
            i += 4
        }
        while i < count { let a = Double(g[i]); s0 += a * a; i += 1 }
        return ((s0 + s1) + (s2 + s3)).squareRoot()
    }

    /// Multiplies `g` by `maxNorm / (norm + 1e-6)` when its norm exceeds `maxNorm`; returns the
    /// norm before clipping. A non-finite norm is returned as is and `g` is left untouched (the
    /// caller should skip the step and report it).
    @discardableResult
    public static func clip(_ g: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double) -> Double {
        precondition(maxNorm > 0, "maxNorm must be positive, got \(maxNorm)")
        let norm = globalNorm(g, count: count)
        guard norm.isFinite else { return norm }
        let coef = maxNorm / (norm + 1e-6)
        if coef < 1 {
            let s = Float(coef)
            for i in 0 ..< count { g[i] *= s }
        }
        return norm
    }

    /// Array convenience.
    @discardableResult
    public static func clip(_ g: inout [Float], maxNorm: Double) -> Double {
        g.withUnsafeMutableBufferPointer { clip($0.baseAddress!, count: $0.count, maxNorm: maxNorm) }
    }
}
