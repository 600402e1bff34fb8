import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// GGUF reader: a memory-mapped, bounds-checked parser of the GGUF container (versions 2 and 3,
// little-endian) with dequantisation of F32, F16, BF16, Q8_0, Q4_0 and Q4_1 tensors to Float32.
//
// Layout (all integers little-endian):
//   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//   metadata_kv_count × (string key, u32 value_type, value)
//   tensor_count × (string name, u32 n_dims, n_dims × u64 ne, u32 ggml_type, u64 offset)
//   padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
// A string is u64 byte length + UTF-8 bytes; an array is u32 element type, u64 count, elements.

/// Everything that can be wrong with a GGUF file or with a question asked of it.
/// The description always names the file and the problem.
public enum GGUFError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case cannotOpen(path: String, reason: String)
    case badMagic(path: String, found: [UInt8])
    case unsupportedVersion(path: String, version: UInt32)
    case truncated(path: String, what: String, offset: Int, fileSize: Int)
    case invalid(path: String, problem: String)
    case missingKey(path: String, key: String)
    case wrongType(path: String, key: String, expected: String, found: String)
    case unsupportedTensorType(path: String, tensor: String, type: String)
    case noSuchTensor(path: String, name: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "GGUF file \(path): cannot open: \(reason)"
        case let .badMagic(path, found):
            let hex = found.map { String($0, radix: 16) }.joined(separator: " ")
            return "GGUF file \(path): bad magic (expected \"GGUF\" = 47 47 55 46, found \(hex)); not a GGUF file"
        case let .unsupportedVersion(path, version):
            let hint = [2, 3].contains(version.byteSwapped) ? "; this looks like a big-endian GGUF file, which is not supported" : ""
            return "GGUF file \(path): unsupported GGUF version \(version) (supported: 2, 3)\(hint)"
        case let .truncated(path, what, offset, fileSize):
            return "GGUF file \(path): truncated: \(what) at byte \(offset) runs past the end of the file (\(fileSize) bytes)"
        case let .invalid(path, problem):
            return "GGUF file \(path): \(problem)"
        case let .missingKey(path, key):
            return "GGUF file \(path): missing metadata key '\(key)'"
        case let .wrongType(path, key, expected, found):
            return "GGUF file \(path): metadata key '\(key)' has the wrong type (expected \(expected), found \(found))"
        case let .unsupportedTensorType(path, tensor, type):
            return "GGUF file \(path): tensor '\(tensor)' has type \(type), which this reader cannot dequantise (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"
        case let .noSuchTensor(path, name):
            return "GGUF file \(path): no tensor named '\(name)'"
        }
    }
}

/// A metadata value. Arrays may hold any type, including strings and nested arrays.
public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array([GGUFValue])

    /// Any integer type that fits in `Int` (not bools, not floats).
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// Floats, and integers converted to `Double`.
    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        case let .uint64(v): return Double(v)
        default: return int.map(Double.init)
        }
    }

    public var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    public var bool: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    public var array: [GGUFValue]? {
        if case let .array(a) = self { return a }
        return nil
    }

    /// The GGUF name of this value's type, e.g. "uint32" or "array[string]".
    public var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        case .bool: return "bool"
        case .string: return "string"
        case let .array(a): return "array[\(a.first?.typeName ?? "")](\(a.count))"
        }
    }

    public var description: String {
        switch self {
        case let .uint8(v): return "\(v)"
        case let .int8(v): return "\(v)"
        case let .uint16(v): return "\(v)"
        case let .int16(v): return "\(v)"
        case let .uint32(v): return "\(v)"
        case let .int32(v): return "\(v)"
        case let .uint64(v): return "\(v)"
        case let .int64(v): return "\(v)"
        case let .float32(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .bool(v): return "\(v)"
        case let .string(s): return "\"\(s)\""
        case let .array(a):
            let head = a.prefix(8).map(\.description).joined(separator: ", ")
            return "[\(head)\(a.count > 8 ? ", … (\(a.count) items)" : "")]"
        }
    }
}

/// A ggml tensor type. The supported ones can be dequantised; the other known ones have a
/// known storage size (so a file using them still opens) but `dequantize` throws.
public enum GGUFTensorType: Equatable, Hashable, Sendable, CustomStringConvertible {
    case f32, f16, bf16, q8_0, q4_0, q4_1
    /// A known ggml type this reader does not dequantise (e.g. Q4_K), by its ggml id.
    case other(UInt32)

    public init?(ggmlType id: UInt32) {
        switch id {
        case 0: self = .f32
        case 1: self = .f16
        case 2: self = .q4_0
        case 3: self = .q4_1
        case 8: self = .q8_0
        case 30: self = .bf16
        default:
            guard GGUFTensorType.otherLayouts[id] != nil else { return nil }
            self = .other(id)
        }
    }

    public var ggmlType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 8
        case .bf16: return 30
        case let .other(id): return id
        }
    }

    /// Elements per block and bytes per block.
    public var blockLayout: (elements: Int, bytes: Int) {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .q8_0: return (32, 34)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case let .other(id): return GGUFTensorType.otherLayouts[id]!.layout
        }
    }

    public var isSupported: Bool {
        if case .other = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q8_0: return "Q8_0"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case let .other(id): return GGUFTensorType.otherLayouts[id].map { "\($0.name) (ggml type \(id))" } ?? "ggml type \(id)"
        }
    }

    // Storage layouts of the other ggml types (from ggml's type traits), so that files using
    // them can be opened and their metadata read.
    static let otherLayouts: [UInt32: (name: String, layout: (elements: Int, bytes: Int))] = [
        6: ("Q5_0", (32, 22)), 7: ("Q5_1", (32, 24)), 9: ("Q8_1", (32, 36)),
        10: ("Q2_K", (256, 84)), 11: ("Q3_K", (256, 110)), 12: ("Q4_K", (256, 144)),
        13: ("Q5_K", (256, 176)), 14: ("Q6_K", (256, 210)), 15: ("Q8_K", (256, 292)),
        16: ("IQ2_XXS", (256, 66)), 17: ("IQ2_XS", (256, 74)), 18: ("IQ3_XXS", (256, 98)),
        19: ("IQ1_S", (256, 50)), 20: ("IQ4_NL", (32, 18)), 21: ("IQ3_S", (256, 110)),
        22: ("IQ2_S", (256, 82)), 23: ("IQ4_XS", (256, 136)), 24: ("I8", (1, 1)),
        25: ("I16", (1, 2)), 26: ("I32", (1, 4)), 27: ("I64", (1, 8)), 28: ("F64", (1, 8)),
        29: ("IQ1_M", (256, 56)), 34: ("TQ1_0", (256, 54)), 35: ("TQ2_0", (256, 66)),
    ]
}

/// One entry of the tensor table.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    /// GGUF order: `shape[0]` (ne[0]) is the fastest-varying dimension. A 2-D weight with
    /// shape `[in, out]` is PyTorch's row-major `[out, in]`.
    public let shape: [Int]
    public let type: GGUFTensorType
    /// Byte offset of the data, relative to the start of the data section (`GGUFFile.dataOffset`).
    public let offset: Int
    public let byteCount: Int
    public let elementCount: Int

    /// Length of one row (ne[0]) and the number of rows (product of the other dims).
    public var rowLength: Int { shape.first ?? 1 }
    public var rowCount: Int { shape.count <= 1 ? 1 : shape.dropFirst().reduce(1, *) }
}

/// A memory-mapped GGUF file: metadata, the tensor table and dequantisation. Immutable after
/// `init` (the mapping is read-only), so it may be shared between threads.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let fileSize: Int
    /// `general.alignment`, or 32.
    public let alignment: Int
    /// Absolute byte offset of the data section.
    public let dataOffset: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    private let tensorIndex: [String: Int]
    private let file: MappedFile

    public init(path: String) throws {
        self.path = path
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let f as MappedFile.Failure {
            throw GGUFError.cannotOpen(path: path, reason: f.reason)
        }
        self.file = file
        fileSize = file.size
        let parsed = try GGUFParser.parse(file.bytes, path: path)
        version = parsed.version
        alignment = parsed.alignment
        dataOffset = parsed.dataOffset
        metadata = parsed.metadata
        metadataKeys = parsed.keys
        tensors = parsed.tensors
        tensorIndex = parsed.index
    }

    private var base: UnsafeRawPointer? { file.base }

    // MARK: metadata

    private func value(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw GGUFError.missingKey(path: path, key: key) }
        return v
    }

    public func int(_ key: String) throws -> Int {
        let v = try value(key)
        guard let i = v.int else { throw GGUFError.wrongType(path: path, key: key, expected: "integer", found: v.typeName) }
        return i
    }

    public func double(_ key: String) throws -> Double {
        let v = try value(key)
        guard let d = v.double else { throw GGUFError.wrongType(path: path, key: key, expected: "number", found: v.typeName) }
        return d
    }

    public func string(_ key: String) throws -> String {
        let v = try value(key)
        guard let s = v.string else { throw GGUFError.wrongType(path: path, key: key, expected: "string", found: v.typeName) }
        return s
    }

    public func bool(_ key: String) throws -> Bool {
        let v = try value(key)
        guard let b = v.bool else { throw GGUFError.wrongType(path: path, key: key, expected: "bool", found: v.typeName) }
        return b
    }

    public func stringArray(_ key: String) throws -> [String] {
        let v = try value(key)
        guard case let .array(items) = v else {
            throw GGUFError.wrongType(path: path, key: key, expected: "array[string]", found: v.typeName)
        }
        var out = [String]()
        out.reserveCapacity(items.count)
        for item in items {
            guard case let .string(s) = item else {
                throw GGUFError.wrongType(path: path, key: key, expected: "array[string]", found: v.typeName)
            }
            out.append(s)
        }
        return out
    }

    public func intArray(_ key: String) throws -> [Int] {
        let v = try value(key)
        guard case let .array(items) = v else {
            throw GGUFError.wrongType(path: path, key: key, expected: "array[integer]", found: v.typeName)
        }
        var out = [Int]()
        out.reserveCapacity(items.count)
        for item in items {
            guard let i = item.int else {
                throw GGUFError.wrongType(path: path, key: key, expected: "array[integer]", found: v.typeName)
            }
            out.append(i)
        }
        return out
    }

    // MARK: tensors

    public func tensor(named name: String) throws -> GGUFTensorInfo {
        guard let i = tensorIndex[name] else { throw GGUFError.noSuchTensor(path: path, name: name) }
        return tensors[i]
    }

    /// The raw bytes of a tensor (valid while this object lives).
    public func rawBytes(_ info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { $0 + dataOffset + info.offset }, count: info.byteCount)
    }

    /// The whole tensor dequantised to Float32, in file element order.
    public func floats(_ name: String) throws -> [Float] {
        let info = try tensor(named: name)
        return try [Float](unsafeUninitializedCapacity: info.elementCount) { buf, n in
            if let p = buf.baseAddress { try dequantize(info, into: p) }
            n = info.elementCount
        }
    }

    /// Dequantises the whole tensor into `out` (room for `info.elementCount` floats).
    public func dequantize(_ info: GGUFTensorInfo, into out: UnsafeMutablePointer<Float>) throws {
        try dequantizeRows(info, rows: 0..<info.rowCount, into: out)
    }

    /// Dequantises rows `rows` (each `info.rowLength` = ne[0] elements) into `out`, e.g. a few
    /// rows of the token embedding.
    public func dequantizeRows(_ info: GGUFTensorInfo, rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
        guard let i = tensorIndex[info.name], tensors[i] == info else {
            throw GGUFError.noSuchTensor(path: path, name: info.name)
        }
        guard info.type.isSupported else {
            throw GGUFError.unsupportedTensorType(path: path, tensor: info.name, type: info.type.description)
        }
        guard rows.lowerBound >= 0, rows.upperBound <= info.rowCount else {
            throw GGUFError.invalid(path: path, problem: "rows \(rows) out of range for tensor '\(info.name)' with \(info.rowCount) rows")
        }
        if rows.isEmpty || info.elementCount == 0 { return }
        let (blockElems, blockBytes) = info.type.blockLayout
        let rowBytes = info.rowLength / blockElems * blockBytes
        let src = base! + dataOffset + info.offset + rows.lowerBound * rowBytes
        let blocks = rows.count * info.rowLength / blockElems
        GGUFDequant.run(info.type, src: src, blocks: blocks, out: out)
    }
}

// MARK: - parsing

/// A bounds-checked little-endian reader over the mapped file.
struct GGUFCursor {
    let buf: UnsafeRawBufferPointer
    let path: String
    var pos = 0

    var remaining: Int { buf.count - pos }

    @inline(__always)
    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n < 0 || n > buf.count - pos {
            throw GGUFError.truncated(path: path, what: what(), offset: pos, fileSize: buf.count)
        }
    }

    @inline(__always)
    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = buf.loadUnaligned(fromByteOffset: pos, as: T.self)
        pos += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readCount(_ what: @autoclosure () -> String) throws -> Int {
        let start = pos
        let v = try read(UInt64.self, what())
        guard let n = Int(exactly: v), n <= buf.count else {
            throw GGUFError.invalid(path: path, problem: "\(what()) at byte \(start) is \(v), larger than the file (\(buf.count) bytes)")
        }
        return n
    }

    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let n = try readCount("length of \(what())")
        try need(n, what())
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: buf[pos..<(pos + n)]), as: UTF8.self)
        pos += n
        return s
    }
}

struct GGUFParsed {
    var version: UInt32
    var alignment: Int
    var dataOffset: Int
    var metadata: [String: GGUFValue]
    var keys: [String]
    var tensors: [GGUFTensorInfo]
    var index: [String: Int]
}

enum GGUFParser {
    static let maxArrayDepth = 8

    static func parse(_ buf: UnsafeRawBufferPointer, path: String) throws -> GGUFParsed {
        var c = GGUFCursor(buf: buf, path: path)
        if buf.count < 4 {
            throw GGUFError.truncated(path: path, what: "magic", offset: 0, fileSize: buf.count)
        }
        let magic = Array(buf[0..<4])
        if magic != Array("GGUF".utf8) { throw GGUFError.badMagic(path: path, found: magic) }
        c.pos = 4
        let version = try c.read(UInt32.self, "version")
        if version != 2 && version != 3 {
            throw GGUFError.unsupportedVersion(path: path, version: version)
        }
        let tensorCount = try c.readCount("tensor count")
        let kvCount = try c.readCount("metadata key/value count")
        // Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info 24.
        if kvCount > c.remaining / 13 {
            throw GGUFError.invalid(path: path, problem: "metadata count \(kvCount) cannot fit in the file (\(buf.count) bytes)")
        }
        if tensorCount > c.remaining / 24 {
            throw GGUFError.invalid(path: path, problem: "tensor count \(tensorCount) cannot fit in the file (\(buf.count) bytes)")
        }

        var metadata = [String: GGUFValue](minimumCapacity: kvCount)
        var keys = [String]()
        keys.reserveCapacity(kvCount)
        for i in 0..<kvCount {
            let key = try c.readString("metadata key #\(i)")
            let typeAt = c.pos
            let type = try c.read(UInt32.self, "type of metadata '\(key)'")
            let value = try readValue(&c, type: type, typeAt: typeAt, key: key, depth: 0)
            if metadata.updateValue(value, forKey: key) != nil {
                throw GGUFError.invalid(path: path, problem: "duplicate metadata key '\(key)'")
            }
            keys.append(key)
        }

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.int, v > 0, v <= 1 << 20, v & (v - 1) == 0 else {
                throw GGUFError.invalid(path: path, problem: "general.alignment = \(a) is not a positive power of two")
            }
            alignment = v
        }

        struct RawInfo { var name: String; var shape: [Int]; var type: GGUFTensorType; var offset: Int; var elements: Int }
        var raw = [RawInfo]()
        raw.reserveCapacity(tensorCount)
        var index = [String: Int](minimumCapacity: tensorCount)
        for i in 0..<tensorCount {
            let name = try c.readString("name of tensor #\(i)")
            let nDims = try c.read(UInt32.self, "dimension count of tensor '\(name)'")
            guard nDims >= 1 && nDims <= 4 else {
                throw GGUFError.invalid(path: path, problem: "tensor '\(name)' has \(nDims) dimensions (expected 1 to 4)")
            }
            var shape = [Int]()
            var elements = 1
            for d in 0..<Int(nDims) {
                let v = try c.read(UInt64.self, "dimension \(d) of tensor '\(name)'")
                guard let n = Int(exactly: v) else {
                    throw GGUFError.invalid(path: path, problem: "tensor '\(name)' dimension \(d) = \(v) is too large")
                }
                let (p, overflow) = elements.multipliedReportingOverflow(by: n)
                if overflow || p > Int(Int32.max) * 64 {
                    throw GGUFError.invalid(path: path, problem: "tensor '\(name)' shape \(shape + [n]) has too many elements")
                }
                elements = p
                shape.append(n)
            }
            let typeID = try c.read(UInt32.self, "type of tensor '\(name)'")
            guard let type = GGUFTensorType(ggmlType: typeID) else {
                throw GGUFError.unsupportedTensorType(path: path, tensor: name, type: "unknown ggml type \(typeID)")
            }
            let off = try c.read(UInt64.self, "data offset of tensor '\(name)'")
            guard let offset = Int(exactly: off), offset <= buf.count else {
                throw GGUFError.invalid(path: path, problem: "tensor '\(name)' data offset \(off) is past the end of the file (\(buf.count) bytes)")
            }
            if offset % alignment != 0 {
                throw GGUFError.invalid(path: path, problem: "tensor '\(name)' data offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            let blockElems = type.blockLayout.elements
            if shape[0] % blockElems != 0 {
                throw GGUFError.invalid(path: path, problem: "tensor '\(name)' of type \(type): element count \(elements) / row length \(shape[0]) is not a multiple of the block size \(blockElems)")
            }
            if index.updateValue(raw.count, forKey: name) != nil {
                throw GGUFError.invalid(path: path, problem: "duplicate tensor name '\(name)'")
            }
            raw.append(RawInfo(name: name, shape: shape, type: type, offset: offset, elements: elements))
        }

        let dataOffset = (c.pos + alignment - 1) / alignment * alignment
        if dataOffset > buf.count && tensorCount > 0 {
            throw GGUFError.truncated(path: path, what: "tensor data section", offset: c.pos, fileSize: buf.count)
        }
        var tensors = [GGUFTensorInfo]()
        tensors.reserveCapacity(raw.count)
        for r in raw {
            let (elems, bytes) = r.type.blockLayout
            let byteCount = r.elements / elems * bytes
            let end = dataOffset + r.offset + byteCount
            if end > buf.count {
                throw GGUFError.invalid(path: path, problem: "truncated: data of tensor '\(r.name)' (\(byteCount) bytes at data offset \(r.offset), file bytes \(dataOffset + r.offset)..<\(end)) runs past the end of the file (\(buf.count) bytes)")
            }
            tensors.append(GGUFTensorInfo(name: r.name, shape: r.shape, type: r.type, offset: r.offset,
                                          byteCount: byteCount, elementCount: r.elements))
        }
        return GGUFParsed(version: version, alignment: alignment, dataOffset: dataOffset, metadata: metadata,
                          keys: keys, tensors: tensors, index: index)
    }

    static func typeName(_ t: UInt32) -> String {
        ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
         "uint64", "int64", "float64"].dropFirst(Int(t)).first ?? "unknown type \(t)"
    }

    static func readValue(_ c: inout GGUFCursor, type: UInt32, typeAt: Int, key: String, depth: Int) throws -> GGUFValue {
        let what = "value of metadata '\(key)'"
        switch type {
        case 0: return .uint8(try c.read(UInt8.self, what))
        case 1: return .int8(try c.read(Int8.self, what))
        case 2: return .uint16(try c.read(UInt16.self, what))
        case 3: return .int16(try c.read(Int16.self, what))
        case 4: return .uint32(try c.read(UInt32.self, what))
        case 5: return .int32(try c.read(Int32.self, what))
        case 6: return .float32(Float(bitPattern: try c.read(UInt32.self, what)))
        case 7:
            let at = c.pos
            let b = try c.read(UInt8.self, what)
            guard b <= 1 else {
                throw GGUFError.invalid(path: c.path, problem: "metadata '\(key)': bool at byte \(at) has value \(b) (expected 0 or 1)")
            }
            return .bool(b == 1)
        case 8: return .string(try c.readString(what))
        case 9:
            if depth >= maxArrayDepth {
                throw GGUFError.invalid(path: c.path, problem: "metadata '\(key)': arrays nested deeper than \(maxArrayDepth)")
            }
            let elemAt = c.pos
            let elemType = try c.read(UInt32.self, "element type of array '\(key)'")
            let count = try c.readCount("element count of array '\(key)'")
            let minSize: Int
            switch elemType {
            case 0, 1, 7: minSize = 1
            case 2, 3: minSize = 2
            case 4, 5, 6: minSize = 4
            case 8, 10, 11, 12: minSize = 8
            case 9: minSize = 12
            default:
                throw GGUFError.invalid(path: c.path, problem: "metadata '\(key)': unknown array element type \(elemType) at byte \(elemAt)")
            }
            if count > c.remaining / minSize {
                throw GGUFError.truncated(path: c.path, what: "array '\(key)' of \(count) \(typeName(elemType)) elements",
                                          offset: elemAt, fileSize: c.buf.count)
            }
            var items = [GGUFValue]()
            items.reserveCapacity(count)
            if elemType == 8 {
                // Fast path for the tokenizer's big string arrays.
                for _ in 0..<count {
                    let n = try c.readCount("length of string in array '\(key)'")
                    try c.need(n, "string in array '\(key)'")
                    items.append(.string(String(decoding: UnsafeRawBufferPointer(rebasing: c.buf[c.pos..<(c.pos + n)]), as: UTF8.self)))
                    c.pos += n
                }
            } else {
                for _ in 0..<count {
                    items.append(try readValue(&c, type: elemType, typeAt: elemAt, key: key, depth: depth + 1))
                }
            }
            return .array(items)
        case 10: return .uint64(try c.read(UInt64.self, what))
        case 11: return .int64(try c.read(Int64.self, what))
        case 12: return .float64(Double(bitPattern: try c.read(UInt64.self, what)))
        default:
            throw GGUFError.invalid(path: c.path, problem: "metadata '\(key)': unknown value type \(type) at byte \(typeAt)")
        }
    }
}

// MARK: - dequantisation

enum GGUFDequant {
    /// IEEE half → single, exact (subnormals, infinities and NaN payloads preserved).
    @inline(__always)
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32(h >> 10) & 0x1f
        var mant = UInt32(h & 0x3ff)
        if exp == 0x1f { return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13)) }
        if exp != 0 { return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13)) }
        if mant == 0 { return Float(bitPattern: sign) }
        var e: UInt32 = 113
        while mant & 0x400 == 0 { mant <<= 1; e -= 1 }
        return Float(bitPattern: sign | (e << 23) | ((mant & 0x3ff) << 13))
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ byteOffset: Int) -> Float {
        halfToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: byteOffset, as: UInt16.self)))
    }

    /// Dequantises `blocks` consecutive blocks of type `type` from `src` into `out`.
    static func run(_ type: GGUFTensorType, src: UnsafeRawPointer, blocks: Int, out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            for i in 0..<blocks {
                out[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16:
            for i in 0..<blocks { out[i] = half(src, 2 * i) }
        case .bf16:
            for i in 0..<blocks {
                let b = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                out[i] = Float(bitPattern: UInt32(b) << 16)
            }
        case .q8_0:
            // block: f16 d, int8 q[32]; x = q·d
            for b in 0..<blocks {
                let blk = src + b * 34
                let d = half(blk, 0)
                let q = (blk + 2).assumingMemoryBound(to: Int8.self)
                let o = out + b * 32
                for j in 0..<32 { o[j] = Float(q[j]) * d }
            }
        case .q4_0:
            // block: f16 d, 16 bytes; element j < 16 is the low nibble of byte j, j+16 the high one; x = (q−8)·d
            for b in 0..<blocks {
                let blk = src + b * 18
                let d = half(blk, 0)
                let q = (blk + 2).assumingMemoryBound(to: UInt8.self)
                let o = out + b * 32
                for j in 0..<16 {
                    let byte = q[j]
                    o[j] = Float(Int32(byte & 0x0f) - 8) * d
                    o[j + 16] = Float(Int32(byte >> 4) - 8) * d
                }
            }
        case .q4_1:
            // block: f16 d, f16 m, 16 bytes of nibbles (as Q4_0); x = q·d + m
            for b in 0..<blocks {
                let blk = src + b * 20
                let d = half(blk, 0)
                let m = half(blk, 2)
                let q = (blk + 4).assumingMemoryBound(to: UInt8.self)
                let o = out + b * 32
                for j in 0..<16 {
                    let byte = q[j]
                    o[j] = Float(byte & 0x0f) * d + m
                    o[j + 16] = Float(byte >> 4) * d + m
                }
            }
        case .other:
            preconditionFailure("unsupported type reached the dequantiser")
        }
    }
}
