/// The byte-level BPE merge procedure of `BPETokenizer`: a pre-token's bytes become symbols
/// (a missing byte through `byte_fallback` or the unknown token), then merges apply lowest rank
/// first, leftmost among equals, until none applies — by repeated scans for short pieces, with a
/// min-heap over a linked list for long ones.

extension BPETokenizer {
    /// A byte without a token, appended to a word's `symbols`: its `<0xXX>` tokens
    /// (`byte_fallback`), else the unknown token (once for a run with `fuse_unk`), else nothing
    /// (the reference drops it).
    func appendMissingByte(_ byte: UInt8, into out: inout [Int32]) {
        if let fb = byteFallbackIDs {
            // The reference falls back on the UTF-8 bytes of the byte's vocabulary character.
            for b in String(Unicode.Scalar(ByteLevel.byteToScalar[Int(byte)])!).utf8 { out.append(fb[Int(b)]) }
        } else if let u = unknown {
            if !(fuseUnknown && out.last == u) { out.append(u) }
        }
    }

    @inline(__always)
    private func mergeValue(_ l: Int32, _ r: Int32) -> UInt64 {
        merges[UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))] ?? UInt64.max
    }

    /// Applies the merges to one piece's bytes and appends the resulting ids.
    /// Pieces of more than `heapAbove` symbols take the heap path.
    func mergePiece(_ piece: UnsafeBufferPointer<UInt8>, into out: inout [Int32], ws: inout Workspace,
                    heapAbove: Int = 96) {
        // Initial symbols: one per byte (bytes without a token are left out).
        ws.symbols.removeAll(keepingCapacity: true)
        for b in piece {
            let id = byteIDs[Int(b)]
            if id >= 0 { ws.symbols.append(id) } else { appendMissingByte(b, into: &ws.symbols) }
        }
        var n = ws.symbols.count
        if n <= 1 {
            out += ws.symbols
            return
        }
        if n > heapAbove {
            mergeSymbolsHeap(into: &out, ws: &ws)
            return
        }
        // Short pieces: keep the symbols and the merge value (rank << 32 | result) of each
        // adjacent pair; repeatedly merge the leftmost pair of lowest rank.
        ws.pairs.removeAll(keepingCapacity: true)
        for k in 0..<(n - 1) { ws.pairs.append(mergeValue(ws.symbols[k], ws.symbols[k + 1])) }
        while n > 1 {
            var best = UInt64.max, at = -1
            for k in 0..<(n - 1) where ws.pairs[k] < best { best = ws.pairs[k]; at = k }
            if at < 0 { break }
            ws.symbols[at] = Int32(truncatingIfNeeded: best & 0xFFFF_FFFF)
            ws.symbols.remove(at: at + 1)
            ws.pairs.remove(at: at)
            n -= 1
            if at > 0 { ws.pairs[at - 1] = mergeValue(ws.symbols[at - 1], ws.symbols[at]) }
            if at < n - 1 { ws.pairs[at] = mergeValue(ws.symbols[at], ws.symbols[at + 1]) }
        }
        out += ws.symbols
    }

    /// Long pieces: symbols in a linked list, candidate pairs in a min-heap keyed by
    /// (rank, position), stale entries skipped when popped. Same result as the short path
    /// (lowest rank first, leftmost among equals) in O(n log n).
    func mergeSymbolsHeap(into out: inout [Int32], ws: inout Workspace) {
        let n = ws.symbols.count
        guard n > 1 else {
            out += ws.symbols
            return
        }
        ws.prev.removeAll(keepingCapacity: true)
        ws.next.removeAll(keepingCapacity: true)
        ws.heap.removeAll(keepingCapacity: true)
        for k in 0..<n {
            ws.prev.append(Int32(k - 1))
            ws.next.append(Int32(k + 1 < n ? k + 1 : -1))
        }
        func push(_ v: UInt64, _ heap: inout [UInt64]) {
            heap.append(v)
            var c = heap.count - 1
            while c > 0 {
                let p = (c - 1) / 2
                if heap[p] <= heap[c] { break }
                heap.swapAt(p, c)
                c = p
            }
        }
        func pop(_ heap: inout [UInt64]) -> UInt64 {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var c = 0
                while true {
                    let l = 2 * c + 1, r = l + 1
                    var m = c
                    if l < heap.count && heap[l] < heap[m] { m = l }
                    if r < heap.count && heap[r] < heap[m] { m = r }
                    if m == c { break }
                    heap.swapAt(m, c)
                    c = m
                }
            }
            return top
        }
        // Heap entries: rank << 32 | position of the pair's left symbol (ranks < 2^31).
        for k in 0..<(n - 1) {
            let v = mergeValue(ws.symbols[k], ws.symbols[k + 1])
            if v != UInt64.max { push((v >> 32) << 32 | UInt64(k), &ws.heap) }
        }
        let dead = Int32.min
        while !ws.heap.isEmpty {
            let e = pop(&ws.heap)
            let rank = e >> 32, p = Int(e & 0xFFFF_FFFF)
            if ws.symbols[p] == dead { continue }
            let q = Int(ws.next[p])
            if q < 0 { continue }
            let v = mergeValue(ws.symbols[p], ws.symbols[q])
            if v == UInt64.max || v >> 32 != rank { continue }  // stale: the pair changed
            ws.symbols[p] = Int32(truncatingIfNeeded: v & 0xFFFF_FFFF)
            ws.symbols[q] = dead
            let r = ws.next[q]
            ws.next[p] = r
            if r >= 0 { ws.prev[Int(r)] = Int32(p) }
            let before = ws.prev[p]
            if before >= 0 {
                let w = mergeValue(ws.symbols[Int(before)], ws.symbols[p])
                if w != UInt64.max { push((w >> 32) << 32 | UInt64(before), &ws.heap) }
            }
            if r >= 0 {
                let w = mergeValue(ws.symbols[p], ws.symbols[Int(r)])
                if w != UInt64.max { push((w >> 32) << 32 | UInt64(p), &ws.heap) }
            }
        }
        var k = 0
        while k >= 0 {
            out.append(ws.symbols[k])
            k = Int(ws.next[k])
        }
    }

    /// Test hook: whether `byte` has a token.
    func hasByteToken(_ byte: UInt8) -> Bool { byteIDs[Int(byte)] >= 0 }

    /// Test hook: the merge result for raw bytes through the short (quadratic) or the heap path.
    func mergeForTesting(_ bytes: [UInt8], heap: Bool) -> [Int32] {
        var ws = Workspace()
        var out: [Int32] = []
        if heap {
            ws.symbols = bytes.map { byteIDs[Int($0)] }.filter { $0 >= 0 }
            mergeSymbolsHeap(into: &out, ws: &ws)
        } else {
            bytes.withUnsafeBufferPointer { mergePiece($0, into: &out, ws: &ws, heapAbove: Int.max) }
        }
        return out
    }
}
