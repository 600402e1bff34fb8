import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
