import Foundation

/// Per-layer keys (after RoPE) and values of a prefix that was run causally with positions
/// 0..<length: k, v: [layers, length, kv·hd]. Optionally the logits of some of its rows
/// (`logits`: [logitRows.count × vocab]), e.g. the rows that predict each block's first token.
public final class PrefixKV {
    public let length: Int
    public let layers: Int
    public let kvDim: Int
    public let logitRows: [Int]
    public let logits: [Float]
    let k: UnsafeMutablePointer<Float>
    let v: UnsafeMutablePointer<Float>

    init(length: Int, layers: Int, kvDim: Int, logitRows: [Int], logits: [Float],
         k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
        self.length = length
        self.layers = layers
        self.kvDim = kvDim
        self.logitRows = logitRows
        self.logits = logits
        self.k = k
        self.v = v
    }

    deinit {
        k.deallocate()
        v.deallocate()
    }

    /// K of layer l: [length, kvDim].
    func keys(_ l: Int) -> UnsafeMutablePointer<Float> { k + l * length * kvDim }
    func values(_ l: Int) -> UnsafeMutablePointer<Float> { v + l * length * kvDim }
}

/// One decoding stream: it attends to keys [0, prefixLength) of prefix segment `prefix`, to its
/// own earlier decoded tokens and to itself; its decoded token i has rotary position
/// `firstPosition + i`.
public struct DecodeStream: Equatable, Sendable {
    public var prefix: Int
    public var prefixLength: Int
    public var firstPosition: Int

    public init(prefix: Int = 0, prefixLength: Int, firstPosition: Int) {
        self.prefix = prefix
        self.prefixLength = prefixLength
        self.firstPosition = firstPosition
    }
}

extension Transformer {
    /// Runs `tokens` causally (positions 0..<n) and keeps every layer's K (after RoPE) and V.
    /// `logitRows` (indices into tokens) get their logits computed too.
    public func prefill(tokens: [Int32], logitRows: [Int] = []) -> PrefixKV {
        let c = config, n = tokens.count, kvd = c.kvDim
        let alloc = { (count: Int) -> UnsafeMutablePointer<Float> in
            UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: max(1, count))
        }
        let k = alloc(c.layers * n * kvd), v = alloc(c.layers * n * kvd)
        guard n > 0 else {
            precondition(logitRows.isEmpty, "logit rows requested from an empty prefix")
            return PrefixKV(length: 0, layers: c.layers, kvDim: kvd, logitRows: [], logits: [], k: k, v: v)
        }
        let pass = makePass(tokens: tokens, layout: .causal(length: n))
        let x = runBlocks(tokens: tokens, pass: pass, depth: c.layers, training: false) { l, _ in
            let a = self.ws.act(0).ptrs(T: n, c: c)
            (k + l * n * kvd).update(from: a.k, count: n * kvd)
            (v + l * n * kvd).update(from: a.v, count: n * kvd)
        }
        var logits: [Float] = []
        if !logitRows.isEmpty {
            let hN = finalNorm(x, T: n)
            logits = projectRows(hN: hN, rows: logitRows, T: n)
        }
        return PrefixKV(length: n, layers: c.layers, kvDim: kvd, logitRows: logitRows, logits: logits, k: k, v: v)
    }

    /// logits [rows.count × V] of the given rows of hN [T, d].
    func projectRows(hN: UnsafePointer<Float>, rows: [Int], T: Int) -> [Float] {
        let d = config.dim, V = config.vocabSize
        var out = [Float](repeating: 0, count: rows.count * V)
        let hc = ws.hc.get(max(1, rows.count * d))
        for (i, r) in rows.enumerated() {
            precondition(r >= 0 && r < T, "row \(r) outside 0..<\(T)")
            (hc + i * d).update(from: hN + r * d, count: d)
        }
        out.withUnsafeMutableBufferPointer { ob in
            BLAS.sgemm(transB: true, m: rows.count, n: V, k: d, a: hc, lda: d, b: P + lay.head, ldb: d,
                       c: ob.baseAddress!, ldc: V)
        }
        return out
    }

    /// Plain generation: feeds the prompt, then `maxNewTokens` times picks a token from the
    /// logits of the last token ([vocab]) with `pick` and appends it. Returns the new tokens.
    public func generate(prompt: [Int32], maxNewTokens: Int, pick: ([Float]) -> Int32) -> [Int32] {
        precondition(!prompt.isEmpty, "generate needs a non-empty prompt")
        guard maxNewTokens > 0 else { return [] }
        let n = prompt.count
        let prefix = prefill(tokens: Array(prompt.dropLast()))
        let batch = DecodeBatch(model: self, prefixes: [prefix],
                                streams: [DecodeStream(prefix: 0, prefixLength: n - 1, firstPosition: n - 1)],
                                maxNewTokens: maxNewTokens)
        var out: [Int32] = []
        var next = prompt[n - 1]
        for _ in 0..<maxNewTokens {
            next = pick(batch.step(tokens: [next]))
            out.append(next)
        }
        return out
    }
}

/// B streams decoding together over shared, prefilled prefixes (spec §4: the strided
/// sampler's K blocks of a chunk share that chunk's prefix with different cutoffs). Each
/// `step` feeds one token per stream and returns the next-token logits [B × vocab].
///
/// All linear layers run as one sgemm over the B stacked rows; attention to a prefix segment is
/// one sgemm per (segment, KV head) over the stacked queries of the streams using it, with
/// per-stream cutoffs; each stream's own decoded keys are added by explicit dot products.
public final class DecodeBatch {
    public let model: Transformer
    public let prefixes: [PrefixKV]
    public let streams: [DecodeStream]
    public let maxNewTokens: Int
    public private(set) var stepCount = 0
    /// Final-normed hidden states [B × d] of the tokens fed in the last step.
    public private(set) var hidden: [Float] = []

    let B: Int
    let groups: [(segment: Int, members: [Int])]
    let ownK: UnsafeMutablePointer<Float>   // [layers, B, maxNew, kvDim]
    let ownV: UnsafeMutablePointer<Float>
    let buf: [Attention.Buffer]

    public init(model: Transformer, prefixes: [PrefixKV], streams: [DecodeStream], maxNewTokens: Int) {
        let c = model.config
        precondition(!streams.isEmpty && maxNewTokens > 0)
        for s in streams {
            precondition(s.prefix >= 0 && s.prefix < prefixes.count, "stream refers to missing prefix \(s.prefix)")
            precondition(s.prefixLength >= 0 && s.prefixLength <= prefixes[s.prefix].length,
                         "prefixLength \(s.prefixLength) beyond prefix of length \(prefixes[s.prefix].length)")
        }
        for p in prefixes { precondition(p.layers == c.layers && p.kvDim == c.kvDim, "prefix from another model shape") }
        self.model = model
        self.prefixes = prefixes
        self.streams = streams
        self.maxNewTokens = maxNewTokens
        B = streams.count
        var gs: [(Int, [Int])] = []
        for seg in 0..<prefixes.count {
            let m = streams.indices.filter { streams[$0].prefix == seg }
            if !m.isEmpty { gs.append((seg, m)) }
        }
        groups = gs
        let n = max(1, c.layers * B * maxNewTokens * c.kvDim)
        ownK = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n)
        ownV = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n)
        buf = (0..<19).map { _ in Attention.Buffer() }
    }

    public convenience init(model: Transformer, prefix: PrefixKV, streams: [DecodeStream], maxNewTokens: Int) {
        self.init(model: model, prefixes: [prefix], streams: streams, maxNewTokens: maxNewTokens)
    }

    deinit {
        ownK.deallocate()
        ownV.deallocate()
    }

    /// Feeds one token per stream; returns logits [B × vocab] predicting each stream's next token.
    public func step(tokens: [Int32]) -> [Float] {
        let hN = advance(tokens: tokens)
        let c = model.config, V = c.vocabSize, d = c.dim
        var logits = [Float](repeating: 0, count: B * V)
        logits.withUnsafeMutableBufferPointer { lb in
            BLAS.sgemm(transB: true, m: B, n: V, k: d, a: hN, lda: d, b: model.P + model.lay.head, ldb: d,
                       c: lb.baseAddress!, ldc: V)
        }
        return logits
    }

    /// Feeds one token per stream without the vocabulary projection; returns the final-normed
    /// hidden states [B × d] (also in `hidden`).
    @discardableResult
    public func stepHidden(tokens: [Int32]) -> [Float] {
        _ = advance(tokens: tokens)
        return hidden
    }

    func advance(tokens: [Int32]) -> UnsafeMutablePointer<Float> {
        precondition(tokens.count == B, "step needs one token per stream (\(B)), got \(tokens.count)")
        precondition(stepCount < maxNewTokens, "DecodeBatch is full (maxNewTokens = \(maxNewTokens))")
        let c = model.config, d = c.dim, F = c.ffnDim, H = c.heads, KV = c.kvHeads, hd = c.headDim
        let qD = c.qDim, kvD = c.kvDim, r = c.groupSize
        let P = model.P, lay = model.lay
        let t = stepCount
        for tok in tokens { precondition(tok >= 0 && Int(tok) < c.vocabSize, "token \(tok) outside vocabulary") }
        let x = buf[0].get(B * d), xn = buf[1].get(B * d), q = buf[2].get(B * qD)
        let k = buf[3].get(B * kvD), v = buf[4].get(B * kvD), att = buf[5].get(B * qD)
        let gate = buf[6].get(B * F), up = buf[7].get(B * F), h = buf[8].get(B * F)
        let rstd = buf[9].get(B), hN = buf[10].get(B * d)
        let qs = buf[11].get(r * B * hd), os = buf[12].get(r * B * hd)
        let own = buf[13].get(r * B * (t + 1))
        let nq = c.qkNorm ? 1 : 0
        let qRaw = buf[15].get(nq * B * qD), kRaw = buf[16].get(nq * B * kvD)
        let qRstd = buf[17].get(nq * B * H), kRstd = buf[18].get(nq * B * KV)
        var maxPrefix = 0
        for s in streams { maxPrefix = max(maxPrefix, s.prefixLength) }
        let ps = buf[14].get(max(1, r * B * maxPrefix))
        tokens.withUnsafeBufferPointer { tb in
            Kernels.embeddingForward(out: x, tokens: tb.baseAddress!, count: B, table: P + lay.embedding, dim: d)
        }
        let positions = streams.map { Int32($0.firstPosition + t) }
        let rope = Kernels.RopeTable(positions: positions, inverseFrequencies: model.ropeInverseFrequencies)
        let scale = 1 / Float(hd).squareRoot()
        for l in 0..<c.layers {
            let o = lay.layers[l]
            Kernels.rmsnormForward(out: xn, rstd: rstd, x: x, weight: P + o.attnNorm, count: B, dim: d, eps: c.normEps)
            model.projectQKV(o, xn: xn, rows: B, q: q, k: k, v: v, qRaw: qRaw, kRaw: kRaw, qRstd: qRstd, kRstd: kRstd)
            Kernels.rope(q, rows: B, heads: H, headDim: hd, stride: qD, table: rope)
            Kernels.rope(k, rows: B, heads: KV, headDim: hd, stride: kvD, table: rope)
            // Own cache: [l, b, t, :]
            let okL = ownK + l * B * maxNewTokens * kvD, ovL = ownV + l * B * maxNewTokens * kvD
            for b in 0..<B {
                (okL + (b * maxNewTokens + t) * kvD).update(from: k + b * kvD, count: kvD)
                (ovL + (b * maxNewTokens + t) * kvD).update(from: v + b * kvD, count: kvD)
            }
            for (seg, members) in groups {
                let pre = prefixes[seg]
                let nb = members.count, m = r * nb
                var kmax = 0
                for b in members { kmax = max(kmax, streams[b].prefixLength) }
                let pk = pre.keys(l), pv = pre.values(l)
                for g in 0..<KV {
                    for (i, b) in members.enumerated() {
                        Kernels.scaleCopy(scale, q + b * qD + g * r * hd, qs + i * r * hd, r * hd)
                    }
                    if kmax > 0 {
                        BLAS.sgemm(transB: true, m: m, n: kmax, k: hd, a: qs, lda: hd, b: pk + g * hd, ldb: kvD,
                                   c: ps, ldc: kmax)
                    }
                    for (i, b) in members.enumerated() {
                        let pl = streams[b].prefixLength
                        for j in 0..<r {
                            let row = i * r + j
                            let srow = ps + row * kmax, orow = own + row * (t + 1)
                            let qrow = qs + row * hd
                            var mx = Kernels.maxOf(srow, pl)
                            for tt in 0...t {
                                let sc = Kernels.dot(qrow, okL + (b * maxNewTokens + tt) * kvD + g * hd, hd)
                                orow[tt] = sc
                                mx = max(mx, sc)
                            }
                            let sum = Kernels.expShiftInPlace(srow, pl, shift: mx)
                                + Kernels.expShiftInPlace(orow, t + 1, shift: mx)
                            let inv = 1 / sum
                            for i2 in 0..<pl { srow[i2] *= inv }
                            if pl < kmax { (srow + pl).update(repeating: 0, count: kmax - pl) }
                            for tt in 0...t { orow[tt] *= inv }
                        }
                    }
                    if kmax > 0 {
                        BLAS.sgemm(m: m, n: hd, k: kmax, a: ps, lda: kmax, b: pv + g * hd, ldb: kvD, c: os, ldc: hd)
                    } else {
                        os.update(repeating: 0, count: m * hd)
                    }
                    for (i, b) in members.enumerated() {
                        for j in 0..<r {
                            let row = i * r + j
                            for tt in 0...t {
                                Kernels.axpy(own[row * (t + 1) + tt], ovL + (b * maxNewTokens + tt) * kvD + g * hd,
                                             os + row * hd, hd)
                            }
                        }
                        (att + b * qD + g * r * hd).update(from: os + i * r * hd, count: r * hd)
                    }
                }
            }
            model.linear(y: x, x: att, w: o.o, rows: B, inDim: qD, outDim: d, accumulate: true)
            if let b = o.oBias { Kernels.addBias(x, P + b, rows: B, dim: d) }
            Kernels.rmsnormForward(out: xn, rstd: rstd, x: x, weight: P + o.ffnNorm, count: B, dim: d, eps: c.normEps)
            model.ffnForward(o, xn: xn, rows: B, gate: gate, up: up, h: h)
            model.linear(y: x, x: h, w: o.down, rows: B, inDim: F, outDim: d, accumulate: true)
            if let b = o.downBias { Kernels.addBias(x, P + b, rows: B, dim: d) }
        }
        Kernels.rmsnormForward(out: hN, rstd: rstd, x: x, weight: P + lay.outputNorm, count: B, dim: d, eps: c.normEps)
        hidden = Array(UnsafeBufferPointer(start: hN, count: B * d))
        stepCount += 1
        return hN
    }
}
