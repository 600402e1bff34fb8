import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// safetensors: u64 little-endian header length N | N bytes of UTF-8 JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// | the byte buffer (offsets relative to its start, tensors contiguous, little-endian, row-major).

/// Everything that can be wrong with a safetensors file; the description names the file.
public enum SafeTensorsError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var errorDescription: String? { description }

    case cannotOpen(path: String, reason: String)
    case truncated(path: String, problem: String)
    case invalidHeader(path: String, problem: String)
    case noSuchTensor(path: String, name: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    case badArgument(path: String, problem: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "safetensors file \(path): cannot open: \(reason)"
        case let .truncated(path, problem): return "safetensors file \(path): truncated: \(problem)"
        case let .invalidHeader(path, problem): return "safetensors file \(path): invalid header: \(problem)"
        case let .noSuchTensor(path, name): return "safetensors file \(path): no tensor named '\(name)'"
        case let .unsupportedDType(path, tensor, dtype):
            return "safetensors file \(path): tensor '\(tensor)' has dtype \(dtype), which cannot be read as Float32 (supported: F32, F16, BF16)"
        case let .badArgument(path, problem): return "safetensors file \(path): cannot write: \(problem)"
        case let .writeFailed(path, reason): return "safetensors file \(path): write failed: \(reason)"
        }
    }
}

public struct SafeTensorsInfo: Equatable, Sendable {
    public let name: String
    /// e.g. "F32", "F16", "BF16" (other standard dtypes are accepted but not converted).
    public let dtype: String
    /// Row-major, slowest-varying first (PyTorch order).
    public let shape: [Int]
    /// Byte range in the data buffer (relative to `SafeTensorsFile.dataOffset`).
    public let begin: Int
    public let end: Int
    public var byteCount: Int { end - begin }
    public var elementCount: Int { shape.reduce(1, *) }
}

public enum SafeTensors {
    /// Bytes per element of the standard safetensors dtypes.
    public static let dtypeSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "U64": 8, "F64": 8,
    ]

    /// Largest header we accept (the format's own reader caps it at 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Writes F32 tensors (in the given order) and string metadata atomically: a temporary file
    /// in the same directory, fsync, rename over `path`.
    public static func write(tensors: [(name: String, shape: [Int], data: UnsafeBufferPointer<Float>)],
                             metadata: [String: String] = [:], to path: String) throws {
        try writeImpl(entries: tensors.map { ($0.name, $0.shape, $0.data.count) }, metadata: metadata, path: path) { i, put in
            try put(UnsafeRawBufferPointer(tensors[i].data))
        }
    }

    /// Convenience overload taking arrays.
    public static func write(tensors: [(name: String, shape: [Int], data: [Float])],
                             metadata: [String: String] = [:], to path: String) throws {
        try writeImpl(entries: tensors.map { ($0.name, $0.shape, $0.data.count) }, metadata: metadata, path: path) { i, put in
            try tensors[i].data.withUnsafeBytes { try put($0) }
        }
    }

    /// Header from `entries`; `data(i, put)` hands tensor i's little-endian bytes to `put`.
    /// Every tensor has `dtype` (F32, or BF16 / F16 with 2 bytes per element).
    static func writeImpl(entries tensors: [(name: String, shape: [Int], count: Int)], metadata: [String: String], path: String,
                          dtype: String = "F32",
                          data: (Int, (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        guard let size = dtypeSizes[dtype] else {
            throw SafeTensorsError.badArgument(path: path, problem: "unknown dtype \(dtype)")
        }
        var names = Set<String>()
        var entries = [String]()
        var offset = 0
        for t in tensors {
            if t.name == "__metadata__" || t.name.isEmpty {
                throw SafeTensorsError.badArgument(path: path, problem: "invalid tensor name '\(t.name)'")
            }
            if !names.insert(t.name).inserted {
                throw SafeTensorsError.badArgument(path: path, problem: "duplicate tensor name '\(t.name)'")
            }
            if t.shape.contains(where: { $0 < 0 }) {
                throw SafeTensorsError.badArgument(path: path, problem: "tensor '\(t.name)' has a negative dimension in \(t.shape)")
            }
            let count = t.shape.reduce(1, *)
            if count != t.count {
                throw SafeTensorsError.badArgument(path: path, problem: "tensor '\(t.name)' has shape \(t.shape) (\(count) elements) but \(t.count) values")
            }
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(t.name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size * count)]}")
            offset += size * count
        }
        if !metadata.isEmpty {
            let kv = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.insert("\"__metadata__\":{\(kv.joined(separator: ","))}", at: 0)
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        // Pad with spaces so the data buffer starts 8-byte aligned (as the reference writer does).
        while header.count % 8 != 0 { header.append(0x20) }

        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        if fd < 0 { throw SafeTensorsError.writeFailed(path: path, reason: "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(tmp) }
        }
        func put(_ bytes: UnsafeRawBufferPointer) throws {
            guard let p = bytes.baseAddress else { return }
            var done = 0
            while done < bytes.count {
                let w = posixWrite(fd, p + done, bytes.count - done)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw SafeTensorsError.writeFailed(path: path, reason: String(cString: strerror(errno)))
                }
                done += w
            }
        }
        var len = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &len) { try put($0) }
        try header.withUnsafeBytes { try put($0) }
        // Floats are stored little-endian; this target is little-endian.
        for i in tensors.indices { try data(i, put) }
        if fsync(fd) != 0 { throw SafeTensorsError.writeFailed(path: path, reason: "fsync: \(String(cString: strerror(errno)))") }
        closed = true
        if close(fd) != 0 { throw SafeTensorsError.writeFailed(path: path, reason: "close: \(String(cString: strerror(errno)))") }
        if rename(tmp, path) != 0 {
            throw SafeTensorsError.writeFailed(path: path, reason: "rename: \(String(cString: strerror(errno)))")
        }
        renamed = true
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    static func jsonString(_ s: String) -> String { jsonQuoted(s) }
}

/// A memory-mapped safetensors file with a validated header. Immutable after `init`, so it may
/// be shared between threads.
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    public let fileSize: Int
    /// Absolute offset of the data buffer (8 + header length).
    public let dataOffset: Int
    /// Tensors in data-offset order.
    public let tensors: [SafeTensorsInfo]
    public let metadata: [String: String]
    private let index: [String: Int]
    private let file: MappedFile

    public init(path: String) throws {
        self.path = path
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let f as MappedFile.Failure {
            throw SafeTensorsError.cannotOpen(path: path, reason: f.reason)
        }
        self.file = file
        fileSize = file.size
        let parsed = try SafeTensorsFile.parse(file.bytes, path: path)
        dataOffset = parsed.dataOffset
        tensors = parsed.tensors
        metadata = parsed.metadata
        var idx = [String: Int]()
        for (i, t) in parsed.tensors.enumerated() { idx[t.name] = i }
        index = idx
    }

    private var base: UnsafeRawPointer? { file.base }

    public func tensor(named name: String) throws -> SafeTensorsInfo {
        guard let i = index[name] else { throw SafeTensorsError.noSuchTensor(path: path, name: name) }
        return tensors[i]
    }

    /// The raw bytes of a tensor (valid while this object lives).
    public func rawBytes(_ info: SafeTensorsInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { $0 + dataOffset + info.begin }, count: info.byteCount)
    }

    public func floats(_ name: String) throws -> [Float] {
        let info = try tensor(named: name)
        return try [Float](unsafeUninitializedCapacity: info.elementCount) { buf, n in
            if let p = buf.baseAddress { try copy(name, into: p) }
            n = info.elementCount
        }
    }

    /// Converts tensor `name` to Float32 into `out` (room for its element count).
    public func copy(_ name: String, into out: UnsafeMutablePointer<Float>) throws {
        let info = try tensor(named: name)
        let n = info.elementCount
        if n == 0 { return }
        let src = base! + dataOffset + info.begin
        switch info.dtype {
        case "F32":
            UnsafeMutableRawPointer(out).copyMemory(from: src, byteCount: 4 * n)
        case "F16":
            for i in 0..<n {
                out[i] = GGUFDequant.halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case "BF16":
            for i in 0..<n {
                out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
        default:
            throw SafeTensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtype)
        }
    }

    static func parse(_ buf: UnsafeRawBufferPointer, path: String)
        throws -> (dataOffset: Int, tensors: [SafeTensorsInfo], metadata: [String: String]) {
        func bad(_ s: String) -> SafeTensorsError { .invalidHeader(path: path, problem: s) }
        if buf.count < 8 {
            throw SafeTensorsError.truncated(path: path, problem: "the file has \(buf.count) bytes, fewer than the 8-byte header length")
        }
        let n64 = UInt64(littleEndian: buf.loadUnaligned(as: UInt64.self))
        if n64 > UInt64(SafeTensors.maxHeaderBytes) {
            throw bad("header length \(n64) is larger than the \(SafeTensors.maxHeaderBytes)-byte limit")
        }
        let n = Int(n64)
        if n < 2 { throw bad("header length \(n) is too small for a JSON object") }
        if 8 + n > buf.count {
            throw SafeTensorsError.truncated(path: path, problem: "header of \(n) bytes runs past the end of the file (\(buf.count) bytes)")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: buf[8..<(8 + n)])
        if headerBytes[0] != UInt8(ascii: "{") { throw bad("header does not start with '{'") }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes), options: [])
        } catch {
            throw bad("header is not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = json as? [String: Any] else { throw bad("header is not a JSON object") }

        func int(_ v: Any) -> Int? {
            guard let num = v as? NSNumber else { return nil }
            let d = num.doubleValue
            guard d.rounded() == d, d >= 0, d < 9.0e15 else { return nil }
            return num.intValue
        }

        var metadata = [String: String]()
        var tensors = [SafeTensorsInfo]()
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad("__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let t = value as? [String: Any] else { throw bad("entry '\(name)' is not an object") }
            guard let dtype = t["dtype"] as? String else { throw bad("tensor '\(name)' has no string 'dtype'") }
            guard let size = SafeTensors.dtypeSizes[dtype] else { throw bad("tensor '\(name)' has unknown dtype '\(dtype)'") }
            guard let shapeAny = t["shape"] as? [Any] else { throw bad("tensor '\(name)' has no 'shape' array") }
            var shape = [Int]()
            var count = 1
            for d in shapeAny {
                guard let v = int(d) else { throw bad("tensor '\(name)' has a shape entry that is not a non-negative integer: \(d)") }
                let (p, o) = count.multipliedReportingOverflow(by: v)
                if o || p > buf.count { throw bad("tensor '\(name)' shape \(shapeAny) has more elements than the file has bytes") }
                count = p
                shape.append(v)
            }
            guard let offs = t["data_offsets"] as? [Any], offs.count == 2, let b = int(offs[0]), let e = int(offs[1]) else {
                throw bad("tensor '\(name)' has no 'data_offsets' pair of non-negative integers")
            }
            if e < b { throw bad("tensor '\(name)' data_offsets [\(b), \(e)] end before they begin") }
            if e - b != count * size {
                throw bad("tensor '\(name)' data_offsets [\(b), \(e)] span \(e - b) bytes, but shape \(shape) of \(dtype) needs \(count * size)")
            }
            tensors.append(SafeTensorsInfo(name: name, dtype: dtype, shape: shape, begin: b, end: e))
        }
        tensors.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        let dataSize = buf.count - 8 - n
        var expected = 0
        for t in tensors {
            if t.begin != expected {
                throw bad(t.begin < expected
                    ? "tensor '\(t.name)' data_offsets [\(t.begin), \(t.end)] overlap the previous tensor (which ends at \(expected))"
                    : "gap in the data buffer: tensor '\(t.name)' begins at \(t.begin), the previous tensor ends at \(expected)")
            }
            expected = t.end
        }
        if expected > dataSize {
            throw SafeTensorsError.truncated(path: path, problem: "tensor data needs \(expected) bytes after the header but the file has \(dataSize)")
        }
        if expected < dataSize {
            throw bad("the data buffer has \(dataSize) bytes but the tensors cover only \(expected) (trailing bytes)")
        }
        return (8 + n, tensors, metadata)
    }
}

private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }
