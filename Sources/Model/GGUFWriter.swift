import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// GGUF writer (version 3, little-endian, alignment 32): the container `GGUFFile` reads.
//
//   u32 magic "GGUF" | u32 version 3 | u64 tensor_count | u64 metadata_kv_count
//   metadata (string key, u32 type, value) | tensor infos (string name, u32 n_dims, u64 ne[n_dims],
//   u32 ggml type, u64 offset relative to the data section) | zero padding to 32 | tensor data,
//   each tensor starting at a multiple of 32 (zero padding between them).
//
// Tensors are written F32, F16 or Q8_0. Q8_0 is llama.cpp's `quantize_row_q8_0_ref` (and gguf-py's
// `quants.Q8_0`): blocks of 32 along ne[0], d = max|x| / 127 (Float32, stored as F16),
// q = round-half-away-from-zero(x · (1/d)) as int8; the value read back is q · F16(d).

/// A tensor to write: GGUF name, GGUF shape (ne[0] fastest) and the ggml type to store it as.
public struct GGUFTensorSpec: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var type: GGUFTensorType

    public init(name: String, shape: [Int], type: GGUFTensorType) {
        self.name = name
        self.shape = shape
        self.type = type
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

public enum GGUFWriter {
    public static let version: UInt32 = 3
    public static let alignment = 32

    /// Writes `path` atomically (temporary file beside it, fsync, rename, fsync of the directory).
    /// `metadata` is written in the given order (add `general.alignment` yourself if wanted; it
    /// must then be 32). `fill(i, out)` puts tensor i's `elementCount` Float32 values, in GGUF
    /// element order, into `out`; they are converted to the tensor's type here.
    public static func write(path: String, metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorSpec],
                             fill: (Int, UnsafeMutablePointer<Float>) throws -> Void) throws {
        func bad(_ s: String) -> GGUFError { .invalid(path: path, problem: "cannot write: " + s) }
        var header = ByteBuffer()
        header.u32(0x4655_4747) // "GGUF" little-endian
        header.u32(version)
        header.u64(UInt64(tensors.count))
        header.u64(UInt64(metadata.count))
        var keys = Set<String>()
        for (key, value) in metadata {
            guard keys.insert(key).inserted else { throw bad("duplicate metadata key '\(key)'") }
            if key == "general.alignment", value.int != alignment {
                throw bad("general.alignment is \(value); this writer aligns to \(alignment)")
            }
            header.string(key)
            try header.value(value, key: key, path: path)
        }
        var offset = 0
        var names = Set<String>()
        var maxCount = 1
        for t in tensors {
            guard names.insert(t.name).inserted else { throw bad("duplicate tensor name '\(t.name)'") }
            guard (1...4).contains(t.shape.count), t.shape.allSatisfy({ $0 > 0 }) else {
                throw bad("tensor '\(t.name)' has shape \(t.shape) (expected 1 to 4 positive dimensions)")
            }
            guard [.f32, .f16, .q8_0].contains(t.type) else {
                throw bad("tensor '\(t.name)': type \(t.type) is not written (F32, F16, Q8_0 are)")
            }
            if t.shape[0] % t.type.blockLayout.elements != 0 {
                throw bad("tensor '\(t.name)' of type \(t.type): row length \(t.shape[0]) is not a multiple of "
                          + "the block size \(t.type.blockLayout.elements)")
            }
            header.string(t.name)
            header.u32(UInt32(t.shape.count))
            for n in t.shape { header.u64(UInt64(n)) }
            header.u32(t.type.ggmlType)
            header.u64(UInt64(offset))
            offset += padded(byteCount(t))
            maxCount = max(maxCount, t.elementCount)
        }
        header.bytes += [UInt8](repeating: 0, count: padded(header.bytes.count) - header.bytes.count)

        let out = try AtomicFile(path: path)
        defer { out.discard() }
        try out.write(header.bytes)
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: maxCount)
        defer { floats.deallocate() }
        var raw = [UInt8](repeating: 0, count: padded(maxCount * 4))
        for (i, t) in tensors.enumerated() {
            try fill(i, floats)
            let n = byteCount(t)
            raw.withUnsafeMutableBytes { encode(t.type, UnsafePointer(floats), count: t.elementCount, into: $0.baseAddress!) }
            for j in n..<padded(n) { raw[j] = 0 }
            try raw.withUnsafeBytes { try out.write(UnsafeRawBufferPointer(rebasing: $0[0..<padded(n)])) }
        }
        try out.commit()
    }

    static func byteCount(_ t: GGUFTensorSpec) -> Int {
        let (e, b) = t.type.blockLayout
        return t.elementCount / e * b
    }

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// `count` floats as `type` into `out` (F32 bytes, F16 halves, or Q8_0 blocks).
    static func encode(_ type: GGUFTensorType, _ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutableRawPointer) {
        switch type {
        case .f32:
            for i in 0..<count { out.storeBytes(of: x[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        case .f16:
            for i in 0..<count { out.storeBytes(of: halfBits(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .q8_0:
            for b in 0..<(count / 32) {
                let blk = out + 34 * b, v = x + 32 * b
                var amax: Float = 0
                for j in 0..<32 { amax = max(amax, abs(v[j])) }
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                blk.storeBytes(of: halfBits(d).littleEndian, as: UInt16.self)
                for j in 0..<32 {
                    let q = (v[j] * id).rounded(.toNearestOrAwayFromZero)
                    blk.storeBytes(of: Int8(q), toByteOffset: 2 + j, as: Int8.self)
                }
            }
        default:
            preconditionFailure("GGUFWriter.encode: \(type) is not written")
        }
    }

    /// IEEE half bits of `x`, rounded to nearest even (overflow gives ±∞, NaN stays NaN).
    public static func halfBits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        let sign = UInt16((b >> 16) & 0x8000)
        let exp = Int((b >> 23) & 0xff), mant = b & 0x7f_ffff
        if exp == 0xff { return sign | 0x7c00 | (mant != 0 ? 0x200 | UInt16(mant >> 13) : 0) }
        let e = exp - 127 + 15
        if e >= 0x1f { return sign | 0x7c00 }
        if e <= 0 {
            // Subnormal half (or zero): value = m · 2^-24 with m = round(|x| · 2^24).
            if e < -10 { return sign }
            let m = mant | 0x80_0000 // 24 significant bits, value = m · 2^(exp-150)
            let shift = UInt32(14 - e) // to units of 2^-24
            var h = m >> shift
            let rem = m & ((1 << shift) - 1), halfway = UInt32(1) << (shift - 1)
            if rem > halfway || (rem == halfway && h & 1 == 1) { h += 1 }
            return sign | UInt16(h)
        }
        var h = UInt32(e) << 10 | (mant >> 13)
        let rem = mant & 0x1fff
        if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) { h += 1 } // may carry into the exponent: correct
        return sign | UInt16(h)
    }
}

/// Little-endian serialisation of GGUF header items.
struct ByteBuffer {
    var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes += s.utf8
    }

    static func typeID(_ v: GGUFValue) -> UInt32 {
        switch v {
        case .uint8: return 0
        case .int8: return 1
        case .uint16: return 2
        case .int16: return 3
        case .uint32: return 4
        case .int32: return 5
        case .float32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .uint64: return 10
        case .int64: return 11
        case .float64: return 12
        }
    }

    mutating func value(_ v: GGUFValue, key: String, path: String, typed: Bool = true) throws {
        if typed { u32(Self.typeID(v)) }
        switch v {
        case let .uint8(x): bytes.append(x)
        case let .int8(x): bytes.append(UInt8(bitPattern: x))
        case let .uint16(x): withUnsafeBytes(of: x.littleEndian) { bytes += $0 }
        case let .int16(x): withUnsafeBytes(of: x.littleEndian) { bytes += $0 }
        case let .uint32(x): u32(x)
        case let .int32(x): u32(UInt32(bitPattern: x))
        case let .float32(x): u32(x.bitPattern)
        case let .bool(x): bytes.append(x ? 1 : 0)
        case let .string(s): string(s)
        case let .uint64(x): u64(x)
        case let .int64(x): u64(UInt64(bitPattern: x))
        case let .float64(x): u64(x.bitPattern)
        case let .array(items):
            // An empty array is written as an array of strings (its element type is not known).
            let elem = items.first.map(Self.typeID) ?? 8
            if items.contains(where: { Self.typeID($0) != elem }) {
                throw GGUFError.invalid(path: path, problem: "cannot write: metadata '\(key)' mixes element types")
            }
            u32(elem)
            u64(UInt64(items.count))
            for item in items { try value(item, key: key, path: path, typed: false) }
        }
    }
}

/// A file written under a temporary name beside `path` and renamed over it by `commit` (after
/// fsync); `discard` removes the temporary file if `commit` was not reached.
final class AtomicFile {
    let path: String
    private let tmp: String
    private var fd: Int32
    private var done = false

    init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        tmp = url.deletingLastPathComponent().path + "/." + url.lastPathComponent
            + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        if fd < 0 { throw HFCheckpointError.writeFailed(path: path, reason: "cannot create \(tmp): \(String(cString: strerror(errno)))") }
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let p = bytes.baseAddress else { return }
        var n = 0
        while n < bytes.count {
            let w = sysWrite(fd, p + n, bytes.count - n)
            if w < 0 {
                if errno == EINTR { continue }
                throw HFCheckpointError.writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
            n += w
        }
    }

    func commit() throws {
        func fail(_ what: String) -> HFCheckpointError {
            .writeFailed(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        if fsync(fd) != 0 { throw fail("fsync") }
        let r = close(fd)
        fd = -1
        if r != 0 { throw fail("close") }
        if rename(tmp, path) != 0 { throw fail("rename") }
        done = true
        fsyncDirectory(URL(fileURLWithPath: path).deletingLastPathComponent().path)
    }

    func discard() {
        if fd >= 0 { close(fd); fd = -1 }
        if !done { unlink(tmp); done = true }
    }
}

private func sysWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
