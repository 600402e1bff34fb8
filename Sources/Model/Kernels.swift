import Foundation

/// Forward/backward kernel pairs of the transformer. Row-major; `T` rows (tokens), shapes in
/// comments. Backward kernels *accumulate* (`+=`) into parameter gradients; whether they
/// overwrite or accumulate input gradients is stated per kernel.
public enum Kernels {

    // MARK: - Fast exp (Cephes-style range reduction + degree-7 polynomial, rel. err ~2e-7)

    @inline(__always)
    public static func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // Clamp with explicit selects (the generic `clamped` is not always inlined).
        var xc = x
        let lo = SIMD8<Float>(repeating: -87.0), hi = SIMD8<Float>(repeating: 88.0)
        xc.replace(with: lo, where: xc .< lo)
        xc.replace(with: hi, where: xc .> hi)
        // n = round(x / ln2) via the 1.5·2^23 trick (the integer ends up in the low mantissa bits).
        let magic = SIMD8<Float>(repeating: 12582912.0)
        let t = xc * 1.44269504088896341 + magic
        let n = t - magic
        var r = xc - n * 0.693359375
        r = r + n * 2.12194440e-4
        var p = SIMD8<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * (r * r) + r + 1
        let ti = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((ti &+ 127) &<< 23, to: SIMD8<Float>.self)
        return p * scale
    }

    @inline(__always)
    public static func exp1(_ x: Float) -> Float {
        exp8(SIMD8(repeating: x))[0]
    }

    /// `p[i] = exp(p[i] - shift)` for i in 0..<n; returns Σ p[i] (Float accumulation per lane).
    @inline(__always)
    public static func expShiftInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        let s = SIMD8<Float>(repeating: shift)
        let raw = UnsafeMutableRawPointer(p)
        while i + 8 <= n {
            let v = exp8(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - s)
            raw.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            acc += v
            i += 8
        }
        var sum = acc.sum()
        while i < n {
            let v = exp1(p[i] - shift)
            p[i] = v
            sum += v
            i += 1
        }
        return sum
    }

    @inline(__always)
    public static func maxOf(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        var i = 0
        if n >= 8 {
            var mv = SIMD8<Float>(repeating: -.infinity)
            let raw = UnsafeRawPointer(p)
            while i + 8 <= n {
                let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                mv.replace(with: v, where: v .> mv)
                i += 8
            }
            m = mv.max()
        }
        while i < n { m = Swift.max(m, p[i]); i += 1 }
        return m
    }

    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 8 <= n {
            acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// `y[i] += a · x[i]`
    @inline(__always)
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
        let av = SIMD8<Float>(repeating: a)
        while i + 8 <= n {
            let v = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                + av * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            ry.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { y[i] += a * x[i]; i += 1 }
    }

    /// `y[i] = a · x[i]`
    @inline(__always)
    public static func scaleCopy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = a * x[i] }
    }

    /// `y[i] += x[i]`
    @inline(__always)
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        axpy(1, x, y, n)
    }

    // MARK: - Embedding

    /// out[t, :] = table[tokens[t], :]      out: [T, d], table: [V, d]
    public static func embeddingForward(out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>,
                                        count T: Int, table: UnsafePointer<Float>, dim d: Int) {
        for t in 0..<T {
            (out + t * d).update(from: table + Int(tokens[t]) * d, count: d)
        }
    }

    /// dTable[tokens[t], :] += dOut[t, :]   (accumulates)
    public static func embeddingBackward(dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                         tokens: UnsafePointer<Int32>, count T: Int, dim d: Int) {
        for t in 0..<T {
            axpy(1, dOut + t * d, dTable + Int(tokens[t]) * d, d)
        }
    }

    // MARK: - RMSNorm

    /// out[t] = x[t] · rstd[t] · w,  rstd[t] = 1/sqrt(mean(x[t]²) + eps)
    /// x, out: [T, d]; w: [d]; rstd: [T] (saved for backward)
    public static func rmsnormForward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                                      x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                                      count T: Int, dim d: Int, eps: Float) {
        for t in 0..<T {
            let xr = x + t * d, orow = out + t * d
            let ms = dot(xr, xr, d) / Float(d)
            let r = 1 / (ms + eps).squareRoot()
            rstd[t] = r
            for i in 0..<d { orow[i] = xr[i] * r * w[i] }
        }
    }

    /// dx[t] += r·w∘dy − r³/d · x · Σ_i(dy_i w_i x_i);  dw += Σ_t dy ∘ x · r
    /// (accumulates into dx and dw)
    public static func rmsnormBackward(dx: UnsafeMutablePointer<Float>, dWeight dw: UnsafeMutablePointer<Float>?,
                                       dOut dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                       weight w: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                       count T: Int, dim d: Int) {
        for t in 0..<T {
            let xr = x + t * d, dyr = dy + t * d, dxr = dx + t * d
            let r = rstd[t]
            var s: Float = 0
            for i in 0..<d { s += dyr[i] * w[i] * xr[i] }
            let c = r * r * r * s / Float(d)
            if let dw {
                for i in 0..<d {
                    dxr[i] += r * w[i] * dyr[i] - c * xr[i]
                    dw[i] += dyr[i] * xr[i] * r
                }
            } else {
                for i in 0..<d { dxr[i] += r * w[i] * dyr[i] - c * xr[i] }
            }
        }
    }

    // MARK: - RoPE (adjacent pairs)

    /// cos/sin of pos·base^(−2i/hd) for each row's position: [S, hd/2] each.
    public struct RopeTable {
        public let rows: Int
        public let half: Int
        public var cos: [Float]
        public var sin: [Float]

        public init(positions: UnsafeBufferPointer<Int32>, headDim: Int, base: Float) {
            var inv = [Double](repeating: 0, count: headDim / 2)
            for i in 0..<headDim / 2 { inv[i] = Foundation.pow(Double(base), -2.0 * Double(i) / Double(headDim)) }
            self.init(positions: positions, inverseFrequencies: inv)
        }

        /// cos/sin of pos·inv[i] (pair i < inv.count = hd/2), e.g. `ModelConfig.ropeInverseFrequencies`.
        public init(positions: UnsafeBufferPointer<Int32>, inverseFrequencies inv: [Double]) {
            half = inv.count
            rows = positions.count
            cos = [Float](repeating: 0, count: rows * half)
            sin = [Float](repeating: 0, count: rows * half)
            for r in 0..<rows {
                let p = Double(positions[r])
                for i in 0..<half {
                    let a = p * inv[i]
                    cos[r * half + i] = Float(Foundation.cos(a))
                    sin[r * half + i] = Float(Foundation.sin(a))
                }
            }
        }

        public init(positions: [Int32], headDim: Int, base: Float) {
            self = positions.withUnsafeBufferPointer { RopeTable(positions: $0, headDim: headDim, base: base) }
        }

        public init(positions: [Int32], inverseFrequencies inv: [Double]) {
            self = positions.withUnsafeBufferPointer { RopeTable(positions: $0, inverseFrequencies: inv) }
        }
    }

    /// In place on x: [S, nh·hd] (row stride `stride` ≥ nh·hd): for each head and pair i,
    /// (x[2i], x[2i+1]) ← (x0·c − x1·s, x0·s + x1·c) with (c, s) of row t's position.
    /// `inverse` rotates by −θ, which is the backward (the rotation is orthogonal).
    public static func rope(_ x: UnsafeMutablePointer<Float>, rows S: Int, heads nh: Int, headDim hd: Int,
                            stride: Int, table: RopeTable, inverse: Bool = false) {
        let half = hd / 2
        let sgn: Float = inverse ? -1 : 1
        table.cos.withUnsafeBufferPointer { cb in
            table.sin.withUnsafeBufferPointer { sb in
                for t in 0..<S {
                    let c = cb.baseAddress! + t * half, s = sb.baseAddress! + t * half
                    let row = x + t * stride
                    for h in 0..<nh {
                        let v = row + h * hd
                        for i in 0..<half {
                            let x0 = v[2 * i], x1 = v[2 * i + 1]
                            let si = sgn * s[i]
                            v[2 * i] = x0 * c[i] - x1 * si
                            v[2 * i + 1] = x0 * si + x1 * c[i]
                        }
                    }
                }
            }
        }
    }

    // MARK: - Bias

    /// y[t, :] += bias   (y: [T, n], bias: [n])
    public static func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows T: Int, dim n: Int) {
        for t in 0..<T { axpy(1, bias, y + t * n, n) }
    }

    /// dBias += Σ_t dy[t, :]   (accumulates)
    public static func biasBackward(_ dBias: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, rows T: Int, dim n: Int) {
        for t in 0..<T { axpy(1, dy + t * n, dBias, n) }
    }

    // MARK: - SwiGLU

    /// out = silu(gate) ∘ up, silu(g) = g·σ(g).   all: [n]
    public static func swigluForward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                                     up: UnsafePointer<Float>, count n: Int) {
        var i = 0
        let ro = UnsafeMutableRawPointer(out), rg = UnsafeRawPointer(gate), ru = UnsafeRawPointer(up)
        let one = SIMD8<Float>(repeating: 1)
        while i + 8 <= n {
            let g = rg.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let u = ru.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let sig = one / (one + exp8(-g))
            ro.storeBytes(of: g * sig * u, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            let g = gate[i]
            out[i] = g / (1 + exp1(-g)) * up[i]
            i += 1
        }
    }

    /// dGate = dOut·up·σ(g)(1 + g(1−σ(g))),  dUp = dOut·silu(g)   (overwrite)
    public static func swigluBackward(dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>,
                                      dOut: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                      up: UnsafePointer<Float>, count n: Int) {
        var i = 0
        let rdg = UnsafeMutableRawPointer(dGate), rdu = UnsafeMutableRawPointer(dUp)
        let rdo = UnsafeRawPointer(dOut), rg = UnsafeRawPointer(gate), ru = UnsafeRawPointer(up)
        let one = SIMD8<Float>(repeating: 1)
        while i + 8 <= n {
            let g = rg.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let u = ru.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let d = rdo.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let sig = one / (one + exp8(-g))
            rdu.storeBytes(of: d * g * sig, toByteOffset: i * 4, as: SIMD8<Float>.self)
            rdg.storeBytes(of: d * u * sig * (one + g * (one - sig)), toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            let g = gate[i], sig = 1 / (1 + exp1(-g))
            dUp[i] = dOut[i] * g * sig
            dGate[i] = dOut[i] * up[i] * sig * (1 + g * (1 - sig))
            i += 1
        }
    }

    // MARK: - Linear (y = x·Wᵀ, W row-major [out, in])

    /// y: [T, out] = x: [T, in] · Wᵀ (W: [out, in]); `accumulate` adds to y.
    public static func linearForward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                                     weight w: UnsafePointer<Float>, rows T: Int, inDim: Int, outDim: Int,
                                     accumulate: Bool = false) {
        BLAS.sgemm(transB: true, m: T, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim,
                   beta: accumulate ? 1 : 0, c: y, ldc: outDim)
    }

    /// dx: [T, in] (=, or += with `accumulateInput`) dy·W;  dW: [out, in] += dyᵀ·x.
    /// Pass `dx = nil` to skip the input gradient.
    public static func linearBackward(dx: UnsafeMutablePointer<Float>?, dWeight dw: UnsafeMutablePointer<Float>,
                                      dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                      weight w: UnsafePointer<Float>, rows T: Int, inDim: Int, outDim: Int,
                                      accumulateInput: Bool = false) {
        if let dx {
            BLAS.sgemm(m: T, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
                       beta: accumulateInput ? 1 : 0, c: dx, ldc: inDim)
        }
        BLAS.sgemm(transA: true, m: outDim, n: inDim, k: T, a: dy, lda: outDim, b: x, ldb: inDim,
                   beta: 1, c: dw, ldc: inDim)
    }
}
