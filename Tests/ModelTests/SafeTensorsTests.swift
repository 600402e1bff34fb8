import Foundation
import XCTest
@testable import Model

final class SafeTensorsTests: XCTestCase {
    typealias S = GGUFTestSupport

    private func assertSTError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                               _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error mentioning \(fragments)", file: file, line: line)
        } catch let e as SafeTensorsError {
            for f in fragments {
                XCTAssertTrue(e.description.contains(f), "'\(e.description)' does not mention '\(f)'", file: file, line: line)
            }
        } catch {
            XCTFail("expected a SafeTensorsError, got \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    /// Special values whose bits must survive: NaN payloads (quiet and signalling), −0.0,
    /// denormals, infinities, extremes.
    static let specials: [Float] = [
        Float(bitPattern: 0x7fc1_2345), Float(bitPattern: 0xffa0_0001), Float(bitPattern: 0x7f80_0001),
        -0.0, 0.0, Float(bitPattern: 0x0000_0001), Float(bitPattern: 0x807f_ffff), .leastNormalMagnitude,
        .infinity, -.infinity, .greatestFiniteMagnitude, -1.5, 3.1415927,
    ]

    func testRoundTripIsBitIdentical() throws {
        let dir = try S.tempDir(self)
        let path = dir + "/model.safetensors"
        var rng = SplitMix(seed: 99)
        let big = (0..<(7 * 33)).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        let tensors: [(name: String, shape: [Int], data: [Float])] = [
            ("model.embed_tokens.weight", [7, 33], big),
            ("specials", [Self.specials.count], Self.specials),
            ("scalar", [], [42]),
            ("empty", [0, 4], []),
            ("wëird \"name\"\n\\", [1, 1, 2], [1, 2]),
        ]
        let meta = ["format": "pt", "step": "17", "quote\"and\\slash": "ünïcode\n✓"]
        try SafeTensors.write(tensors: tensors, metadata: meta, to: path)
        // Only the final file remains (the temporary one was renamed).
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["model.safetensors"])

        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.metadata, meta)
        XCTAssertEqual(f.dataOffset % 8, 0)
        XCTAssertEqual(Set(f.tensors.map(\.name)), Set(tensors.map(\.name)))
        for t in tensors {
            let info = try f.tensor(named: t.name)
            XCTAssertEqual(info.dtype, "F32")
            XCTAssertEqual(info.shape, t.shape)
            let got = try f.floats(t.name)
            XCTAssertEqual(got.map(\.bitPattern), t.data.map(\.bitPattern), t.name)
        }
        // Copy into a pointer.
        var out = [Float](repeating: 0, count: Self.specials.count)
        try out.withUnsafeMutableBufferPointer { try f.copy("specials", into: $0.baseAddress!) }
        XCTAssertEqual(out.map(\.bitPattern), Self.specials.map(\.bitPattern))
        assertSTError([path, "no tensor named 'nope'"]) { _ = try f.floats("nope") }

        // Overwrite atomically with the UnsafeBufferPointer overload.
        try big.withUnsafeBufferPointer { buf in
            try SafeTensors.write(tensors: [(name: "w", shape: [big.count], data: buf)], to: path)
        }
        let g = try SafeTensorsFile(path: path)
        XCTAssertEqual(g.tensors.map(\.name), ["w"])
        XCTAssertEqual(g.metadata, [:])
        XCTAssertEqual(try g.floats("w").map(\.bitPattern), big.map(\.bitPattern))
    }

    func testWrittenFileReadsInPythonNumpy() throws {
        let dir = try S.tempDir(self)
        let path = dir + "/m.safetensors"
        let a: [Float] = (0..<12).map { Float($0) * 0.25 - 1 }
        try SafeTensors.write(tensors: [(name: "a", shape: [3, 4], data: a), (name: "b", shape: [2], data: [-0.0, 7])],
                              metadata: ["k": "v"], to: path)
        let script = """
        import sys, json, struct, numpy as np
        raw = open(sys.argv[1], "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        h = json.loads(raw[8:8 + n])
        buf = raw[8 + n:]
        out = {"meta": h.pop("__metadata__")}
        for k, v in sorted(h.items()):
            b, e = v["data_offsets"]
            x = np.frombuffer(buf[b:e], dtype="<f4").reshape(v["shape"])
            out[k] = [v["dtype"], list(x.shape), [float(y) for y in x.ravel()], bool(np.signbit(x.ravel()).any())]
        print(json.dumps(out, sort_keys=True))
        """
        let outText = try S.python(script, [path])
        let out = try JSONSerialization.jsonObject(with: Data(outText.utf8)) as! [String: Any]
        XCTAssertEqual(out["meta"] as? [String: String], ["k": "v"])
        let ra = out["a"] as! [Any]
        XCTAssertEqual(ra[0] as? String, "F32")
        XCTAssertEqual(ra[1] as? [Int], [3, 4])
        XCTAssertEqual((ra[2] as! [NSNumber]).map(\.floatValue), a)
        let rb = out["b"] as! [Any]
        XCTAssertEqual(rb[3] as? Bool, true) // -0.0 kept its sign
    }

    /// Builds a safetensors file by hand: header JSON + data bytes.
    private func handmade(_ header: String, _ data: [UInt8], headerLength: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        var out = [UInt8]()
        TinyGGUF.put(headerLength ?? UInt64(h.count), &out)
        return out + h + data
    }

    func testReadsF16AndBF16() throws {
        let dir = try S.tempDir(self)
        let path = dir + "/h.safetensors"
        let half: [UInt16] = [0x3c00, 0xc000, 0x0001, 0x7bff, 0xfc00, 0x8000]
        let bf: [UInt16] = [0x3f80, 0xc040, 0x7f80, 0x0001]
        let data = half.flatMap(TinyGGUF.f16) + bf.flatMap(TinyGGUF.f16)
        let header = #"{"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[12,20]}}"#
        try S.write(handmade(header, data), to: path)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.tensors.map(\.name), ["h", "b"]) // in data order
        XCTAssertEqual(try f.floats("h").map(\.bitPattern),
                       ([1, -2, 0x1p-24, 65504, -.infinity, -0.0] as [Float]).map(\.bitPattern))
        XCTAssertEqual(try f.floats("b").map(\.bitPattern), [0x3f80_0000, 0xc040_0000, 0x7f80_0000, 0x0001_0000])
        XCTAssertTrue(f.metadata.isEmpty)

        let ipath = dir + "/i.safetensors"
        try S.write(handmade(#"{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), to: ipath)
        let i = try SafeTensorsFile(path: ipath)
        assertSTError([ipath, "'i'", "I64"]) { _ = try i.floats("i") }
    }

    func testCorruptFilesGiveClearErrors() throws {
        let dir = try S.tempDir(self)
        var n = 0
        func check(_ bytes: [UInt8], _ fragments: [String], line: UInt = #line) throws {
            n += 1
            let p = dir + "/bad\(n).safetensors"
            try S.write(bytes, to: p)
            assertSTError([p] + fragments, line: line) { _ = try SafeTensorsFile(path: p) }
        }
        let d8 = [UInt8](repeating: 0, count: 8)
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertNoThrow(try SafeTensorsFile(path: { let p = dir + "/ok"; try S.write(handmade(ok, d8), to: p); return p }()))

        assertSTError(["nofile", "cannot open"]) { _ = try SafeTensorsFile(path: dir + "/nofile") }
        try check([1, 2, 3], ["truncated", "fewer than the 8-byte header length"])
        try check(handmade(ok, d8, headerLength: 1 << 40), ["header length", "limit"])
        try check(handmade(ok, d8, headerLength: 500), ["truncated", "header of 500 bytes"])
        try check(handmade("[1,2]", []), ["does not start with '{'"])
        try check(handmade("{\"a\":", []), ["not valid JSON"])
        try check(handmade(ok, Array(d8[..<5])), ["truncated", "needs 8 bytes", "has 5"])
        try check(handmade(ok, d8 + [0, 0, 0, 0]), ["trailing bytes"])
        try check(handmade(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, d8), ["'a'", "needs 12"])
        try check(handmade(#"{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#, d8), ["'a'", "unknown dtype 'Q9'"])
        try check(handmade(#"{"a":{"dtype":"F32","shape":[2]}}"#, d8), ["'a'", "data_offsets"])
        try check(handmade(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, d8), ["'a'", "shape entry"])
        try check(handmade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, d8), ["'a'", "end before they begin"])
        try check(handmade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, d8),
                  ["overlap"])
        try check(handmade(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, d8), ["gap", "'a'"])
        try check(handmade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":1}}"#, d8),
                  ["__metadata__", "'k'", "not a string"])
        try check(handmade(#"{"a":[1]}"#, d8), ["'a'", "not an object"])
        try check(handmade(#"{"a":{"dtype":"F32","shape":[1000000000,1000000000,1000000000],"data_offsets":[0,8]}}"#, d8),
                  ["'a'", "more elements"])
    }

    func testEveryTruncationAndRandomFlipsAreHandled() throws {
        let dir = try S.tempDir(self)
        let path = dir + "/m.safetensors"
        try SafeTensors.write(tensors: [(name: "a", shape: [3, 2], data: [1, 2, 3, 4, 5, 6]), (name: "b", shape: [1], data: [7])],
                              metadata: ["x": "y"], to: path)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let p = dir + "/t.safetensors"
        for cut in 0..<bytes.count {
            try S.write(Array(bytes[..<cut]), to: p)
            do {
                _ = try SafeTensorsFile(path: p)
                XCTFail("truncation at \(cut) accepted")
            } catch is SafeTensorsError {}
        }
        var rng = SplitMix(seed: 5)
        var rejected = 0
        for _ in 0..<1000 {
            var b = bytes
            let i = Int(rng.next() % UInt64(b.count))
            b[i] = UInt8(truncatingIfNeeded: rng.next())
            try S.write(b, to: p)
            do {
                let f = try SafeTensorsFile(path: p)
                for t in f.tensors { _ = try f.floats(t.name) }
            } catch is SafeTensorsError {
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 50)
    }

    func testWriteRejectsBadInputAndLeavesNoTemporaryFiles() throws {
        let dir = try S.tempDir(self)
        let path = dir + "/w.safetensors"
        assertSTError([path, "shape [2, 2] (4 elements) but 3 values"]) {
            try SafeTensors.write(tensors: [(name: "a", shape: [2, 2], data: [1, 2, 3])], to: path)
        }
        assertSTError(["duplicate tensor name 'a'"]) {
            try SafeTensors.write(tensors: [(name: "a", shape: [1], data: [1]), (name: "a", shape: [1], data: [2])], to: path)
        }
        assertSTError(["invalid tensor name '__metadata__'"]) {
            try SafeTensors.write(tensors: [(name: "__metadata__", shape: [1], data: [1])], to: path)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
        assertSTError(["no/such/dir/x.safetensors", "write failed", "cannot create"]) {
            try SafeTensors.write(tensors: [(name: "a", shape: [1], data: [1])], to: dir + "/no/such/dir/x.safetensors")
        }
        // A failed write keeps the previous file intact.
        try SafeTensors.write(tensors: [(name: "a", shape: [1], data: [1])], to: path)
        XCTAssertThrowsError(try SafeTensors.write(tensors: [(name: "a", shape: [2], data: [1])], to: path))
        XCTAssertEqual(try SafeTensorsFile(path: path).floats("a"), [1])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["w.safetensors"])
    }
}
