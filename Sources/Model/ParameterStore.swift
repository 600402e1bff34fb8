import Foundation

/// One named tensor inside a flat buffer: `count` floats from `offset`, row-major `shape`.
public struct TensorView: Equatable, Sendable {
    public var name: String
    public var offset: Int
    public var shape: [Int]
    public var count: Int { shape.reduce(1, *) }
}

/// Offsets (in floats) of one block's tensors inside the flat buffer.
public struct LayerOffsets: Equatable, Sendable {
    public var attnNorm: Int   // [d]
    public var q: Int          // [heads·hd, d]
    public var k: Int          // [kv·hd, d]
    public var v: Int          // [kv·hd, d]
    public var o: Int          // [d, heads·hd]
    public var ffnNorm: Int    // [d]
    public var gate: Int       // [ffn, d]
    public var up: Int         // [ffn, d]
    public var down: Int       // [d, ffn]
    // The optional vectors (nil when the config does not have them).
    public var qBias: Int? = nil      // [heads·hd]
    public var kBias: Int? = nil      // [kv·hd]
    public var vBias: Int? = nil      // [kv·hd]
    public var qNorm: Int? = nil      // [hd]
    public var kNorm: Int? = nil      // [hd]
    public var oBias: Int? = nil      // [d]
    public var gateBias: Int? = nil   // [ffn]
    public var upBias: Int? = nil     // [ffn]
    public var downBias: Int? = nil   // [d]
}

/// Where every tensor of a `ModelConfig` lives in the flat buffer (GGUF tensor names).
public struct ParameterLayout: Equatable, Sendable {
    public let config: ModelConfig
    public let views: [TensorView]
    public let count: Int
    public let embedding: Int      // token_embd.weight [vocab, d]
    public let layers: [LayerOffsets]
    public let outputNorm: Int     // output_norm.weight [d]
    /// The output head [vocab, d]: `embedding` when tied, else `output.weight`.
    public let head: Int

    public init(config c: ModelConfig) {
        var views: [TensorView] = []
        var off = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let v = TensorView(name: name, offset: off, shape: shape)
            views.append(v)
            // Keep every tensor 64-byte aligned (16 floats) inside the 64-byte aligned buffer.
            off += (v.count + 15) / 16 * 16
            return v.offset
        }
        let d = c.dim
        embedding = add("token_embd.weight", [c.vocabSize, d])
        var ls: [LayerOffsets] = []
        for l in 0..<c.layers {
            var at: [String: Int] = [:]
            for (name, shape) in c.blockTensors(l) { at[String(name.split(separator: ".", maxSplits: 2)[2])] = add(name, shape) }
            ls.append(LayerOffsets(attnNorm: at["attn_norm.weight"]!, q: at["attn_q.weight"]!, k: at["attn_k.weight"]!,
                                   v: at["attn_v.weight"]!, o: at["attn_output.weight"]!, ffnNorm: at["ffn_norm.weight"]!,
                                   gate: at["ffn_gate.weight"]!, up: at["ffn_up.weight"]!, down: at["ffn_down.weight"]!,
                                   qBias: at["attn_q.bias"], kBias: at["attn_k.bias"], vBias: at["attn_v.bias"],
                                   qNorm: at["attn_q_norm.weight"], kNorm: at["attn_k_norm.weight"],
                                   oBias: at["attn_output.bias"], gateBias: at["ffn_gate.bias"],
                                   upBias: at["ffn_up.bias"], downBias: at["ffn_down.bias"]))
        }
        layers = ls
        outputNorm = add("output_norm.weight", [d])
        head = c.tiedEmbeddings ? embedding : add("output.weight", [c.vocabSize, d])
        self.config = c
        self.views = views
        self.count = off
    }

    public func view(named name: String) -> TensorView? { views.first { $0.name == name } }

    /// The contiguous flat range of block `l`'s tensors.
    public func layerRange(_ l: Int) -> Range<Int> {
        layers[l].attnNorm..<(l + 1 < layers.count ? layers[l + 1].attnNorm : outputNorm)
    }

    /// Gradient buckets in the order a backward pass completes them: blocks L−1 … 0, then
    /// everything outside the blocks (embedding, final norm, untied head), which is final only
    /// at the end. Together they cover `0..<count` exactly once.
    public var backwardBuckets: [Range<Int>] {
        let blocks = (0..<layers.count).reversed().map(layerRange)
        let first = layers.first?.attnNorm ?? outputNorm
        return blocks + [0..<first, outputNorm..<count].filter { !$0.isEmpty }
    }
}

/// One flat, 64-byte aligned Float32 allocation with named views: the model's parameters, or a
/// parallel buffer of the same layout (gradients, Adam moments) made with `init(like:)`.
///
/// Not thread-safe; the storage is freed with the object.
public final class ParameterStore {
    public let layout: ParameterLayout
    public let pointer: UnsafeMutablePointer<Float>
    public var count: Int { layout.count }
    public var config: ModelConfig { layout.config }
    /// The longest sequence the model was trained for (GGUF `llama.context_length`, HF
    /// `max_position_embeddings`): prompt plus generated tokens, i.e. the largest rotary
    /// position + 1. Nil when unknown (a randomly initialised model without `context=`).
    public var contextLength: Int?
    /// The model's sliding attention window when it has one (then `contextLength` is at most
    /// this: attention beyond the window is not implemented, so longer sequences are refused).
    public var slidingWindow: Int?
    private let index: [String: Int]

    /// A zero-filled store for `config`.
    public init(config: ModelConfig) {
        layout = ParameterLayout(config: config)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, layout.count) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, layout.count))
        pointer.initialize(repeating: 0, count: layout.count)
        var ix: [String: Int] = [:]
        for (i, v) in layout.views.enumerated() { ix[v.name] = i }
        index = ix
    }

    /// A zero-filled store with the same layout as `other` (for gradients / optimizer state).
    public convenience init(like other: ParameterStore) {
        self.init(config: other.config)
    }

    deinit { pointer.deallocate() }

    public var names: [String] { layout.views.map(\.name) }

    public func view(_ name: String) -> TensorView? {
        index[name].map { layout.views[$0] }
    }

    /// The floats of tensor `name` (precondition: the name exists).
    public subscript(name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let v = view(name) else { preconditionFailure("no tensor named \(name)") }
        return UnsafeMutableBufferPointer(start: pointer + v.offset, count: v.count)
    }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from other: ParameterStore) {
        precondition(other.layout == layout, "ParameterStore.copy: layouts differ")
        pointer.update(from: other.pointer, count: count)
    }

    /// A new store holding a copy of these values.
    public func clone() -> ParameterStore {
        let s = ParameterStore(like: self)
        s.copy(from: self)
        s.contextLength = contextLength
        s.slidingWindow = slidingWindow
        return s
    }

    /// The whole flat buffer (including alignment padding, which stays zero).
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: pointer, count: count))
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// Seeded random init for tests and benchmarks: matrices and biases ~ N(0, std²), norm
    /// weights = 1.
    public func randomize(seed: UInt64, std: Float = 0.02) {
        var rng = InitRNG(seed: seed)
        zero()
        for v in layout.views {
            let p = pointer + v.offset
            if v.shape.count == 1 && !v.name.hasSuffix(".bias") {
                p.update(repeating: 1, count: v.count)
            } else {
                for i in 0..<v.count { p[i] = std * rng.normal() }
            }
        }
    }

    /// Sum of squares of all entries (Double accumulation).
    public func squaredNorm() -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(pointer[i]) * Double(pointer[i]) }
        return s
    }
}

/// SplitMix64 + Box–Muller; only for deterministic parameter init.
struct InitRNG {
    var state: UInt64
    var spare: Float? = nil
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in (0, 1).
    mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / 9007199254740992.0 }
    mutating func normal() -> Float {
        if let s = spare { spare = nil; return s }
        let u1 = uniform(), u2 = uniform()
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spare = Float(r * Foundation.sin(2 * Double.pi * u2))
        return Float(r * Foundation.cos(2 * Double.pi * u2))
    }
}
