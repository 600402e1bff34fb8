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
