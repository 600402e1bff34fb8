import XCTest
@testable import Model

/// Shared helpers for the Model tests (random data, layouts, naive references), namespaced to
/// keep clear of other test files in this target.
enum TF {
    struct RNG {
        var rng: InitRNG
        init(_ seed: UInt64) { rng = InitRNG(seed: seed) }
        mutating func normal() -> Float { rng.normal() }
        mutating func uniform() -> Double { rng.uniform() }
        mutating func int(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        mutating func floats(_ n: Int, std: Float = 1) -> [Float] { (0..<n).map { _ in std * rng.normal() } }
        mutating func tokens(_ n: Int, vocab: Int) -> [Int32] { (0..<n).map { _ in Int32(int(vocab)) } }
    }

    /// The EBFT strided layout (spec §4.2–4.4): chunk of P tokens (causal), then G steps × K blocks,
    /// block k anchored at a_k = c + k·s; (t,k) at P + t·K + k sees [0, a_k) plus its block's
    /// tokens (t' ≤ t), position a_k + t.
    static func stridedLayout(P: Int, c: Int, s: Int, G: Int) -> (layout: AttentionLayout, K: Int, anchors: [Int]) {
        let K = (P - c - G) / s + 1
        let anchors = (0..<K).map { c + $0 * s }
        var l = AttentionLayout.causal(length: P)
        for t in 0..<G {
            for k in 0..<K {
                let extras = (0...t).map { P + $0 * K + k }
                l.append(position: anchors[k] + t, prefixEnd: anchors[k], extras: extras)
            }
        }
        return (l, K, anchors)
    }

    /// A random irregular layout: random prefix ends, random ascending extras, random positions.
    static func randomLayout(count S: Int, rng: inout RNG) -> AttentionLayout {
        var l = AttentionLayout()
        for q in 0..<S {
            let pe = rng.int(q + 2)            // 0...q+1
            var extras: [Int] = []
            if pe <= q {
                for key in pe...q where rng.uniform() < 0.3 || (key == q && pe == 0) { extras.append(key) }
            }
            if pe == 0 && extras.isEmpty { extras = [q] }
            l.append(position: rng.int(3 * S), prefixEnd: pe, extras: extras)
        }
        return l
    }

    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        var m: Float = 0
        for i in a.indices { m = max(m, abs(a[i] - b[i])) }
        return m
    }

    static func maxAbs(_ a: [Float]) -> Float { a.reduce(0) { max($0, abs($1)) } }

    /// Naive dense attention (Double): the specification of `Attention.forward`/`backward`.
    /// q: [S, H·hd], k, v: [S, KV·hd]. Returns out [S, H·hd] and, given dOut, dq, dk, dv.
    static func naiveAttention(q: [Float], k: [Float], v: [Float], layout: AttentionLayout, H: Int, KV: Int, hd: Int,
                        dOut: [Float]? = nil) -> (out: [Float], dq: [Float], dk: [Float], dv: [Float]) {
        let S = layout.count, r = H / KV
        let scale = 1 / Double(hd).squareRoot()
        var out = [Float](repeating: 0, count: S * H * hd)
        var dq = [Float](repeating: 0, count: S * H * hd)
        var dk = [Float](repeating: 0, count: S * KV * hd)
        var dv = [Float](repeating: 0, count: S * KV * hd)
        for qi in 0..<S {
            let keys = layout.visibleKeys(of: qi)
            for h in 0..<H {
                let g = h / r
                let qo = qi * H * hd + h * hd
                var sc = keys.map { key -> Double in
                    var s = 0.0
                    for i in 0..<hd { s += Double(q[qo + i]) * Double(k[key * KV * hd + g * hd + i]) }
                    return s * scale
                }
                let mx = sc.max()!
                sc = sc.map { Foundation.exp($0 - mx) }
                let sum = sc.reduce(0, +)
                let p = sc.map { $0 / sum }
                for i in 0..<hd {
                    var o = 0.0
                    for (j, key) in keys.enumerated() { o += p[j] * Double(v[key * KV * hd + g * hd + i]) }
                    out[qo + i] = Float(o)
                }
                if let dOut {
                    let dp = keys.map { key -> Double in
                        var s = 0.0
                        for i in 0..<hd { s += Double(dOut[qo + i]) * Double(v[key * KV * hd + g * hd + i]) }
                        return s
                    }
                    var pdp = 0.0
                    for j in keys.indices { pdp += p[j] * dp[j] }
                    for (j, key) in keys.enumerated() {
                        let ds = p[j] * (dp[j] - pdp)
                        let ko = key * KV * hd + g * hd
                        for i in 0..<hd {
                            dq[qo + i] += Float(ds * scale * Double(k[ko + i]))
                            dk[ko + i] += Float(ds * scale * Double(q[qo + i]))
                            dv[ko + i] += Float(p[j] * Double(dOut[qo + i]))
                        }
                    }
                }
            }
        }
        return (out, dq, dk, dv)
    }
}
