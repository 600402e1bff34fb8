#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// AdamW hyper-parameters (spec §7.3: betas (0.9, 0.95), eps 1e-8, weight decay 0).
public struct AdamWConfig: Codable, Equatable, Sendable {
    // Doubles, like the reference's Python floats: `1 − β` is formed in double and only then
    // rounded to Float (so `1 − 0.9` is Float(0.1), not 1 − Float(0.9)).
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    /// Decoupled weight decay λ: `p ← p·(1 − lr·λ)` before the Adam step.
    public var weightDecay: Double

    public init(beta1: Double = 0.9, beta2: Double = 0.95, eps: Double = 1e-8, weightDecay: Double = 0) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// Adam with decoupled weight decay over one flat parameter buffer (as `torch.optim.AdamW` and
/// DeepSpeed's CPU-Adam in AdamW mode). For step `t` (1-based):
///
///     p ← p·(1 − lr·λ)
///     m ← β1·m + (1 − β1)·g
///     v ← β2·v + (1 − β2)·g²
///     p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
///
/// The moments `m`, `v` are flat buffers parallel to the parameters; `step` counts the updates
/// done. All three are public so checkpoints can save and restore them.
public struct AdamW: Sendable {
    public var config: AdamWConfig
    public var m: [Float]
    public var v: [Float]
    /// Number of updates applied so far.
    public var step: Int

    public init(count: Int, config: AdamWConfig = AdamWConfig()) {
        precondition(count >= 0, "parameter count must be non-negative")
        self.config = config
        m = [Float](repeating: 0, count: count)
        v = [Float](repeating: 0, count: count)
        step = 0
    }

    public var count: Int { m.count }

    /// Applies one update with learning rate `lr` to `params` using `grads` (both `count` long).
    public mutating func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float) {
        step += 1
        let t = step, c = config
        m.withUnsafeMutableBufferPointer { mb in
            v.withUnsafeMutableBufferPointer { vb in
                AdamW.kernel(params: params, grads: grads, m: mb.baseAddress!, v: vb.baseAddress!, count: mb.count,
                             lr: lr, step: t, config: c)
            }
        }
    }

    /// Array convenience.
    public mutating func update(params: inout [Float], grads: [Float], lr: Float) {
        precondition(params.count == count && grads.count == count, "params and grads must have \(count) elements")
        params.withUnsafeMutableBufferPointer { p in
            grads.withUnsafeBufferPointer { g in update(params: p.baseAddress!, grads: g.baseAddress!, lr: lr) }
        }
    }

    /// The per-step constants of the update, formed as the reference forms them.
    public struct Coefficients: Sendable {
        public var stepSize: Float, invSqrtBc2: Float, decay: Float
        public var b1: Float, b2: Float, a1: Float, a2: Float, eps: Float

        public init(lr: Float, step: Int, config c: AdamWConfig) {
            precondition(step >= 1, "AdamW step is 1-based, got \(step)")
            // Bias corrections in Double, then Float (as the reference computes them in Python floats).
            let bc1 = 1 - pow(c.beta1, Double(step))
            let bc2 = 1 - pow(c.beta2, Double(step))
            stepSize = Float(Double(lr) / bc1)
            invSqrtBc2 = Float(1 / bc2.squareRoot())
            decay = Float(1 - Double(lr) * c.weightDecay)
            b1 = Float(c.beta1); b2 = Float(c.beta2); a1 = Float(1 - c.beta1); a2 = Float(1 - c.beta2)
            eps = Float(c.eps)
        }
    }

    /// The update on raw buffers, for step `step` (1-based) — usable on any slice of a larger
    /// buffer (e.g. a learner's shard). Vectorised 8 floats at a time, scalar tail.
    public static func kernel(params p: UnsafeMutablePointer<Float>, grads g: UnsafePointer<Float>,
                              m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                              lr: Float, step: Int, config c: AdamWConfig) {
        fusedKernel(params: p, grads: UnsafeMutablePointer(mutating: g), m: m, v: v, count: count,
                    gradScale: 1, zeroGrads: false, k: Coefficients(lr: lr, step: step, config: c))
    }

    /// One pass over `count` elements: `g·gradScale` is the gradient of the update above; with
    /// `zeroGrads` the gradient buffer is zeroed in the same pass (for the next accumulation).
    /// Every element is computed by the same arithmetic in the 8-wide body and the scalar tail,
    /// so a slice's result does not depend on where the slice starts.
    @inline(__always)
    static func fusedKernel(params p: UnsafeMutablePointer<Float>, grads g: UnsafeMutablePointer<Float>,
                            m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                            gradScale s: Float, zeroGrads: Bool, k: Coefficients) {
        let b1 = k.b1, b2 = k.b2, a1 = k.a1, a2 = k.a2, eps = k.eps
        let decay = k.decay, stepSize = k.stepSize, invSqrtBc2 = k.invSqrtBc2
        typealias V8 = SIMD8<Float>
        var i = 0
        while i + 8 <= count {
            let gi = UnsafeRawPointer(g + i).loadUnaligned(as: V8.self) * s
            var mi = UnsafeRawPointer(m + i).loadUnaligned(as: V8.self)
            var vi = UnsafeRawPointer(v + i).loadUnaligned(as: V8.self)
            var pi = UnsafeRawPointer(p + i).loadUnaligned(as: V8.self)
            mi = b1 * mi + a1 * gi
            vi = b2 * vi + a2 * gi * gi
            pi = pi * decay
            pi = pi - stepSize * mi / (vi.squareRoot() * invSqrtBc2 + eps)
            UnsafeMutableRawPointer(m + i).storeBytes(of: mi, as: V8.self)
            UnsafeMutableRawPointer(v + i).storeBytes(of: vi, as: V8.self)
            UnsafeMutableRawPointer(p + i).storeBytes(of: pi, as: V8.self)
            if zeroGrads { UnsafeMutableRawPointer(g + i).storeBytes(of: V8(), as: V8.self) }
            i += 8
        }
        while i < count {
            let gi = g[i] * s
            let mi = b1 * m[i] + a1 * gi
            let vi = b2 * v[i] + a2 * gi * gi
            m[i] = mi; v[i] = vi
            p[i] = p[i] * decay - stepSize * mi / (vi.squareRoot() * invSqrtBc2 + eps)
            if zeroGrads { g[i] = 0 }
            i += 1
        }
    }

    /// The whole optimizer pass after the gradient norm, fused: clip (`g·gradScale`), the AdamW
    /// update and zeroing the gradient, over `GradClip`'s blocks spread across `threads`, plus
    /// Σ m² of the new first moment (summed as `GradClip.sumOfSquares` sums, from the block
    /// while it is in cache). Advances `step`. Results do not depend on `threads`.
    @discardableResult
    public mutating func fusedUpdate(params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>,
                                     lr: Float, gradScale: Float, threads: Int) -> Double {
        step += 1
        let k = Coefficients(lr: lr, step: step, config: config)
        let n = count, bs = GradClip.blockSize
        var partial = [Double](repeating: 0, count: (n + bs - 1) / bs)
        m.withUnsafeMutableBufferPointer { mb in
            v.withUnsafeMutableBufferPointer { vb in
                partial.withUnsafeMutableBufferPointer { out in
                    let mp = mb.baseAddress!, vp = vb.baseAddress!, out = out
                    GradClip.forEachBlockRun(count: n, threads: threads) { run in
                        for b in run {
                            let start = b * bs, len = min(bs, n - start)
                            AdamW.fusedKernel(params: params + start, grads: grads + start, m: mp + start, v: vp + start,
                                              count: len, gradScale: gradScale, zeroGrads: true, k: k)
                            out[b] = GradClip.blockSumOfSquares(mp + start, count: len)
                        }
                    }
                }
            }
        }
        var sum = 0.0
        for s in partial { sum += s }
        return sum
    }
}
