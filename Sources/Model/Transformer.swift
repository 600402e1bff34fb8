import Foundation

/// One log-probability the loss needs: the final hidden state of row `row` (index into the
/// flattened [B×S] batch) predicts `target`, with logits scaled by `invTemperature`; the loss
/// term is `weight · (−logp)`.
public struct Prediction: Equatable, Sendable {
    public var row: Int32
    public var target: Int32
    public var invTemperature: Float
    public var weight: Float

    public init(row: Int, target: Int32, invTemperature: Float = 1, weight: Float = 1) {
        self.row = Int32(row)
        self.target = target
        self.invTemperature = invTemperature
        self.weight = weight
    }
}

/// Result of `Transformer.lossAndGradient`: `loss = Σ_j weight_j·(−logProbs[j])`.
public struct LossResult: Sendable {
    public var loss: Double
    public var logProbs: [Float]
}

/// The Llama-family decoder: token embedding → L × [RMSNorm → GQA attention (RoPE on adjacent
/// pairs) → residual → RMSNorm → SwiGLU FFN → residual] → RMSNorm → (tied) output head, with
/// the family options of `ModelConfig`: q/k/v, output and MLP biases, per-head q/k RMSNorm
/// before RoPE (Qwen3), scaled rotary frequencies (Llama 3, linear).
///
/// Holds a reference to its `ParameterStore` (several transformers may share one) and a
/// reusable workspace; an instance is not thread-safe.
public final class Transformer {
    public let config: ModelConfig
    public let parameters: ParameterStore
    /// Activation checkpointing: keep only each block's input and recompute the block in the
    /// backward (≈ +1 forward of compute, activation memory d floats per token per layer).
    /// Called during `lossAndGradient` right after block `l`'s parameter gradients are final
    /// (blocks L−1 … 0 in that order), e.g. to start reducing them while the backward goes on.
    public var layerGradientsReady: ((Int) -> Void)?
    public var recomputeActivations: Bool = false
    /// Predictions (rows) per vocabulary-projection chunk: the logits buffer is
    /// [logitChunkRows × vocab] (50 MB for SmolLM2 at 256). 256 rather than 128 because the head
    /// gradient dE += dzᵀ·h (k = chunk rows) runs ~20% faster per FLOP at k = 256 with OpenBLAS.
    public var logitChunkRows: Int = 256
    /// LoRA adapters applied around the adapted projections (`LoRA.swift`); nil = the base model.
    public var lora: LoRAWeights? {
        didSet { if let lora { precondition(lora.modelConfig == config, "LoRA adapters of another model shape") } }
    }
    let loraScratch = LoRAScratch()

    let ws = Workspace()
    public let attentionScratch = Attention.Scratch()
    /// `config.ropeInverseFrequencies` (rope scaling applied), computed once.
    let ropeInverseFrequencies: [Double]

    public init(parameters: ParameterStore) {
        self.config = parameters.config
        self.parameters = parameters
        self.ropeInverseFrequencies = parameters.config.ropeInverseFrequencies
    }

    /// A model with fresh, zero parameters for `config`.
    public convenience init(config: ModelConfig) {
        self.init(parameters: ParameterStore(config: config))
    }

    /// Frees the activation workspace (it is re-grown by the next pass).
    public func releaseWorkspace() {
        ws.release()
    }

    var P: UnsafeMutablePointer<Float> { parameters.pointer }
    var lay: ParameterLayout { parameters.layout }

    // MARK: - Workspace

    /// Activations of one block kept for its backward.
    final class LayerActs {
        let rstd1 = Attention.Buffer(), q = Attention.Buffer(), k = Attention.Buffer(), v = Attention.Buffer()
        let att = Attention.Buffer(), lse = Attention.Buffer(), xmid = Attention.Buffer()
        let rstd2 = Attention.Buffer(), gate = Attention.Buffer(), up = Attention.Buffer()
        // q/k before their per-head norm and its rstd (only with `qkNorm`).
        let qRaw = Attention.Buffer(), kRaw = Attention.Buffer(), qRstd = Attention.Buffer(), kRstd = Attention.Buffer()

        struct Ptrs {
            var rstd1, q, k, v, att, lse, xmid, rstd2, gate, up: UnsafeMutablePointer<Float>
            var qRaw, kRaw, qRstd, kRstd: UnsafeMutablePointer<Float>
        }

        func ptrs(T: Int, c: ModelConfig) -> Ptrs {
            let n = c.qkNorm ? 1 : 0
            return Ptrs(rstd1: rstd1.get(T), q: q.get(T * c.qDim), k: k.get(T * c.kvDim), v: v.get(T * c.kvDim),
                        att: att.get(T * c.qDim), lse: lse.get(T * c.heads), xmid: xmid.get(T * c.dim),
                        rstd2: rstd2.get(T), gate: gate.get(T * c.ffnDim), up: up.get(T * c.ffnDim),
                        qRaw: qRaw.get(n * T * c.qDim), kRaw: kRaw.get(n * T * c.kvDim),
                        qRstd: qRstd.get(n * T * c.heads), kRstd: kRstd.get(n * T * c.kvHeads))
        }
    }

    final class Workspace {
        var acts: [LayerActs] = []
        var xs: [Attention.Buffer] = []          // residual stream at each block input (+ final)
        let xn = Attention.Buffer(), h = Attention.Buffer()
        let rstdF = Attention.Buffer(), hN = Attention.Buffer()
        // backward
        let dx = Attention.Buffer(), dxn = Attention.Buffer(), dhN = Attention.Buffer()
        let dq = Attention.Buffer(), dk = Attention.Buffer(), dv = Attention.Buffer(), datt = Attention.Buffer()
        let dgate = Attention.Buffer(), dup = Attention.Buffer(), dh = Attention.Buffer()
        let logits = Attention.Buffer(), hc = Attention.Buffer(), dhc = Attention.Buffer()
        let dqRaw = Attention.Buffer(), dkRaw = Attention.Buffer()

        func release() {
            acts = []
            xs = []
            for b in [xn, h, rstdF, hN, dx, dxn, dhN, dq, dk, dv, datt, dgate, dup, dh, logits, hc, dhc, dqRaw, dkRaw] {
                b.shrink()
            }
        }

        func act(_ i: Int) -> LayerActs {
            while acts.count <= i { acts.append(LayerActs()) }
            return acts[i]
        }
        func x(_ i: Int) -> Attention.Buffer {
            while xs.count <= i { xs.append(Attention.Buffer()) }
            return xs[i]
        }
    }

    /// Everything one pass needs about its batch.
    struct Pass {
        var B: Int, S: Int, T: Int
        var layout: AttentionLayout
        var rope: Kernels.RopeTable
    }

    func makePass(tokens: [Int32], layout: AttentionLayout) -> Pass {
        let S = layout.count
        precondition(S > 0 && tokens.count % S == 0 && !tokens.isEmpty,
                     "tokens (\(tokens.count)) must be B × layout.count (\(S))")
        let V = Int32(config.vocabSize)
        for t in tokens { precondition(t >= 0 && t < V, "token id \(t) outside vocabulary [0, \(V))") }
        let rope = Kernels.RopeTable(positions: layout.positions, inverseFrequencies: ropeInverseFrequencies)
        return Pass(B: tokens.count / S, S: S, T: tokens.count, layout: layout, rope: rope)
    }

    // MARK: - Block forward / backward

    /// x: [T, d] block input → xOut: [T, d]; fills `a` with what the backward needs.
    func blockForward(_ l: Int, x: UnsafePointer<Float>, xOut: UnsafeMutablePointer<Float>,
                      a: LayerActs.Ptrs, pass: Pass) {
        let c = config, d = c.dim, T = pass.T, S = pass.S
        let o = lay.layers[l]
        let xn = ws.xn.get(T * d), h = ws.h.get(T * c.ffnDim)
        Kernels.rmsnormForward(out: xn, rstd: a.rstd1, x: x, weight: P + o.attnNorm, count: T, dim: d, eps: c.normEps)
        projectQKV(o, xn: xn, rows: T, q: a.q, k: a.k, v: a.v, qRaw: a.qRaw, kRaw: a.kRaw, qRstd: a.qRstd, kRstd: a.kRstd)
        Attention.withLayout(pass.layout) { L in
            for b in 0..<pass.B {
                Kernels.rope(a.q + b * S * c.qDim, rows: S, heads: c.heads, headDim: c.headDim, stride: c.qDim, table: pass.rope)
                Kernels.rope(a.k + b * S * c.kvDim, rows: S, heads: c.kvHeads, headDim: c.headDim, stride: c.kvDim, table: pass.rope)
                Attention.forward(out: a.att + b * S * c.qDim, lse: a.lse + b * S * c.heads,
                                  q: a.q + b * S * c.qDim, k: a.k + b * S * c.kvDim, v: a.v + b * S * c.kvDim,
                                  L: L, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                                  scratch: attentionScratch)
            }
        }
        a.xmid.update(from: x, count: T * d)
        linear(y: a.xmid, x: a.att, w: o.o, rows: T, inDim: c.qDim, outDim: d, accumulate: true)
        if let b = o.oBias { Kernels.addBias(a.xmid, P + b, rows: T, dim: d) }
        Kernels.rmsnormForward(out: xn, rstd: a.rstd2, x: a.xmid, weight: P + o.ffnNorm, count: T, dim: d, eps: c.normEps)
        ffnForward(o, xn: xn, rows: T, gate: a.gate, up: a.up, h: h)
        xOut.update(from: a.xmid, count: T * d)
        linear(y: xOut, x: h, w: o.down, rows: T, inDim: c.ffnDim, outDim: d, accumulate: true)
        if let b = o.downBias { Kernels.addBias(xOut, P + b, rows: T, dim: d) }
    }

    /// q, k, v of `rows` normed inputs `xn` [rows, d] before RoPE: the projections plus their
    /// biases, and with `qkNorm` the per-head RMSNorm of q and k (from `qRaw`/`kRaw`, which
    /// then keep the values before the norm, with its rstd per (row, head)).
    func projectQKV(_ o: LayerOffsets, xn: UnsafePointer<Float>, rows T: Int, q: UnsafeMutablePointer<Float>,
                    k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, qRaw: UnsafeMutablePointer<Float>,
                    kRaw: UnsafeMutablePointer<Float>, qRstd: UnsafeMutablePointer<Float>,
                    kRstd: UnsafeMutablePointer<Float>) {
        let c = config, d = c.dim
        let qOut = c.qkNorm ? qRaw : q, kOut = c.qkNorm ? kRaw : k
        linear(y: qOut, x: xn, w: o.q, rows: T, inDim: d, outDim: c.qDim)
        linear(y: kOut, x: xn, w: o.k, rows: T, inDim: d, outDim: c.kvDim)
        linear(y: v, x: xn, w: o.v, rows: T, inDim: d, outDim: c.kvDim)
        if let b = o.qBias { Kernels.addBias(qOut, P + b, rows: T, dim: c.qDim) }
        if let b = o.kBias { Kernels.addBias(kOut, P + b, rows: T, dim: c.kvDim) }
        if let b = o.vBias { Kernels.addBias(v, P + b, rows: T, dim: c.kvDim) }
        if let qn = o.qNorm, let kn = o.kNorm {
            // Rows of head_dim values are contiguous: one norm over T·heads rows.
            Kernels.rmsnormForward(out: q, rstd: qRstd, x: qRaw, weight: P + qn, count: T * c.heads, dim: c.headDim,
                                   eps: c.normEps)
            Kernels.rmsnormForward(out: k, rstd: kRstd, x: kRaw, weight: P + kn, count: T * c.kvHeads, dim: c.headDim,
                                   eps: c.normEps)
        }
    }

    /// gate, up (with their biases) and h = silu(gate) ∘ up of `rows` normed inputs.
    func ffnForward(_ o: LayerOffsets, xn: UnsafePointer<Float>, rows T: Int, gate: UnsafeMutablePointer<Float>,
                    up: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>) {
        let c = config, d = c.dim, F = c.ffnDim
        linear(y: gate, x: xn, w: o.gate, rows: T, inDim: d, outDim: F)
        linear(y: up, x: xn, w: o.up, rows: T, inDim: d, outDim: F)
        if let b = o.gateBias { Kernels.addBias(gate, P + b, rows: T, dim: F) }
        if let b = o.upBias { Kernels.addBias(up, P + b, rows: T, dim: F) }
        Kernels.swigluForward(out: h, gate: gate, up: up, count: T * F)
    }

    /// out = x · rstd · w (RMSNorm applied with saved rstd).
    func applyNorm(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                   _ w: UnsafePointer<Float>, _ T: Int, _ d: Int) {
        for t in 0..<T {
            let r = rstd[t]
            for i in 0..<d { out[t * d + i] = x[t * d + i] * r * w[i] }
        }
    }

    /// dx: [T, d] holds ∂loss/∂(block output) on entry and ∂loss/∂(block input) on exit.
    func blockBackward(_ l: Int, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                       a: LayerActs.Ptrs, pass: Pass, grads G: UnsafeMutablePointer<Float>?) {
        let c = config, d = c.dim, T = pass.T, S = pass.S, F = c.ffnDim
        let o = lay.layers[l]
        let xn = ws.xn.get(T * d), h = ws.h.get(T * F), dxn = ws.dxn.get(T * d)
        let dh = ws.dh.get(T * F), dgate = ws.dgate.get(T * F), dup = ws.dup.get(T * F)
        let dq = ws.dq.get(T * c.qDim), dk = ws.dk.get(T * c.kvDim), dv = ws.dv.get(T * c.kvDim)
        let datt = ws.datt.get(T * c.qDim)
        // FFN
        Kernels.swigluForward(out: h, gate: a.gate, up: a.up, count: T * F)
        if let G, let b = o.downBias { Kernels.biasBackward(G + b, dx, rows: T, dim: d) }
        linearBackward(dx: dh, w: o.down, dy: dx, x: h, rows: T, inDim: F, outDim: d, G: G)
        Kernels.swigluBackward(dGate: dgate, dUp: dup, dOut: dh, gate: a.gate, up: a.up, count: T * F)
        if let G, let b = o.gateBias { Kernels.biasBackward(G + b, dgate, rows: T, dim: F) }
        if let G, let b = o.upBias { Kernels.biasBackward(G + b, dup, rows: T, dim: F) }
        applyNorm(xn, a.xmid, a.rstd2, P + o.ffnNorm, T, d)
        linearBackward(dx: dxn, w: o.gate, dy: dgate, x: xn, rows: T, inDim: d, outDim: F, G: G)
        linearBackward(dx: dxn, w: o.up, dy: dup, x: xn, rows: T, inDim: d, outDim: F,
                       accumulateInput: true, G: G)
        Kernels.rmsnormBackward(dx: dx, dWeight: G.map { $0 + o.ffnNorm }, dOut: dxn, x: a.xmid, weight: P + o.ffnNorm,
                                rstd: a.rstd2, count: T, dim: d)
        // Attention
        if let G, let b = o.oBias { Kernels.biasBackward(G + b, dx, rows: T, dim: d) }
        linearBackward(dx: datt, w: o.o, dy: dx, x: a.att, rows: T, inDim: c.qDim, outDim: d, G: G)
        Attention.withLayout(pass.layout) { L in
            for b in 0..<pass.B {
                let qo = b * S * c.qDim, ko = b * S * c.kvDim
                Attention.backward(dq: dq + qo, dk: dk + ko, dv: dv + ko, dOut: datt + qo, out: a.att + qo,
                                   lse: a.lse + b * S * c.heads, q: a.q + qo, k: a.k + ko, v: a.v + ko, L: L,
                                   heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, scratch: attentionScratch)
                Kernels.rope(dq + qo, rows: S, heads: c.heads, headDim: c.headDim, stride: c.qDim, table: pass.rope, inverse: true)
                Kernels.rope(dk + ko, rows: S, heads: c.kvHeads, headDim: c.headDim, stride: c.kvDim, table: pass.rope, inverse: true)
            }
        }
        // dq, dk: ∂loss/∂(q, k before RoPE); through the per-head norms to the projections.
        var dqP = UnsafePointer(dq), dkP = UnsafePointer(dk)
        if let qn = o.qNorm, let kn = o.kNorm {
            let dqRaw = ws.dqRaw.get(T * c.qDim), dkRaw = ws.dkRaw.get(T * c.kvDim)
            dqRaw.update(repeating: 0, count: T * c.qDim)
            dkRaw.update(repeating: 0, count: T * c.kvDim)
            Kernels.rmsnormBackward(dx: dqRaw, dWeight: G.map { $0 + qn }, dOut: dq, x: a.qRaw, weight: P + qn, rstd: a.qRstd,
                                    count: T * c.heads, dim: c.headDim)
            Kernels.rmsnormBackward(dx: dkRaw, dWeight: G.map { $0 + kn }, dOut: dk, x: a.kRaw, weight: P + kn, rstd: a.kRstd,
                                    count: T * c.kvHeads, dim: c.headDim)
            dqP = UnsafePointer(dqRaw)
            dkP = UnsafePointer(dkRaw)
        }
        if let G, let b = o.qBias { Kernels.biasBackward(G + b, dqP, rows: T, dim: c.qDim) }
        if let G, let b = o.kBias { Kernels.biasBackward(G + b, dkP, rows: T, dim: c.kvDim) }
        if let G, let b = o.vBias { Kernels.biasBackward(G + b, dv, rows: T, dim: c.kvDim) }
        applyNorm(xn, x, a.rstd1, P + o.attnNorm, T, d)
        linearBackward(dx: dxn, w: o.q, dy: dqP, x: xn, rows: T, inDim: d, outDim: c.qDim, G: G)
        linearBackward(dx: dxn, w: o.k, dy: dkP, x: xn, rows: T, inDim: d, outDim: c.kvDim,
                       accumulateInput: true, G: G)
        linearBackward(dx: dxn, w: o.v, dy: dv, x: xn, rows: T, inDim: d, outDim: c.kvDim,
                       accumulateInput: true, G: G)
        Kernels.rmsnormBackward(dx: dx, dWeight: G.map { $0 + o.attnNorm }, dOut: dxn, x: x, weight: P + o.attnNorm,
                                rstd: a.rstd1, count: T, dim: d)
    }

    // MARK: - Passes

    /// Runs embedding + blocks 0..<depth. Training keeps activations per block (or only block
    /// inputs when recomputing); inference ping-pongs two buffers. `capture(l, x)` is called
    /// with the residual stream after block l (0-based). Returns the pointer to the last output.
    @discardableResult
    func runBlocks(tokens: [Int32], pass: Pass, depth: Int, training: Bool,
                   capture: ((Int, UnsafePointer<Float>) -> Void)? = nil) -> UnsafeMutablePointer<Float> {
        let c = config, d = c.dim, T = pass.T
        let x0 = ws.x(0).get(T * d)
        tokens.withUnsafeBufferPointer { tb in
            Kernels.embeddingForward(out: x0, tokens: tb.baseAddress!, count: T, table: P + lay.embedding, dim: d)
        }
        var cur = x0
        for l in 0..<depth {
            let next: UnsafeMutablePointer<Float>
            let acts: LayerActs
            if training {
                next = ws.x(l + 1).get(T * d)
                acts = ws.act(recomputeActivations ? 0 : l)
            } else {
                next = ws.x(l % 2 == 0 ? 1 : 0).get(T * d)
                acts = ws.act(0)
            }
            blockForward(l, x: cur, xOut: next, a: acts.ptrs(T: T, c: c), pass: pass)
            capture?(l, next)
            cur = next
        }
        return cur
    }

    /// Final RMSNorm of the last block's output into ws.hN ([T, d]).
    func finalNorm(_ x: UnsafePointer<Float>, T: Int) -> UnsafeMutablePointer<Float> {
        let d = config.dim
        let hN = ws.hN.get(T * d)
        Kernels.rmsnormForward(out: hN, rstd: ws.rstdF.get(T), x: x, weight: P + lay.outputNorm, count: T, dim: d,
                               eps: config.normEps)
        return hN
    }

    /// Final-normed hidden states [B×S×d] (no activations kept for backward).
    public func forward(tokens: [Int32], layout: AttentionLayout) -> [Float] {
        let pass = makePass(tokens: tokens, layout: layout)
        let x = runBlocks(tokens: tokens, pass: pass, depth: config.layers, training: false)
        let hN = finalNorm(x, T: pass.T)
        return Array(UnsafeBufferPointer(start: hN, count: pass.T * config.dim))
    }

    /// Residual-stream outputs after the given blocks (1-based: ℓ = output of block ℓ, 1...L),
    /// one [B×S×d] array per requested layer in the order given. Runs only as deep as the
    /// deepest requested layer; no vocabulary projection, no final norm.
    public func hiddenStates(tokens: [Int32], layout: AttentionLayout, layers: [Int]) -> [[Float]] {
        for l in layers { precondition(l >= 1 && l <= config.layers, "layer \(l) outside 1...\(config.layers)") }
        guard let depth = layers.max() else { return [] }
        let pass = makePass(tokens: tokens, layout: layout)
        var out = [[Float]](repeating: [], count: layers.count)
        runBlocks(tokens: tokens, pass: pass, depth: depth, training: false) { l, x in
            let arr = Array(UnsafeBufferPointer(start: x, count: pass.T * self.config.dim))
            for (i, want) in layers.enumerated() where want == l + 1 { out[i] = arr }
        }
        return out
    }

    /// Logits [rows.count × vocab] for the given rows of the flattened [B×S] batch.
    public func logits(tokens: [Int32], layout: AttentionLayout, rows: [Int]) -> [Float] {
        let pass = makePass(tokens: tokens, layout: layout)
        let x = runBlocks(tokens: tokens, pass: pass, depth: config.layers, training: false)
        let hN = finalNorm(x, T: pass.T)
        return projectRows(hN: hN, rows: rows, T: pass.T)
    }

    /// Log-probabilities of the predictions (no gradient).
    public func logProbs(tokens: [Int32], layout: AttentionLayout, predictions: [Prediction]) -> [Float] {
        let pass = makePass(tokens: tokens, layout: layout)
        let x = runBlocks(tokens: tokens, pass: pass, depth: config.layers, training: false)
        let hN = finalNorm(x, T: pass.T)
        return headLoss(hN: hN, T: pass.T, predictions: predictions, dhN: nil, dHead: nil).logProbs
    }

    /// Loss `Σ_j weight_j·(−logp_j)` over the predictions and its gradient, accumulated (`+=`)
    /// into `grads` (same layout as the parameters).
    public func lossAndGradient(tokens: [Int32], layout: AttentionLayout, predictions: [Prediction],
                                grads: ParameterStore) -> LossResult {
        precondition(grads.layout == parameters.layout, "gradient buffer layout differs from the model's")
        return lossAndGradient(tokens: tokens, layout: layout, predictions: predictions, G: grads.pointer)
    }

    /// The backward into the base gradient buffer `G` (nil: base weights frozen, see
    /// `lossAndGradient(loraGrads:)`).
    func lossAndGradient(tokens: [Int32], layout: AttentionLayout, predictions: [Prediction],
                         G: UnsafeMutablePointer<Float>?) -> LossResult {
        let c = config, d = c.dim, L = c.layers
        let pass = makePass(tokens: tokens, layout: layout)
        let T = pass.T
        let xL = runBlocks(tokens: tokens, pass: pass, depth: L, training: true)
        let hN = finalNorm(xL, T: T)
        let dhN = ws.dhN.get(T * d)
        dhN.update(repeating: 0, count: T * d)
        let result = headLoss(hN: hN, T: T, predictions: predictions, dhN: dhN, dHead: G.map { $0 + lay.head })
        // Final norm backward into dx.
        let dx = ws.dx.get(T * d)
        dx.update(repeating: 0, count: T * d)
        Kernels.rmsnormBackward(dx: dx, dWeight: G.map { $0 + lay.outputNorm }, dOut: dhN, x: xL, weight: P + lay.outputNorm,
                                rstd: ws.rstdF.get(T), count: T, dim: d)
        for l in stride(from: L - 1, through: 0, by: -1) {
            let x = ws.x(l).get(T * d)
            let acts: LayerActs.Ptrs
            if recomputeActivations {
                acts = ws.act(0).ptrs(T: T, c: c)
                let scratchOut = ws.dh.get(max(T * c.ffnDim, T * d))   // dh is free until blockBackward
                blockForward(l, x: x, xOut: scratchOut, a: acts, pass: pass)
            } else {
                acts = ws.act(l).ptrs(T: T, c: c)
            }
            blockBackward(l, x: x, dx: dx, a: acts, pass: pass, grads: G)
            layerGradientsReady?(l)
        }
        if let G {
            tokens.withUnsafeBufferPointer { tb in
                Kernels.embeddingBackward(dTable: G + lay.embedding, dOut: dx, tokens: tb.baseAddress!, count: T, dim: d)
            }
        }
        return result
    }

    /// Vocabulary projection in row chunks: log-probs of the predictions; with `dhN`/`dHead`
    /// also ∂loss/∂hN (+=) and ∂loss/∂head (+=).
    func headLoss(hN: UnsafePointer<Float>, T: Int, predictions: [Prediction],
                  dhN: UnsafeMutablePointer<Float>?, dHead: UnsafeMutablePointer<Float>?) -> LossResult {
        let d = config.dim, V = config.vocabSize
        let E = UnsafePointer(P + lay.head)
        let chunk = max(1, logitChunkRows)
        let z = ws.logits.get(chunk * V)
        let hc = ws.hc.get(chunk * d)
        let dhc = ws.dhc.get(chunk * d)
        var logps = [Float](repeating: 0, count: predictions.count)
        var loss = 0.0
        predictions.withUnsafeBufferPointer { pr in
            var j0 = 0
            while j0 < pr.count {
                let n = min(chunk, pr.count - j0)
                for i in 0..<n {
                    let p = pr[j0 + i]
                    precondition(p.row >= 0 && Int(p.row) < T, "prediction row \(p.row) outside 0..<\(T)")
                    precondition(p.target >= 0 && Int(p.target) < V, "target \(p.target) outside vocabulary")
                    (hc + i * d).update(from: hN + Int(p.row) * d, count: d)
                }
                // z: [n, V] = hc · Eᵀ
                BLAS.sgemm(transB: true, m: n, n: V, k: d, a: hc, lda: d, b: E, ldb: d, c: z, ldc: V)
                for i in 0..<n {
                    let p = pr[j0 + i]
                    let zr = z + i * V
                    let it = p.invTemperature
                    if it != 1 { for v in 0..<V { zr[v] *= it } }
                    let mx = Kernels.maxOf(zr, V)
                    let target = zr[Int(p.target)]
                    let sum = Kernels.expShiftInPlace(zr, V, shift: mx)   // zr ← exp(z − mx)
                    let lp = target - mx - Foundation.log(sum)
                    logps[j0 + i] = lp
                    loss += Double(p.weight) * Double(-lp)
                    if dhN != nil {
                        // ∂(−w·logp)/∂z_v = w·invT·(softmax_v − δ_v,target)
                        let s = p.weight * it / sum
                        for v in 0..<V { zr[v] *= s }
                        zr[Int(p.target)] -= p.weight * it
                    }
                }
                if let dhN {
                    // dhc = dz · E;  dE += dzᵀ · hc (unless the head is frozen)
                    BLAS.sgemm(m: n, n: d, k: V, a: z, lda: V, b: E, ldb: d, c: dhc, ldc: d)
                    if let dHead {
                        BLAS.sgemm(transA: true, m: V, n: d, k: n, a: z, lda: V, b: hc, ldb: d, beta: 1, c: dHead, ldc: d)
                    }
                    for i in 0..<n {
                        Kernels.axpy(1, dhc + i * d, dhN + Int(pr[j0 + i].row) * d, d)
                    }
                }
                j0 += n
            }
        }
        return LossResult(loss: loss, logProbs: logps)
    }
}
