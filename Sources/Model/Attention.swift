import Foundation

/// Grouped-query attention over per-query key ranges (`AttentionLayout`), computed in blocks of
/// consecutive queries with BLAS, never materialising an S×S mask or probability matrix.
///
/// Shapes for one sequence of S tokens: q: [S, heads·hd] (after RoPE), k, v: [S, kv·hd],
/// out: [S, heads·hd], lse: [heads, S] (per-(head, query) log-sum-exp of the scaled scores,
/// saved by the forward so the backward can recompute probabilities block by block).
///
/// For KV head g the query heads g·r ..< g·r+r (r = heads/kv) are stacked into one matrix of
/// rows (query t, head j) → row t·r + j, so one sgemm serves the whole group.
public enum Attention {
    /// Queries per block (at most).
    public static let blockQueries = 64
    /// Blocks are halved (down to `minBlockQueries`) while less than this fraction of the
    /// scored [block × max prefixEnd] rectangle is visible: keeps the waste on ramps of prefix
    /// ends (the strided layout's a_k = c + k·s, the start of causal attention) small.
    public static let minBlockUtilisation = 0.85
    public static let minBlockQueries = 16

    /// Consecutive query blocks [q0, q1) covering 0..<S.
    static func queryBlocks(_ L: LayoutPointers) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        var q0 = 0
        while q0 < L.count {
            var n = min(blockQueries, L.count - q0)
            while n > minBlockQueries {
                var kmax = 0, sum = 0
                for t in q0..<q0 + n { let pe = Int(L.prefixEnd[t]); kmax = max(kmax, pe); sum += pe }
                if Double(sum) >= minBlockUtilisation * Double(n * kmax) { break }
                n = max(minBlockQueries, n / 2)
            }
            out.append((q0, q0 + n))
            q0 += n
        }
        return out
    }

    /// Reusable scratch memory for `forward`/`backward` (grows on demand), one set per worker.
    public final class Scratch {
        var workers: [Worker] = []
        /// Most threads attention may use (it sets OpenBLAS to 1 thread meanwhile, since its
        /// sgemms are small). Default: `BLAS.threads` at the time of the call.
        public var maxThreads: Int? = nil
        public init() {}
        func worker(_ i: Int) -> Worker {
            while workers.count <= i { workers.append(Worker()) }
            return workers[i]
        }
    }

    final class Worker {
        let qs = Buffer(), os = Buffer(), ps = Buffer(), dps = Buffer(), ex = Buffer(), dd = Buffer()
        let dk = Buffer(), dv = Buffer()
    }

    /// One unit of work: KV head g, query block [q0, q1), keys [0, kmax) by sgemm.
    struct Task { var g: Int, q0: Int, q1: Int, kmax: Int }

    /// Tasks split over `workers` lists by longest-processing-time-first (deterministic).
    static func schedule(_ L: LayoutPointers, kvHeads KV: Int, scratch: Scratch) -> [[Task]] {
        var tasks: [Task] = []
        for (q0, q1) in queryBlocks(L) {
            var kmax = 0
            for t in q0..<q1 { kmax = max(kmax, Int(L.prefixEnd[t])) }
            for g in 0..<KV { tasks.append(Task(g: g, q0: q0, q1: q1, kmax: kmax)) }
        }
        let W = max(1, min(scratch.maxThreads ?? BLAS.threads, tasks.count))
        if W == 1 { return [tasks] }
        func cost(_ t: Task) -> Int { (t.q1 - t.q0) * (t.kmax + 16) }
        var lists = [[Task]](repeating: [], count: W)
        var load = [Int](repeating: 0, count: W)
        for t in tasks.sorted(by: { cost($0) > cost($1) }) {
            let w = load.indices.min { load[$0] < load[$1] }!
            lists[w].append(t)
            load[w] += cost(t)
        }
        return lists
    }

    /// Runs `body(worker index, tasks)` on each list, in parallel when there are several.
    static func run(_ lists: [[Task]], _ body: (Int, [Task]) -> Void) {
        if lists.count == 1 { body(0, lists[0]); return }
        let saved = BLAS.threads
        BLAS.threads = 1
        DispatchQueue.concurrentPerform(iterations: lists.count) { w in body(w, lists[w]) }
        BLAS.threads = saved
    }

    /// A growable aligned Float buffer.
    final class Buffer {
        private(set) var pointer: UnsafeMutablePointer<Float>
        private(set) var capacity: Int
        init() { capacity = 16; pointer = Buffer.alloc(16) }
        deinit { pointer.deallocate() }
        static func alloc(_ n: Int) -> UnsafeMutablePointer<Float> {
            UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n)
        }
        func shrink() {
            pointer.deallocate()
            capacity = 16
            pointer = Buffer.alloc(16)
        }
        @inline(__always) func get(_ n: Int) -> UnsafeMutablePointer<Float> {
            if n > capacity {
                pointer.deallocate()
                capacity = n
                pointer = Buffer.alloc(n)
            }
            return pointer
        }
    }

    /// Layout arrays as raw pointers (valid inside `withLayout`).
    struct LayoutPointers {
        var prefixEnd: UnsafePointer<Int32>
        var extraStart: UnsafePointer<Int32>
        var extraKeys: UnsafePointer<Int32>
        var count: Int
        var maxExtras: Int
    }

    static func withLayout<R>(_ layout: AttentionLayout, _ body: (LayoutPointers) -> R) -> R {
        var maxEx = 0
        for q in 0..<layout.count { maxEx = max(maxEx, Int(layout.extraStart[q + 1] - layout.extraStart[q])) }
        return layout.prefixEnd.withUnsafeBufferPointer { pe in
            layout.extraStart.withUnsafeBufferPointer { es in
                layout.extraKeys.withUnsafeBufferPointer { ek in
                    // extraKeys may be empty: give it a valid dummy address.
                    withUnsafeTemporaryAllocation(of: Int32.self, capacity: 1) { dummy in
                        body(LayoutPointers(prefixEnd: pe.baseAddress ?? UnsafePointer(dummy.baseAddress!),
                                            extraStart: es.baseAddress!,
                                            extraKeys: ek.baseAddress ?? UnsafePointer(dummy.baseAddress!),
                                            count: layout.count, maxExtras: maxEx))
                    }
                }
            }
        }
    }

    /// out = softmax(q·kᵀ/√hd restricted to each query's keys)·v; also writes lse.
    public static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               layout: AttentionLayout, heads H: Int, kvHeads KV: Int, headDim hd: Int,
                               scratch: Scratch) {
        withLayout(layout) { L in
            forward(out: out, lse: lse, q: q, k: k, v: v, L: L, heads: H, kvHeads: KV, headDim: hd, scratch: scratch)
        }
    }

    static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        L: LayoutPointers, heads H: Int, kvHeads KV: Int, headDim hd: Int,
                        scratch: Scratch) {
        let lists = schedule(L, kvHeads: KV, scratch: scratch)
        let workers = lists.indices.map { scratch.worker($0) }
        run(lists) { w, tasks in
            for task in tasks {
                forwardTask(task, out: out, lse: lse, q: q, k: k, v: v, L: L, heads: H, kvHeads: KV, headDim: hd,
                            ws: workers[w])
            }
        }
    }

    static func forwardTask(_ task: Task, out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                            q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                            L: LayoutPointers, heads H: Int, kvHeads KV: Int, headDim hd: Int, ws: Worker) {
        let S = L.count
        let r = H / KV
        let qStride = H * hd, kvStride = KV * hd
        let scale = 1 / Float(hd).squareRoot()
        let g = task.g, q0 = task.q0, q1 = task.q1, kmax = task.kmax
        let nq = q1 - q0, m = r * nq
        let maxEx = L.maxExtras
        let qs = ws.qs.get(m * hd)
        let os = ws.os.get(m * hd)
        let ex = ws.ex.get(max(1, m * maxEx))
        let ps = ws.ps.get(max(1, m * kmax))
        // Qs[(t·r + j), :] = scale · q[q0 + t, (g·r + j)·hd ..]
        for t in 0..<nq {
            Kernels.scaleCopy(scale, q + (q0 + t) * qStride + g * r * hd, qs + t * r * hd, r * hd)
        }
        let kg = k + g * hd, vg = v + g * hd
        if kmax > 0 {
            BLAS.sgemm(transB: true, m: m, n: kmax, k: hd, a: qs, lda: hd, b: kg, ldb: kvStride,
                       c: ps, ldc: kmax)
        }
        for t in 0..<nq {
            let qi = q0 + t
            let pe = Int(L.prefixEnd[qi])
            let e0 = Int(L.extraStart[qi]), ne = Int(L.extraStart[qi + 1]) - e0
            for j in 0..<r {
                let row = t * r + j
                let srow = ps + row * kmax
                let erow = ex + row * maxEx
                let qrow = qs + row * hd
                var mx = Kernels.maxOf(srow, pe)
                for e in 0..<ne {
                    let key = Int(L.extraKeys[e0 + e])
                    let sc = Kernels.dot(qrow, kg + key * kvStride, hd)
                    erow[e] = sc
                    mx = max(mx, sc)
                }
                var sum = Kernels.expShiftInPlace(srow, pe, shift: mx)
                if ne > 0 { sum += Kernels.expShiftInPlace(erow, ne, shift: mx) }
                let inv = 1 / sum
                for i in 0..<pe { srow[i] *= inv }
                if pe < kmax { (srow + pe).update(repeating: 0, count: kmax - pe) }
                for e in 0..<ne { erow[e] *= inv }
                lse[(g * r + j) * S + qi] = mx + Foundation.log(sum)
            }
        }
        if kmax > 0 {
            BLAS.sgemm(m: m, n: hd, k: kmax, a: ps, lda: kmax, b: vg, ldb: kvStride, c: os, ldc: hd)
        } else {
            os.update(repeating: 0, count: m * hd)
        }
        for t in 0..<nq {
            let qi = q0 + t
            let e0 = Int(L.extraStart[qi]), ne = Int(L.extraStart[qi + 1]) - e0
            if ne > 0 {
                for j in 0..<r {
                    let row = t * r + j
                    for e in 0..<ne {
                        let key = Int(L.extraKeys[e0 + e])
                        Kernels.axpy(ex[row * maxEx + e], vg + key * kvStride, os + row * hd, hd)
                    }
                }
            }
            (out + qi * qStride + g * r * hd).update(from: os + t * r * hd, count: r * hd)
        }
    }

    /// Gradients of `forward`: dq (overwritten) [S, heads·hd], dk, dv (overwritten) [S, kv·hd].
    public static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                                dv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                out: UnsafePointer<Float>, lse: UnsafePointer<Float>,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                layout: AttentionLayout, heads H: Int, kvHeads KV: Int, headDim hd: Int,
                                scratch: Scratch) {
        withLayout(layout) { L in
            backward(dq: dq, dk: dk, dv: dv, dOut: dOut, out: out, lse: lse, q: q, k: k, v: v, L: L,
                     heads: H, kvHeads: KV, headDim: hd, scratch: scratch)
        }
    }

    static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                         dv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                         out: UnsafePointer<Float>, lse: UnsafePointer<Float>,
                         q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         L: LayoutPointers, heads H: Int, kvHeads KV: Int, headDim hd: Int,
                         scratch: Scratch) {
        let S = L.count, n = S * KV * hd
        let lists = schedule(L, kvHeads: KV, scratch: scratch)
        let workers = lists.indices.map { scratch.worker($0) }
        // Each worker accumulates dK, dV into its own buffers (worker 0 straight into dk, dv);
        // they are summed afterwards in worker order, so results do not depend on timing.
        let dks = workers.indices.map { $0 == 0 ? dk : workers[$0].dk.get(n) }
        let dvs = workers.indices.map { $0 == 0 ? dv : workers[$0].dv.get(n) }
        run(lists) { w, tasks in
            dks[w].update(repeating: 0, count: n)
            dvs[w].update(repeating: 0, count: n)
            for task in tasks {
                backwardTask(task, dq: dq, dk: dks[w], dv: dvs[w], dOut: dOut, out: out, lse: lse, q: q, k: k, v: v,
                             L: L, heads: H, kvHeads: KV, headDim: hd, ws: workers[w])
            }
        }
        for w in workers.indices.dropFirst() {
            Kernels.add(dks[w], into: dk, n)
            Kernels.add(dvs[w], into: dv, n)
        }
    }

    static func backwardTask(_ task: Task, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                             dv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                             out: UnsafePointer<Float>, lse: UnsafePointer<Float>,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             L: LayoutPointers, heads H: Int, kvHeads KV: Int, headDim hd: Int, ws: Worker) {
        let S = L.count
        let r = H / KV
        let qStride = H * hd, kvStride = KV * hd
        let scale = 1 / Float(hd).squareRoot()
        let g = task.g, q0 = task.q0, q1 = task.q1, kmax = task.kmax
        let nq = q1 - q0, m = r * nq
        let maxEx = L.maxExtras
        let qs = ws.qs.get(m * hd)            // scaled queries
        let dos = ws.os.get(2 * m * hd)       // dO rows, then dQs rows
        let dqs = dos + m * hd
        let dd = ws.dd.get(m)                 // D = rowsum(dO ∘ O)
        let ex = ws.ex.get(max(1, m * maxEx))
        let ps = ws.ps.get(max(1, m * kmax))
        let dps = ws.dps.get(max(1, m * kmax))
        let kg = k + g * hd, vg = v + g * hd
        let dkg = dk + g * hd, dvg = dv + g * hd
        for t in 0..<nq {
            let qi = q0 + t
            Kernels.scaleCopy(scale, q + qi * qStride + g * r * hd, qs + t * r * hd, r * hd)
            (dos + t * r * hd).update(from: dOut + qi * qStride + g * r * hd, count: r * hd)
            for j in 0..<r {
                let off = qi * qStride + (g * r + j) * hd
                dd[t * r + j] = Kernels.dot(dOut + off, out + off, hd)
            }
        }
        if kmax > 0 {
            BLAS.sgemm(transB: true, m: m, n: kmax, k: hd, a: qs, lda: hd, b: kg, ldb: kvStride,
                       c: ps, ldc: kmax)
        }
        // P = exp(S − lse) on visible keys, 0 elsewhere; extras' P in ex.
        for t in 0..<nq {
            let qi = q0 + t
            let pe = Int(L.prefixEnd[qi])
            let e0 = Int(L.extraStart[qi]), ne = Int(L.extraStart[qi + 1]) - e0
            for j in 0..<r {
                let row = t * r + j
                let l = lse[(g * r + j) * S + qi]
                let srow = ps + row * kmax
                _ = Kernels.expShiftInPlace(srow, pe, shift: l)
                if pe < kmax { (srow + pe).update(repeating: 0, count: kmax - pe) }
                for e in 0..<ne {
                    let key = Int(L.extraKeys[e0 + e])
                    ex[row * maxEx + e] = Kernels.exp1(Kernels.dot(qs + row * hd, kg + key * kvStride, hd) - l)
                }
            }
        }
        if kmax > 0 {
            // dV[0:kmax] += Pᵀ·dO
            BLAS.sgemm(transA: true, m: kmax, n: hd, k: m, a: ps, lda: kmax, b: dos, ldb: hd,
                       beta: 1, c: dvg, ldc: kvStride)
            // dP = dO·Vᵀ
            BLAS.sgemm(transB: true, m: m, n: kmax, k: hd, a: dos, lda: hd, b: vg, ldb: kvStride,
                       c: dps, ldc: kmax)
            // dS = P ∘ (dP − D)
            for row in 0..<m {
                let p = ps + row * kmax, dp = dps + row * kmax
                let dr = dd[row]
                for i in 0..<kmax { dp[i] = p[i] * (dp[i] - dr) }
            }
            // dQs = dS·K
            BLAS.sgemm(m: m, n: hd, k: kmax, a: dps, lda: kmax, b: kg, ldb: kvStride, c: dqs, ldc: hd)
            // dK[0:kmax] += dSᵀ·Qs
            BLAS.sgemm(transA: true, m: kmax, n: hd, k: m, a: dps, lda: kmax, b: qs, ldb: hd,
                       beta: 1, c: dkg, ldc: kvStride)
        } else {
            dqs.update(repeating: 0, count: m * hd)
        }
        // Extra keys, explicitly.
        for t in 0..<nq {
            let qi = q0 + t
            let e0 = Int(L.extraStart[qi]), ne = Int(L.extraStart[qi + 1]) - e0
            for j in 0..<r where ne > 0 {
                let row = t * r + j
                for e in 0..<ne {
                    let key = Int(L.extraKeys[e0 + e])
                    let p = ex[row * maxEx + e]
                    let dp = Kernels.dot(dos + row * hd, vg + key * kvStride, hd)
                    let ds = p * (dp - dd[row])
                    Kernels.axpy(p, dos + row * hd, dvg + key * kvStride, hd)
                    Kernels.axpy(ds, qs + row * hd, dkg + key * kvStride, hd)
                    Kernels.axpy(ds, kg + key * kvStride, dqs + row * hd, hd)
                }
            }
            Kernels.scaleCopy(scale, dqs + t * r * hd, dq + qi * qStride + g * r * hd, r * hd)
        }
    }
}
