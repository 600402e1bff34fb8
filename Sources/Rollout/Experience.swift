/// What a rollout worker hands a learner: one sampled strided sequence (chunk `chunkID`,
/// sample `sample`) with its per-block advantages, plus the reward statistics the learners
/// log. Compact: token ids and one advantage per block; the learner rebuilds the layout from
/// the geometry it shares with the worker.
public struct Experience: Equatable, Sendable {
    /// Global index of the chunk in the training set (also the RNG identity of its samples).
    public var chunkID: Int64
    /// Which of the n samples of the chunk this is.
    public var sample: Int32
    /// The ground-truth chunk x, length P.
    public var chunk: [Int32]
    /// Generated tokens in step-major order: index t·K + k is token t of block k (length G·K).
    public var generated: [Int32]
    /// Sampling log-probabilities of `generated` under the policy at the sampling temperature.
    public var sampleLogProbs: [Float]
    /// RLOO advantage of each block (length K).
    public var advantages: [Float]
    /// Per-block reward components (length K each), for metrics.
    public var alignment: [Float]
    public var diversity: [Float]
    /// Version of the policy weights that sampled this experience (the optimizer step).
    public var policyVersion: Int64

    public init(chunkID: Int64, sample: Int32, chunk: [Int32], generated: [Int32], sampleLogProbs: [Float],
                advantages: [Float], alignment: [Float], diversity: [Float], policyVersion: Int64) {
        self.chunkID = chunkID
        self.sample = sample
        self.chunk = chunk
        self.generated = generated
        self.sampleLogProbs = sampleLogProbs
        self.advantages = advantages
        self.alignment = alignment
        self.diversity = diversity
        self.policyVersion = policyVersion
    }

    /// The strided sequence z = x ++ generated (length P + G·K).
    public var strided: [Int32] { chunk + generated }
}

public enum WireError: Error, CustomStringConvertible, Equatable {
    case truncated(what: String, need: Int, have: Int)
    case badMagic(UInt32)
    case badLength(what: String, value: Int64)

    public var description: String {
        switch self {
        case let .truncated(what, need, have): return "message truncated reading \(what): need \(need) bytes, have \(have)"
        case let .badMagic(m): return "not an experience message (magic 0x\(String(m, radix: 16)))"
        case let .badLength(what, v): return "implausible length \(v) for \(what)"
        }
    }
}

/// Little-endian byte encoding of experiences for point-to-point messages.
public enum ExperienceWire {
    static let magic: UInt32 = 0x4542_4654 // "EBFT"

    public static func encode(_ batch: [Experience]) -> [UInt8] {
        var w = ByteWriter()
        w.put(magic)
        w.put(UInt32(batch.count))
        for e in batch {
            w.put(e.chunkID)
            w.put(e.sample)
            w.put(e.policyVersion)
            w.putArray(e.chunk)
            w.putArray(e.generated)
            w.putArray(e.sampleLogProbs)
            w.putArray(e.advantages)
            w.putArray(e.alignment)
            w.putArray(e.diversity)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> [Experience] {
        var r = ByteReader(bytes)
        let m: UInt32 = try r.get("magic")
        guard m == magic else { throw WireError.badMagic(m) }
        let n: UInt32 = try r.get("count")
        var out: [Experience] = []
        out.reserveCapacity(Int(n))
        for _ in 0..<n {
            let chunkID: Int64 = try r.get("chunk id")
            let sample: Int32 = try r.get("sample")
            let version: Int64 = try r.get("policy version")
            out.append(Experience(
                chunkID: chunkID, sample: sample,
                chunk: try r.getArray("chunk"), generated: try r.getArray("generated"),
                sampleLogProbs: try r.getArray("log-probs"), advantages: try r.getArray("advantages"),
                alignment: try r.getArray("alignment"), diversity: try r.getArray("diversity"),
                policyVersion: version))
        }
        return out
    }
}

/// Appends fixed-width little-endian values.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func put<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func put(_ v: Float) { put(v.bitPattern) }
    public mutating func put(_ v: Double) { put(v.bitPattern) }

    public mutating func putArray<T: BitwiseCopyable>(_ a: [T]) {
        put(UInt64(a.count))
        a.withUnsafeBytes { bytes.append(contentsOf: $0) } // x86-64 and arm64 are little-endian
    }
}

/// Reads what `ByteWriter` wrote, with bounds checks that name the field.
public struct ByteReader {
    let bytes: [UInt8]
    public private(set) var offset = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }

    public mutating func get<T: FixedWidthInteger>(_ what: String) throws -> T {
        let n = MemoryLayout<T>.size
        guard remaining >= n else { throw WireError.truncated(what: what, need: n, have: remaining) }
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            bytes.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<offset + n])) }
        }
        offset += n
        return T(littleEndian: v)
    }

    public mutating func getArray<T: BitwiseCopyable>(_ what: String) throws -> [T] {
        let count: UInt64 = try get("\(what) length")
        let stride = MemoryLayout<T>.stride
        guard count <= UInt64(remaining / max(stride, 1)) else {
            throw WireError.truncated(what: what, need: Int(clamping: count) &* stride, have: remaining)
        }
        let n = Int(count)
        let out = [T](unsafeUninitializedCapacity: n) { buf, initialized in
            bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<offset + n * stride]))
            }
            initialized = n
        }
        offset += n * stride
        return out
    }
}
