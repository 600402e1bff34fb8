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

    /// The update on raw buffers, for step `step` (1-based) — usable on any slice of a larger
    /// buffer (e.g. a learner's shard). Vectorised 8 floats at a time, scalar tail.
    public static func kernel(params p: UnsafeMutablePointer<Float>, grads g: UnsafePointer<Float>,
                              m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                              lr: Float, step: Int, config c: AdamWConfig) {
        precondition(step >= 1, "AdamW step is 1-based, got \(step)")
        // Bias corrections in Double, then Float (as the reference computes them in Python floats).
        let bc1 = 1 - pow(c.beta1, Double(step))
        let bc2 = 1 - pow(c.beta2, Double(step))
        let stepSize = Float(Double(lr) / bc1)
        let invSqrtBc2 = Float(1 / bc2.squareRoot())
        let decay = Float(1 - Double(lr) * c.weightDecay)
        let b1 = Float(c.beta1), b2 = Float(c.beta2), a1 = Float(1 - c.beta1), a2 = Float(1 - c.beta2)
        let eps = Float(c.eps)

        typealias V8 = SIMD8<Float>
        var i = 0
        while i + 8 <= count {
            let gi = UnsafeRawPointer(g + i).loadUnaligned(as: V8.self)
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
            i += 8
        }
        while i < count {
            let gi = g[i]
            let mi = b1 * m[i] + a1 * gi
            let vi = b2 * v[i] + a2 * gi * gi
            m[i] = mi; v[i] = vi
            p[i] = p[i] * decay - stepSize * mi / (vi.squareRoot() * invSqrtBc2 + eps)
            i += 1
        }
    }
}
