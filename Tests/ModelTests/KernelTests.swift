import XCTest
@testable import Model

/// Each kernel against a naive reference (its specification) and its backward against
/// finite differences or the naive backward.
final class KernelTests: XCTestCase {

    func testFastExpMatchesFoundation() {
        var worst: Float = 0
        var x: Float = -80
        while x < 80 {
            let e = Kernels.exp1(x), r = Foundation.exp(x)
            worst = max(worst, abs(e - r) / r)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertEqual(Kernels.exp1(0), 1, accuracy: 1e-7)
        XCTAssertLessThan(Kernels.exp1(-1000), 1e-37)
    }

    func testEmbeddingForwardBackward() {
        var rng = TF.RNG(1)
        let V = 7, d = 5
        let table = rng.floats(V * d)
        let tokens: [Int32] = [3, 0, 3, 6]
        var out = [Float](repeating: 0, count: tokens.count * d)
        Kernels.embeddingForward(out: &out, tokens: tokens, count: 4, table: table, dim: d)
        for t in 0..<4 { for i in 0..<d { XCTAssertEqual(out[t * d + i], table[Int(tokens[t]) * d + i]) } }
        let dOut = rng.floats(tokens.count * d)
        var dTable = [Float](repeating: 1, count: V * d)
        Kernels.embeddingBackward(dTable: &dTable, dOut: dOut, tokens: tokens, count: 4, dim: d)
        for i in 0..<d {
            XCTAssertEqual(dTable[3 * d + i], 1 + dOut[0 * d + i] + dOut[2 * d + i], accuracy: 1e-6)
            XCTAssertEqual(dTable[0 * d + i], 1 + dOut[1 * d + i], accuracy: 1e-6)
            XCTAssertEqual(dTable[1 * d + i], 1)
        }
    }

    func naiveRMSNorm(_ x: [Float], _ w: [Float], T: Int, d: Int, eps: Float) -> [Double] {
        var out = [Double](repeating: 0, count: T * d)
        for t in 0..<T {
            var ms = 0.0
            for i in 0..<d { ms += Double(x[t * d + i]) * Double(x[t * d + i]) }
            let r = 1 / (ms / Double(d) + Double(eps)).squareRoot()
            for i in 0..<d { out[t * d + i] = Double(x[t * d + i]) * r * Double(w[i]) }
        }
        return out
    }

    func testRMSNormForwardBackward() {
        var rng = TF.RNG(2)
        let T = 3, d = 11, eps: Float = 1e-5
        let x = rng.floats(T * d), w = rng.floats(d).map { 1 + 0.3 * $0 }
        var out = [Float](repeating: 0, count: T * d), rstd = [Float](repeating: 0, count: T)
        Kernels.rmsnormForward(out: &out, rstd: &rstd, x: x, weight: w, count: T, dim: d, eps: eps)
        let ref = naiveRMSNorm(x, w, T: T, d: d, eps: eps)
        for i in 0..<T * d { XCTAssertEqual(Double(out[i]), ref[i], accuracy: 1e-5) }
        // backward vs central differences of L = Σ dy ∘ rmsnorm(x)
        let dy = rng.floats(T * d)
        var dx = [Float](repeating: 0, count: T * d), dw = [Float](repeating: 0, count: d)
        Kernels.rmsnormBackward(dx: &dx, dWeight: &dw, dOut: dy, x: x, weight: w, rstd: rstd, count: T, dim: d)
        func L(_ x: [Float], _ w: [Float]) -> Double {
            let y = naiveRMSNorm(x, w, T: T, d: d, eps: eps)
            return zip(y, dy).reduce(0) { $0 + $1.0 * Double($1.1) }
        }
        let h: Float = 1e-3
        for i in 0..<T * d {
            var xp = x, xm = x; xp[i] += h; xm[i] -= h
            let fd = (L(xp, w) - L(xm, w)) / Double(2 * h)
            XCTAssertEqual(Double(dx[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "dx[\(i)]")
        }
        for i in 0..<d {
            var wp = w, wm = w; wp[i] += h; wm[i] -= h
            let fd = (L(x, wp) - L(x, wm)) / Double(2 * h)
            XCTAssertEqual(Double(dw[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "dw[\(i)]")
        }
    }

    func testRoPEAdjacentPairsAndInverse() {
        var rng = TF.RNG(3)
        let S = 5, nh = 3, hd = 8, base: Float = 10000
        let positions: [Int32] = [0, 7, 2, 100, 3]
        let table = Kernels.RopeTable(positions: positions, headDim: hd, base: base)
        let x = rng.floats(S * nh * hd)
        var y = x
        Kernels.rope(&y, rows: S, heads: nh, headDim: hd, stride: nh * hd, table: table)
        for t in 0..<S {
            for h in 0..<nh {
                for i in 0..<hd / 2 {
                    let theta = Double(positions[t]) * Foundation.pow(Double(base), -2 * Double(i) / Double(hd))
                    let o = t * nh * hd + h * hd + 2 * i
                    let x0 = Double(x[o]), x1 = Double(x[o + 1])
                    XCTAssertEqual(Double(y[o]), x0 * Foundation.cos(theta) - x1 * Foundation.sin(theta), accuracy: 1e-5)
                    XCTAssertEqual(Double(y[o + 1]), x0 * Foundation.sin(theta) + x1 * Foundation.cos(theta), accuracy: 1e-5)
                }
            }
        }
        // position 0 is the identity
        for i in 0..<nh * hd { XCTAssertEqual(y[i], x[i], accuracy: 1e-7) }
        // backward = inverse rotation = transpose: <R x, g> == <x, Rᵀ g>
        let g = rng.floats(S * nh * hd)
        var gb = g
        Kernels.rope(&gb, rows: S, heads: nh, headDim: hd, stride: nh * hd, table: table, inverse: true)
        let lhs = zip(y, g).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        let rhs = zip(x, gb).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-4)
        var back = y
        Kernels.rope(&back, rows: S, heads: nh, headDim: hd, stride: nh * hd, table: table, inverse: true)
        XCTAssertLessThan(TF.maxAbsDiff(back, x), 1e-5)
    }

    func testSwiGLUForwardBackward() {
        var rng = TF.RNG(4)
        let n = 37
        let g = rng.floats(n, std: 2), u = rng.floats(n)
        var out = [Float](repeating: 0, count: n)
        Kernels.swigluForward(out: &out, gate: g, up: u, count: n)
        func silu(_ x: Double) -> Double { x / (1 + Foundation.exp(-x)) }
        for i in 0..<n { XCTAssertEqual(Double(out[i]), silu(Double(g[i])) * Double(u[i]), accuracy: 1e-5) }
        let dOut = rng.floats(n)
        var dg = [Float](repeating: 0, count: n), du = [Float](repeating: 0, count: n)
        Kernels.swigluBackward(dGate: &dg, dUp: &du, dOut: dOut, gate: g, up: u, count: n)
        let h = 1e-4
        for i in 0..<n {
            let gi = Double(g[i]), ui = Double(u[i]), d = Double(dOut[i])
            let fdg = d * ui * (silu(gi + h) - silu(gi - h)) / (2 * h)
            XCTAssertEqual(Double(dg[i]), fdg, accuracy: 1e-4 * max(1, abs(fdg)))
            XCTAssertEqual(Double(du[i]), d * silu(gi), accuracy: 1e-5)
        }
    }

    func testLinearForwardBackward() {
        var rng = TF.RNG(5)
        let T = 4, inD = 6, outD = 5
        let x = rng.floats(T * inD), w = rng.floats(outD * inD)
        var y = [Float](repeating: 0, count: T * outD)
        Kernels.linearForward(y: &y, x: x, weight: w, rows: T, inDim: inD, outDim: outD)
        for t in 0..<T { for o in 0..<outD {
            var s: Float = 0
            for i in 0..<inD { s += x[t * inD + i] * w[o * inD + i] }
            XCTAssertEqual(y[t * outD + o], s, accuracy: 1e-5)
        } }
        let dy = rng.floats(T * outD)
        var dx = [Float](repeating: 0, count: T * inD), dw = [Float](repeating: 0.5, count: outD * inD)
        Kernels.linearBackward(dx: &dx, dWeight: &dw, dy: dy, x: x, weight: w, rows: T, inDim: inD, outDim: outD)
        for t in 0..<T { for i in 0..<inD {
            var s: Float = 0
            for o in 0..<outD { s += dy[t * outD + o] * w[o * inD + i] }
            XCTAssertEqual(dx[t * inD + i], s, accuracy: 1e-5)
        } }
        for o in 0..<outD { for i in 0..<inD {
            var s: Float = 0.5
            for t in 0..<T { s += dy[t * outD + o] * x[t * inD + i] }
            XCTAssertEqual(dw[o * inD + i], s, accuracy: 1e-5)
        } }
    }
}
