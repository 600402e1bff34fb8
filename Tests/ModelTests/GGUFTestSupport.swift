import Foundation
import XCTest
@testable import Model

/// Helpers for the GGUF / safetensors / HFLlama tests: the package root, the real model,
/// running python (numpy + gguf) as an independent reference, and a tiny GGUF writer.
enum GGUFTestSupport {
    /// Package root, from this file's path (Tests/ModelTests/<file>).
    static let packageRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }()

    /// The real SmolLM2 GGUF: `$EBFT_MODEL` or assets/ under the package root. Fails the test
    /// (with what to do) when absent.
    static func realModel(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let e = ProcessInfo.processInfo.environment["EBFT_MODEL"], !e.isEmpty {
            guard FileManager.default.fileExists(atPath: e) else {
                XCTFail("EBFT_MODEL=\(e) does not exist", file: file, line: line)
                throw XCTSkip("no model")
            }
            return e
        }
        let p = packageRoot + "/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        guard FileManager.default.fileExists(atPath: p) else {
            XCTFail("the SmolLM2 model is missing: expected \(p) (run `make deps`) or set EBFT_MODEL", file: file, line: line)
            throw XCTSkip("no model")
        }
        return p
    }

    /// A fresh temporary directory, removed at the end of the test.
    static func tempDir(_ test: XCTestCase) throws -> String {
        let dir = NSTemporaryDirectory() + "ebft-gguf-tests-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Runs a python3 script (with `args`), returns stdout; fails with stderr on a non-zero exit.
    static func python(_ script: String, _ args: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script] + args
        // stderr goes to a file so that a full pipe can never block the script.
        let errPath = NSTemporaryDirectory() + "ebft-py-\(getpid())-\(UUID().uuidString).err"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try p.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let errData = (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data()
        let stdout = String(decoding: outData, as: UTF8.self)
        if p.terminationStatus != 0 {
            XCTFail("python3 failed (\(p.terminationStatus)): \(String(decoding: errData, as: UTF8.self))", file: file, line: line)
            throw XCTSkip("python failed")
        }
        return stdout
    }

    static func readFloats(_ path: String) throws -> [Float] {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        return d.withUnsafeBytes { raw in
            (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

/// A minimal GGUF writer written from the format description, independent of the reader.
struct TinyGGUF {
    struct Tensor {
        var name: String
        var shape: [Int]
        var type: UInt32
        var data: [UInt8]
        var offset: Int? = nil // override the data offset (for corruption tests)
    }

    var version: UInt32 = 3
    var metadata: [(String, GGUFValue)] = []
    var tensors: [Tensor] = []
    var alignment = 32

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

    static func put<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    static func putString(_ s: String, _ out: inout [UInt8]) {
        put(UInt64(s.utf8.count), &out)
        out.append(contentsOf: s.utf8)
    }

    static func putValue(_ v: GGUFValue, _ out: inout [UInt8]) {
        switch v {
        case let .uint8(x): put(x, &out)
        case let .int8(x): put(x, &out)
        case let .uint16(x): put(x, &out)
        case let .int16(x): put(x, &out)
        case let .uint32(x): put(x, &out)
        case let .int32(x): put(x, &out)
        case let .uint64(x): put(x, &out)
        case let .int64(x): put(x, &out)
        case let .float32(x): put(x.bitPattern, &out)
        case let .float64(x): put(x.bitPattern, &out)
        case let .bool(x): put(UInt8(x ? 1 : 0), &out)
        case let .string(s): putString(s, &out)
        case let .array(a):
            put(a.first.map(typeID) ?? 0, &out)
            put(UInt64(a.count), &out)
            for e in a { putValue(e, &out) }
        }
    }

    func bytes() -> [UInt8] {
        var out = [UInt8]()
        out.append(contentsOf: Array("GGUF".utf8))
        TinyGGUF.put(version, &out)
        TinyGGUF.put(UInt64(tensors.count), &out)
        TinyGGUF.put(UInt64(metadata.count), &out)
        for (k, v) in metadata {
            TinyGGUF.putString(k, &out)
            TinyGGUF.put(TinyGGUF.typeID(v), &out)
            TinyGGUF.putValue(v, &out)
        }
        var offset = 0
        var offsets = [Int]()
        for t in tensors {
            offsets.append(t.offset ?? offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            TinyGGUF.putString(t.name, &out)
            TinyGGUF.put(UInt32(t.shape.count), &out)
            for d in t.shape { TinyGGUF.put(UInt64(d), &out) }
            TinyGGUF.put(t.type, &out)
            TinyGGUF.put(UInt64(off), &out)
        }
        while out.count % alignment != 0 { out.append(0) }
        for (i, t) in tensors.enumerated() {
            out.append(contentsOf: t.data)
            if i + 1 < tensors.count { while out.count % alignment != 0 { out.append(0) } }
        }
        return out
    }

    // Block builders (little-endian).
    static func f16(_ bits: UInt16) -> [UInt8] { [UInt8(bits & 0xff), UInt8(bits >> 8)] }
}
