import Model

/// How the ground-truth feature is whitened (spec §2.5, §14.1).
public enum GTWhitening: String, Codable, Sendable, CaseIterable {
    /// The reference code: the replicated GT matrix is left-multiplied by the same `n×n`
    /// operator `W` as the rollouts, so row `i` of the whitened GT is `(Σ_j W_ij)·g`.
    case code
    /// The paper's reading: whiten in feature space, `g̃ = (Σ̂^+)^{1/2} g` with `Σ̂ = XᵀX`
    /// (no `1/n`, matching the code's scale). With the thin SVD `X = U S Vᵀ`,
    /// `(Σ̂^+)^{1/2} = V S⁻¹ Vᵀ = Xᵀ·U S⁻³ Uᵀ·X`, computed through the `n×n` Gram only. The
    /// rollouts' whitening `x_i ↦ (Σ̂^+)^{1/2} x_i` equals the code's `W·X = U Vᵀ` exactly.
    case featureSpace
}

/// Which path a whitening call took.
public enum WhiteningOutcome: String, Equatable, Sendable, Codable {
    case whitened
    /// The first attempt hit a non-finite value; the jittered matrix was whitened.
    case whitenedAfterJitter
    /// Both attempts failed (or whitening was off): the features are used as they are.
    case unwhitened
}

/// The whitening of spec §2.5, computed exactly through the `n×n` Gram matrix.
///
/// `X` (n×D) has thin SVD `X = U S Vᵀ`; `U` and `S²` are the eigenvectors and eigenvalues of
/// `X Xᵀ`, found by cyclic Jacobi in Double. `S_j = √λ_j`; `invS_j = 1/(S_j + 1e-12)` when
/// `S_j > 1e-5·max S`, else 0; `W = U diag(invS) Uᵀ`; `X̃ = W·X`.
public enum Whitening {
    /// The relative singular-value cut-off of the reference code.
    public static let relativeTolerance = 1e-5

    /// Eigen-decomposition of the symmetric `n×n` matrix `A` (row-major) by cyclic Jacobi
    /// rotations. Returns the eigenvalues (descending) and the eigenvectors as the *columns* of
    /// a row-major `n×n` matrix, or nil if `A` is not finite or the iteration does not converge.
    public static func symmetricEigen(_ A: [Double], n: Int) -> (values: [Double], vectors: [Double])? {
        precondition(A.count == n * n && n > 0, "symmetricEigen needs an n×n matrix")
        guard A.allSatisfy({ $0.isFinite }) else { return nil }
        var a = A
        var v = [Double](repeating: 0, count: n * n)
        for i in 0 ..< n { v[i * n + i] = 1 }
        let scale = a.reduce(0) { $0 + $1 * $1 }
        var converged = n == 1 || scale == 0
        var sweep = 0
        while !converged && sweep < 100 {
            sweep += 1
            var off = 0.0
            for p in 0 ..< n { for q in p + 1 ..< n { off += a[p * n + q] * a[p * n + q] } }
            if off <= 1e-30 * scale { converged = true; break }
            for p in 0 ..< n - 1 {
                for q in p + 1 ..< n {
                    let apq = a[p * n + q]
                    if apq == 0 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t: Double = abs(theta) > 1e150
                        ? 1 / (2 * theta)
                        : (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot()
                    let s = t * c
                    for k in 0 ..< n {                              // A ← A·J (columns p, q)
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0 ..< n {                              // A ← Jᵀ·A (rows p, q)
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0 ..< n {                              // V ← V·J
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        guard converged, a.allSatisfy({ $0.isFinite }), v.allSatisfy({ $0.isFinite }) else { return nil }
        let order = (0 ..< n).sorted { a[$0 * n + $0] > a[$1 * n + $1] || (a[$0 * n + $0] == a[$1 * n + $1] && $0 < $1) }
        var values = [Double](), vectors = [Double](repeating: 0, count: n * n)
        for (col, j) in order.enumerated() {
            values.append(a[j * n + j])
            for k in 0 ..< n { vectors[k * n + col] = v[k * n + j] }
        }
        return (values, vectors)
    }

    /// The pieces of the whitening operator for one `n×D` matrix.
    public struct Operator: Equatable, Sendable {
        public var n: Int
        /// Left singular vectors of X as columns, row-major n×n.
        public var U: [Double]
        /// Singular values of X, descending.
        public var S: [Double]
        /// Thresholded inverses `invS_j`.
        public var invS: [Double]
        /// `W = U diag(invS) Uᵀ`, row-major n×n.
        public var W: [Double]

        /// `U diag(f(invS)) Uᵀ` for any function of the thresholded inverse singular values.
        public func matrix(_ f: (Double) -> Double) -> [Double] {
            var m = [Double](repeating: 0, count: n * n)
            for j in 0 ..< n {
                let w = f(invS[j])
                if w == 0 { continue }
                for r in 0 ..< n { for c in 0 ..< n { m[r * n + c] += U[r * n + j] * w * U[c * n + j] } }
            }
            return m
        }
    }

    /// The operator for `X` (row-major `n×D`), or nil if anything is non-finite.
    public static func whiteningOperator(_ X: UnsafeBufferPointer<Float>, n: Int, D: Int) -> Operator? {
        precondition(X.count == n * D, "X must be n×D")
        var gram = [Double](repeating: 0, count: n * n)
        for i in 0 ..< n {
            for j in i ..< n {
                var s = 0.0
                let xi = X.baseAddress! + i * D, xj = X.baseAddress! + j * D
                for d in 0 ..< D { s += Double(xi[d]) * Double(xj[d]) }
                gram[i * n + j] = s; gram[j * n + i] = s
            }
        }
        guard let (values, U) = symmetricEigen(gram, n: n) else { return nil }
        let S = values.map { max($0, 0).squareRoot() }
        let cut = relativeTolerance * (S.max() ?? 0)
        let invS = S.map { $0 > cut ? 1 / ($0 + 1e-12) : 0 }
        var op = Operator(n: n, U: U, S: S, invS: invS, W: [])
        op.W = op.matrix { $0 }
        guard op.W.allSatisfy({ $0.isFinite }) else { return nil }
        return op
    }

    /// The result of whitening one (group, block).
    public struct Result: Sendable {
        /// Whitened rollout features, `[n × D]`.
        public var rollouts: [Float]
        /// Whitened ground truth per rollout row, `[n × D]` (row i pairs with rollout i).
        public var groundTruth: [Float]
        public var outcome: WhiteningOutcome
    }

    /// Whitens the rollout features `X` (`[n × D]`) and the ground-truth feature `g` (`[D]`).
    /// On a non-finite value, retries once on `X + 1e-6·mean|X|·N(0,1)` with noise from
    /// `CounterRNG.normal(seed: derive(jitterSeed, .whiteningJitter), jitterKey, i, d, 0)`; if
    /// that fails too, returns the features un-whitened. (With this exact Gram/Jacobi method a
    /// finite `X` practically always succeeds, so the retry is a safety net; a non-finite `X`
    /// stays non-finite after jitter and ends un-whitened.)
    public static func whiten(rollouts X: [Float], groundTruth g: [Float], n: Int, D: Int,
                              mode: GTWhitening = .code,
                              jitterSeed: UInt64 = 0, jitterKey: UInt64 = 0) -> Result {
        precondition(n > 0 && D > 0 && X.count == n * D && g.count == D, "whiten: X must be n×D and g must be D")
        if let r = attempt(X, g, n, D, mode) { return Result(rollouts: r.0, groundTruth: r.1, outcome: .whitened) }
        let meanAbs = X.reduce(0.0) { $0 + Double(abs($1)) } / Double(X.count)
        let amp = 1e-6 * meanAbs
        var jittered = X
        let noiseSeed = CounterRNG.derive(jitterSeed, .whiteningJitter)
        for i in 0 ..< n {
            for d in 0 ..< D {
                let z = CounterRNG.normal(seed: noiseSeed, jitterKey, UInt64(i), UInt64(d), 0)
                jittered[i * D + d] = Float(Double(X[i * D + d]) + amp * z)
            }
        }
        if let r = attempt(jittered, g, n, D, mode) {
            return Result(rollouts: r.0, groundTruth: r.1, outcome: .whitenedAfterJitter)
        }
        return unwhitened(rollouts: X, groundTruth: g, n: n, D: D)
    }

    /// The features as they are, in the same shape as a whitening result.
    public static func unwhitened(rollouts X: [Float], groundTruth g: [Float], n: Int, D: Int) -> Result {
        var G = [Float]()
        G.reserveCapacity(n * D)
        for _ in 0 ..< n { G.append(contentsOf: g) }
        return Result(rollouts: X, groundTruth: G, outcome: .unwhitened)
    }

    private static func attempt(_ X: [Float], _ g: [Float], _ n: Int, _ D: Int,
                                _ mode: GTWhitening) -> ([Float], [Float])? {
        guard X.allSatisfy({ $0.isFinite }), g.allSatisfy({ $0.isFinite }) else { return nil }
        guard let op = X.withUnsafeBufferPointer({ whiteningOperator($0, n: n, D: D) }) else { return nil }
        let W = op.W
        var Xt = [Float](repeating: 0, count: n * D)
        var acc = [Double](repeating: 0, count: D)
        for i in 0 ..< n {
            for d in 0 ..< D { acc[d] = 0 }
            for j in 0 ..< n {
                let w = W[i * n + j]
                if w == 0 { continue }
                for d in 0 ..< D { acc[d] += w * Double(X[j * D + d]) }
            }
            for d in 0 ..< D { Xt[i * D + d] = Float(acc[d]) }
        }
        var Gt = [Float](repeating: 0, count: n * D)
        switch mode {
        case .code:
            for i in 0 ..< n {
                var rowSum = 0.0
                for j in 0 ..< n { rowSum += W[i * n + j] }
                for d in 0 ..< D { Gt[i * D + d] = Float(rowSum * Double(g[d])) }
            }
        case .featureSpace:
            // g̃ = Xᵀ · (U S⁻³ Uᵀ) · (X g)
            var y = [Double](repeating: 0, count: n)
            for i in 0 ..< n { for d in 0 ..< D { y[i] += Double(X[i * D + d]) * Double(g[d]) } }
            let W3 = op.matrix { $0 * $0 * $0 }
            var z = [Double](repeating: 0, count: n)
            for i in 0 ..< n { for j in 0 ..< n { z[i] += W3[i * n + j] * y[j] } }
            for d in 0 ..< D { acc[d] = 0 }
            for i in 0 ..< n { for d in 0 ..< D { acc[d] += Double(X[i * D + d]) * z[i] } }
            for i in 0 ..< n { for d in 0 ..< D { Gt[i * D + d] = Float(acc[d]) } }
        }
        guard Xt.allSatisfy({ $0.isFinite }), Gt.allSatisfy({ $0.isFinite }) else { return nil }
        return (Xt, Gt)
    }
}
