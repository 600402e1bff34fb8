import XCTest
@testable import Model

/// Blockwise key-range attention against the naive dense reference.
final class KernelAttentionTests: XCTestCase {

    func check(layout: AttentionLayout, H: Int, KV: Int, hd: Int, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) {
        for threads in [1, 3] {
            check(layout: layout, H: H, KV: KV, hd: hd, seed: seed, threads: threads, file: file, line: line)
        }
    }

    func check(layout: AttentionLayout, H: Int, KV: Int, hd: Int, seed: UInt64, threads: Int,
               file: StaticString, line: UInt) {
        var rng = TF.RNG(seed)
        let S = layout.count
        let q = rng.floats(S * H * hd), k = rng.floats(S * KV * hd), v = rng.floats(S * KV * hd)
        let dOut = rng.floats(S * H * hd)
        let ref = TF.naiveAttention(q: q, k: k, v: v, layout: layout, H: H, KV: KV, hd: hd, dOut: dOut)
        let scratch = Attention.Scratch()
        scratch.maxThreads = threads
        var out = [Float](repeating: 0, count: S * H * hd), lse = [Float](repeating: 0, count: S * H)
        Attention.forward(out: &out, lse: &lse, q: q, k: k, v: v, layout: layout, heads: H, kvHeads: KV,
                          headDim: hd, scratch: scratch)
        XCTAssertLessThan(TF.maxAbsDiff(out, ref.out), 1e-4, "forward", file: file, line: line)
        var dq = [Float](repeating: 9, count: S * H * hd)
        var dk = [Float](repeating: 9, count: S * KV * hd), dv = [Float](repeating: 9, count: S * KV * hd)
        Attention.backward(dq: &dq, dk: &dk, dv: &dv, dOut: dOut, out: out, lse: lse, q: q, k: k, v: v,
                           layout: layout, heads: H, kvHeads: KV, headDim: hd, scratch: scratch)
        XCTAssertLessThan(TF.maxAbsDiff(dq, ref.dq), 2e-4 * max(1, TF.maxAbs(ref.dq)), "dq", file: file, line: line)
        XCTAssertLessThan(TF.maxAbsDiff(dk, ref.dk), 2e-4 * max(1, TF.maxAbs(ref.dk)), "dk", file: file, line: line)
        XCTAssertLessThan(TF.maxAbsDiff(dv, ref.dv), 2e-4 * max(1, TF.maxAbs(ref.dv)), "dv", file: file, line: line)
    }

    func testCausalMatchesDense() {
        // 150 queries: three blocks, the last one partial.
        check(layout: .causal(length: 150), H: 4, KV: 2, hd: 8, seed: 11)
    }

    func testRandomIrregularLayoutMatchesDense() {
        var rng = TF.RNG(12)
        for (i, S) in [1, 9, 70, 133].enumerated() {
            let layout = TF.randomLayout(count: S, rng: &rng)
            check(layout: layout, H: 6, KV: 2, hd: 4, seed: 100 + UInt64(i))
        }
    }

    func testStridedLayoutMatchesDense() {
        let (layout, _, _) = TF.stridedLayout(P: 40, c: 4, s: 4, G: 4)   // K = 9, S = 76
        check(layout: layout, H: 3, KV: 1, hd: 16, seed: 13)
    }

    func testQueryWithOnlyExtraKeys() {
        var l = AttentionLayout()
        l.append(position: 0, prefixEnd: 0, extras: [0])
        l.append(position: 5, prefixEnd: 0, extras: [1])
        l.append(position: 1, prefixEnd: 1, extras: [2])
        check(layout: l, H: 2, KV: 2, hd: 4, seed: 14)
    }
}

extension KernelAttentionTests {
    /// Worker threads split (KV head, query block) tasks; results must not depend on the split.
    func testThreadedEqualsSerial() {
        var rng = TF.RNG(21)
        let (layout, _, _) = TF.stridedLayout(P: 100, c: 4, s: 4, G: 4)
        let S = layout.count, H = 6, KV = 3, hd = 8
        let q = rng.floats(S * H * hd), k = rng.floats(S * KV * hd), v = rng.floats(S * KV * hd)
        let dOut = rng.floats(S * H * hd)
        var results: [[Float]] = []
        for threads in [1, 2, 4] {
            let scratch = Attention.Scratch()
            scratch.maxThreads = threads
            var out = [Float](repeating: 0, count: S * H * hd), lse = [Float](repeating: 0, count: S * H)
            Attention.forward(out: &out, lse: &lse, q: q, k: k, v: v, layout: layout, heads: H, kvHeads: KV,
                              headDim: hd, scratch: scratch)
            var dq = [Float](repeating: 0, count: S * H * hd)
            var dk = [Float](repeating: 0, count: S * KV * hd), dv = [Float](repeating: 0, count: S * KV * hd)
            Attention.backward(dq: &dq, dk: &dk, dv: &dv, dOut: dOut, out: out, lse: lse, q: q, k: k, v: v,
                               layout: layout, heads: H, kvHeads: KV, headDim: hd, scratch: scratch)
            results.append(out + lse + dq + dk + dv)
        }
        XCTAssertLessThan(TF.maxAbsDiff(results[0], results[1]), 1e-5)
        XCTAssertLessThan(TF.maxAbsDiff(results[0], results[2]), 1e-5)
    }
}
