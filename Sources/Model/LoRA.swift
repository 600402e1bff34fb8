import Foundation

/// A projection LoRA can adapt (HF module names in `hfName`).
public enum LoRATarget: String, CaseIterable, Codable, Sendable {
    case q, k, v, o, gate, up, down

    /// The HF / PEFT module name (`q_proj` … `down_proj`).
    public var hfName: String { rawValue + "_proj" }
    /// The HF parent module (`self_attn` or `mlp`).
    public var hfParent: String {
        switch self {
        case .q, .k, .v, .o: return "self_attn"
        case .gate, .up, .down: return "mlp"
        }
    }

    /// Accepts our short names (`q`) and the HF ones (`q_proj`).
    public init?(name: String) {
        let n = name.hasSuffix("_proj") ? String(name.dropLast(5)) : name
        self.init(rawValue: n)
    }

    /// (in, out) of this projection in `c`.
    public func shape(_ c: ModelConfig) -> (inDim: Int, outDim: Int) {
        switch self {
        case .q: return (c.dim, c.qDim)
        case .k, .v: return (c.dim, c.kvDim)
        case .o: return (c.qDim, c.dim)
        case .gate, .up: return (c.dim, c.ffnDim)
        case .down: return (c.ffnDim, c.dim)
        }
    }

    func offset(_ o: LayerOffsets) -> Int {
        switch self {
        case .q: return o.q
        case .k: return o.k
        case .v: return o.v
        case .o: return o.o
        case .gate: return o.gate
        case .up: return o.up
        case .down: return o.down
        }
    }
}

/// LoRA hyper-parameters: rank r, α (the update is scaled by α/r) and the adapted projections
/// (in canonical order q, k, v, o, gate, up, down).
public struct LoRAConfig: Equatable, Codable, Sendable {
    public var rank: Int
    public var alpha: Double
    public var targets: [LoRATarget]

    /// All seven projections: the "all linear layers" choice of QLoRA and axolotl's
    /// `lora_target_linear` (PEFT's own Llama default is q and v only).
    public static let defaultTargets = LoRATarget.allCases

    public init(rank: Int, alpha: Double, targets: [LoRATarget] = LoRAConfig.defaultTargets) {
        self.rank = rank
        self.alpha = alpha
        self.targets = LoRATarget.allCases.filter { targets.contains($0) }
    }

    /// α / r.
    public var scale: Float { Float(alpha / Double(rank)) }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Parses `q,k,v,o,gate,up,down` (or HF names, or `all`).
    public static func parseTargets(_ s: String) throws -> [LoRATarget] {
        if s.trimmingCharacters(in: .whitespaces) == "all" { return LoRATarget.allCases }
        var out: [LoRATarget] = []
        for part in s.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let t = LoRATarget(name: part) else {
                throw Invalid(description: "unknown LoRA target \"\(part)\" (use q, k, v, o, gate, up, down or all)")
            }
            if out.contains(t) { throw Invalid(description: "LoRA target \(part) given twice") }
            out.append(t)
        }
        if out.isEmpty { throw Invalid(description: "no LoRA target given") }
        return out
    }

    public func validate() throws {
        if rank < 1 { throw Invalid(description: "lora-rank must be at least 1, got \(rank)") }
        if !(alpha > 0) || !alpha.isFinite { throw Invalid(description: "lora-alpha must be positive, got \(alpha)") }
        if targets.isEmpty { throw Invalid(description: "no LoRA target") }
    }
}

/// The adapters of one model: for each layer and target projection W [out, in], A [r, in] and
/// B [out, r] in one flat buffer (layer by layer, targets in canonical order, A then B), so
/// that an adapted projection computes y = W·x + (α/r)·B·(A·x). Also used, with the same
/// layout, for their gradients and Adam moments (`init(like:)`).
public final class LoRAWeights {
    public struct Adapter: Equatable, Sendable {
        public var layer: Int
        public var target: LoRATarget
        public var inDim: Int
        public var outDim: Int
        /// Offsets of A and B in this buffer, and of the adapted weight in the model's.
        public var a: Int, b: Int, base: Int
    }

    public let config: LoRAConfig
    public let modelConfig: ModelConfig
    public let adapters: [Adapter]
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    let byBase: [Int: Int]

    /// Zero adapters for `model`.
    public init(config: LoRAConfig, model: ModelConfig) {
        self.config = config
        self.modelConfig = model
        let lay = ParameterLayout(config: model)
        var list: [Adapter] = []
        var off = 0
        for l in 0..<model.layers {
            for t in config.targets {
                let (i, o) = t.shape(model)
                list.append(Adapter(layer: l, target: t, inDim: i, outDim: o, a: off, b: off + config.rank * i,
                                    base: t.offset(lay.layers[l])))
                off += config.rank * (i + o)
            }
        }
        adapters = list
        count = off
        var ix: [Int: Int] = [:]
        for (i, a) in list.enumerated() { ix[a.base] = i }
        byBase = ix
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, off) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, off))
        pointer.initialize(repeating: 0, count: off)
    }

    /// Zeros of the same layout (gradients, optimizer state).
    public convenience init(like other: LoRAWeights) {
        self.init(config: other.config, model: other.modelConfig)
    }

    deinit { pointer.deallocate() }

    /// The adapter of the weight at `base` (offset in the model's flat buffer), if any.
    @inline(__always) func adapter(base: Int) -> Adapter? {
        byBase[base].map { adapters[$0] }
    }

    public func adapter(layer: Int, target: LoRATarget) -> Adapter? {
        adapters.first { $0.layer == layer && $0.target == target }
    }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from other: LoRAWeights) {
        precondition(other.config == config && other.modelConfig == modelConfig, "LoRA layouts differ")
        pointer.update(from: other.pointer, count: count)
    }

    public func clone() -> LoRAWeights {
        let c = LoRAWeights(like: self)
        c.copy(from: self)
        return c
    }

    /// PEFT's default initialisation: A ~ Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in)
    /// (drawn from a SplitMix64 stream of `seed`, adapter by adapter, row-major), B = 0.
    public func initialize(seed: UInt64) {
        var rng = InitRNG(seed: seed ^ 0x4C6F_5241_0000_0000)
        zero()
        for ad in adapters {
            let bound = 1 / Double(ad.inDim).squareRoot()
            let a = pointer + ad.a
            for i in 0..<(config.rank * ad.inDim) { a[i] = Float(bound * (2 * rng.uniform() - 1)) }
        }
    }

    /// Seeded N(0, std²) values in every A and B (tests: a LoRA whose B is not zero).
    public func randomize(seed: UInt64, std: Float) {
        var rng = InitRNG(seed: seed)
        for i in 0..<count { pointer[i] = std * rng.normal() }
    }

    public func squaredNorm() -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(pointer[i]) * Double(pointer[i]) }
        return s
    }

    /// Adds (α/r)·B·A of every adapter to its weight in `params` (the merged model).
    public func merge(into params: ParameterStore) {
        precondition(params.config == modelConfig, "LoRA adapters belong to another model shape")
        let r = config.rank
        for ad in adapters {
            BLAS.sgemm(m: ad.outDim, n: ad.inDim, k: r, alpha: config.scale, a: pointer + ad.b, lda: r,
                       b: pointer + ad.a, ldb: ad.inDim, beta: 1, c: params.pointer + ad.base, ldc: ad.inDim)
        }
    }
}

/// Scratch of the adapted projections and the gradient buffer of the running backward.
final class LoRAScratch {
    let u = Attention.Buffer(), du = Attention.Buffer()
    var grads: UnsafeMutablePointer<Float>? = nil
}

extension Transformer {
    /// The same parameters without adapters (the feature network of a LoRA run): a second
    /// transformer on the same `ParameterStore` with its own workspace.
    public func withoutAdapters() -> Transformer {
        let m = Transformer(parameters: parameters)
        m.recomputeActivations = recomputeActivations
        m.logitChunkRows = logitChunkRows
        return m
    }

    /// y (=, or += with `accumulate`) x·Wᵀ for the weight at offset `w`, plus (α/r)·(x·Aᵀ)·Bᵀ
    /// when `lora` adapts that weight. x: [rows, in], y: [rows, out].
    func linear(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: Int, rows T: Int, inDim: Int, outDim: Int,
                accumulate: Bool = false) {
        Kernels.linearForward(y: y, x: x, weight: P + w, rows: T, inDim: inDim, outDim: outDim, accumulate: accumulate)
        guard let lora, let ad = lora.adapter(base: w) else { return }
        let r = lora.config.rank, L = lora.pointer
        let u = loraScratch.u.get(T * r)
        BLAS.sgemm(transB: true, m: T, n: r, k: inDim, a: x, lda: inDim, b: L + ad.a, ldb: inDim, c: u, ldc: r)
        BLAS.sgemm(transB: true, m: T, n: outDim, k: r, alpha: lora.config.scale, a: u, lda: r, b: L + ad.b, ldb: r,
                   beta: 1, c: y, ldc: outDim)
    }

    /// Backward of `linear`: dx (=, or += with `accumulateInput`) dy·W (+ the adapter's
    /// (α/r)·dy·B·A); the weight's gradient dW += dyᵀ·x only when `G` (the base gradient buffer)
    /// is given: a frozen base skips that product. The adapter's dA, dB accumulate into the
    /// running LoRA gradient buffer (when there is one).
    func linearBackward(dx: UnsafeMutablePointer<Float>, w: Int, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                        rows T: Int, inDim: Int, outDim: Int, accumulateInput: Bool = false,
                        G: UnsafeMutablePointer<Float>?) {
        if let G {
            Kernels.linearBackward(dx: dx, dWeight: G + w, dy: dy, x: x, weight: P + w, rows: T, inDim: inDim,
                                   outDim: outDim, accumulateInput: accumulateInput)
        } else {
            BLAS.sgemm(m: T, n: inDim, k: outDim, a: dy, lda: outDim, b: P + w, ldb: inDim,
                       beta: accumulateInput ? 1 : 0, c: dx, ldc: inDim)
        }
        guard let lora, let ad = lora.adapter(base: w) else { return }
        let r = lora.config.rank, L = lora.pointer, s = lora.config.scale
        let u = loraScratch.u.get(T * r), du = loraScratch.du.get(T * r)
        // du = s·dy·B  [T, r]
        BLAS.sgemm(m: T, n: r, k: outDim, alpha: s, a: dy, lda: outDim, b: L + ad.b, ldb: r, c: du, ldc: r)
        if let LG = loraScratch.grads {
            // u = x·Aᵀ (recomputed); dB += s·dyᵀ·u;  dA += duᵀ·x
            BLAS.sgemm(transB: true, m: T, n: r, k: inDim, a: x, lda: inDim, b: L + ad.a, ldb: inDim, c: u, ldc: r)
            BLAS.sgemm(transA: true, m: outDim, n: r, k: T, alpha: s, a: dy, lda: outDim, b: u, ldb: r,
                       beta: 1, c: LG + ad.b, ldc: r)
            BLAS.sgemm(transA: true, m: r, n: inDim, k: T, a: du, lda: r, b: x, ldb: inDim,
                       beta: 1, c: LG + ad.a, ldc: inDim)
        }
        // dx += du·A
        BLAS.sgemm(m: T, n: inDim, k: r, a: du, lda: r, b: L + ad.a, ldb: inDim, beta: 1, c: dx, ldc: inDim)
    }

    /// The LoRA loss gradient: like `lossAndGradient(grads:)` with the base weights frozen
    /// (no weight-gradient products for them, no norm/bias/embedding gradients); dA and dB are
    /// accumulated (`+=`) into `loraGrads` (the layout of `lora`).
    public func lossAndGradient(tokens: [Int32], layout: AttentionLayout, predictions: [Prediction],
                                loraGrads: LoRAWeights) -> LossResult {
        guard let lora else { preconditionFailure("lossAndGradient(loraGrads:) on a model without adapters") }
        precondition(loraGrads.config == lora.config && loraGrads.modelConfig == lora.modelConfig,
                     "LoRA gradient buffer layout differs from the adapters'")
        loraScratch.grads = loraGrads.pointer
        defer { loraScratch.grads = nil }
        return lossAndGradient(tokens: tokens, layout: layout, predictions: predictions, G: nil)
    }
}
