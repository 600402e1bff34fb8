import Foundation
import XCTest
@testable import Model

/// GGUF reader on small generated files: every metadata type, every tensor type with known
/// values, a file written by python's gguf.GGUFWriter, errors, truncations and byte flips.
final class GGUFTests: XCTestCase {
    typealias S = GGUFTestSupport

    private func write(_ g: TinyGGUF, _ name: String = "t.gguf") throws -> String {
        let path = try S.tempDir(self) + "/" + name
        try S.write(g.bytes(), to: path)
        return path
    }

    /// Expects `body` to throw a GGUFError whose description contains every fragment.
    private func assertGGUFError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                                 _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error mentioning \(fragments)", file: file, line: line)
        } catch let e as GGUFError {
            for f in fragments {
                XCTAssertTrue(e.description.contains(f), "'\(e.description)' does not mention '\(f)'", file: file, line: line)
            }
        } catch {
            XCTFail("expected a GGUFError, got \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    static let allTypesMetadata: [(String, GGUFValue)] = [
        ("general.architecture", .string("llama")),
        ("k.u8", .uint8(250)), ("k.i8", .int8(-100)), ("k.u16", .uint16(65000)), ("k.i16", .int16(-30000)),
        ("k.u32", .uint32(4_000_000_000)), ("k.i32", .int32(-2_000_000_000)),
        ("k.u64", .uint64(UInt64.max)), ("k.i64", .int64(Int64.min)),
        ("k.f32", .float32(1.5e-5)), ("k.f64", .float64(-2.25e300)),
        ("k.true", .bool(true)), ("k.false", .bool(false)),
        ("k.str", .string("héllo \"wörld\" ✓")), ("k.empty_str", .string("")),
        ("k.arr_i32", .array([.int32(1), .int32(-2), .int32(3)])),
        ("k.arr_str", .array([.string("a"), .string(""), .string("Ġthe"), .string("日本")])),
        ("k.arr_f32", .array([.float32(0.5), .float32(-1)])),
        ("k.arr_bool", .array([.bool(true), .bool(false)])),
        ("k.arr_u64", .array([.uint64(1), .uint64(1 << 40)])),
        ("k.nested", .array([.array([.int16(1), .int16(2)]), .array([.int16(3)])])),
        ("k.nested_str", .array([.array([.string("x")]), .array([.string("y"), .string("z")])])),
        ("k.empty_arr", .array([])),
        ("tokenizer.ggml.token_type", .array([.int32(1), .int32(3), .int32(6)])),
    ]

    func testEveryMetadataType() throws {
        let path = try write(TinyGGUF(metadata: Self.allTypesMetadata))
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(f.metadataKeys, Self.allTypesMetadata.map(\.0))
        XCTAssertEqual(f.metadata.count, Self.allTypesMetadata.count)
        for (k, v) in Self.allTypesMetadata { XCTAssertEqual(f.metadata[k], v, k) }
        XCTAssertTrue(f.tensors.isEmpty)

        // Accessors.
        XCTAssertEqual(try f.int("k.u8"), 250)
        XCTAssertEqual(try f.int("k.i64"), Int(Int64.min))
        XCTAssertNil(f.metadata["k.u64"]!.int) // does not fit in Int
        XCTAssertEqual(f.metadata["k.u64"]!.double, Double(UInt64.max))
        XCTAssertEqual(try f.double("k.f32"), Double(Float(1.5e-5)))
        XCTAssertEqual(try f.double("k.i16"), -30000)
        XCTAssertEqual(try f.string("k.str"), "héllo \"wörld\" ✓")
        XCTAssertEqual(try f.bool("k.true"), true)
        XCTAssertEqual(try f.stringArray("k.arr_str"), ["a", "", "Ġthe", "日本"])
        XCTAssertEqual(try f.intArray("tokenizer.ggml.token_type"), [1, 3, 6])
        XCTAssertEqual(try f.intArray("k.empty_arr"), [])
        XCTAssertEqual(f.metadata["k.nested"]!.array?[1].array?[0].int, 3)
        XCTAssertNil(f.metadata["k.str"]!.int)
        XCTAssertNil(f.metadata["k.true"]!.int)

        assertGGUFError([path, "missing metadata key 'nope'"]) { _ = try f.int("nope") }
        assertGGUFError([path, "'k.str'", "wrong type", "integer", "string"]) { _ = try f.int("k.str") }
        assertGGUFError(["'k.u32'", "wrong type", "string"]) { _ = try f.string("k.u32") }
        assertGGUFError(["'k.arr_i32'", "array[string]"]) { _ = try f.stringArray("k.arr_i32") }
        assertGGUFError(["'k.arr_str'", "array[integer]"]) { _ = try f.intArray("k.arr_str") }
        assertGGUFError(["'k.f32'", "wrong type"]) { _ = try f.stringArray("k.f32") }
        assertGGUFError(["'k.str'", "number"]) { _ = try f.double("k.str") }
        assertGGUFError([path, "no tensor named 'x'"]) { _ = try f.tensor(named: "x") }
    }

    func testVersion2AndCustomAlignment() throws {
        var g = TinyGGUF(metadata: [("general.alignment", .uint32(64))], tensors: [
            .init(name: "a", shape: [3], type: 0, data: floatBytes([1, 2, 3])),
            .init(name: "b", shape: [2], type: 0, data: floatBytes([4, 5])),
        ])
        g.version = 2
        g.alignment = 64
        let f = try GGUFFile(path: try write(g))
        XCTAssertEqual(f.version, 2)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.dataOffset % 64, 0)
        XCTAssertEqual(try f.tensor(named: "b").offset, 64)
        XCTAssertEqual(try f.floats("a"), [1, 2, 3])
        XCTAssertEqual(try f.floats("b"), [4, 5])
    }

    // MARK: known values for every tensor type

    func floatBytes(_ xs: [Float]) -> [UInt8] {
        var out = [UInt8]()
        for x in xs { TinyGGUF.put(x.bitPattern, &out) }
        return out
    }

    func halfBytes(_ hs: [UInt16]) -> [UInt8] { hs.flatMap(TinyGGUF.f16) }

    /// Known tensors of every supported type and their exact Float32 values.
    func knownTensors() -> [(TinyGGUF.Tensor, [Float])] {
        var out = [(TinyGGUF.Tensor, [Float])]()
        let f32: [Float] = [1, -2.5, 0, -0.0, Float(bitPattern: 0x0000_0123), 1e30]
        out.append((.init(name: "f32", shape: [3, 2], type: 0, data: floatBytes(f32)), f32))

        let h: [UInt16] = [0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x3555, 0x0200]
        let hv: [Float] = [1, -2, 0x1p-24, 1023 * 0x1p-24, 65504, .infinity, -.infinity, -0.0, 0.333251953125, 0x1p-15]
        out.append((.init(name: "f16", shape: [10], type: 1, data: halfBytes(h)), hv))

        let b: [UInt16] = [0x3f80, 0xc040, 0x0000, 0x7f80, 0x8001]
        let bv: [Float] = [1, -3, 0, .infinity, -Float(bitPattern: 0x0001_0000)]
        out.append((.init(name: "bf16", shape: [5], type: 30, data: halfBytes(b)), bv))

        // Q8_0: two blocks; d = 2 and d = 0.5.
        var q8 = [UInt8](), q8v = [Float]()
        q8 += TinyGGUF.f16(0x4000)
        for j in 0..<32 { q8.append(UInt8(bitPattern: Int8(j - 16))); q8v.append(Float(j - 16) * 2) }
        q8 += TinyGGUF.f16(0x3800)
        for j in 0..<32 { q8.append(UInt8(bitPattern: Int8(-128 + 8 * j))); q8v.append(Float(-128 + 8 * j) * 0.5) }
        out.append((.init(name: "q8_0", shape: [32, 2], type: 8, data: q8), q8v))

        // Q4_0: byte j holds element j (low nibble) and element j+16 (high nibble); x = (q-8)·d.
        var q40 = [UInt8](), q40v = [Float](repeating: 0, count: 64)
        q40 += TinyGGUF.f16(0x3800) // 0.5
        for j in 0..<16 {
            q40.append(UInt8(j) | UInt8(15 - j) << 4)
            q40v[j] = Float(j - 8) * 0.5
            q40v[j + 16] = Float(15 - j - 8) * 0.5
        }
        q40 += TinyGGUF.f16(0xbc00) // -1
        for j in 0..<16 {
            let lo = (j * 5) % 16, hi = (j * 3 + 1) % 16
            q40.append(UInt8(lo) | UInt8(hi) << 4)
            q40v[32 + j] = Float(lo - 8) * -1
            q40v[48 + j] = Float(hi - 8) * -1
        }
        out.append((.init(name: "q4_0", shape: [64], type: 2, data: q40), q40v))

        // Q4_1: x = q·d + m with d = 0.25, m = -1.
        var q41 = [UInt8](), q41v = [Float](repeating: 0, count: 32)
        q41 += TinyGGUF.f16(0x3400) + TinyGGUF.f16(0xbc00)
        for j in 0..<16 {
            let lo = j, hi = (j * 7) % 16
            q41.append(UInt8(lo) | UInt8(hi) << 4)
            q41v[j] = Float(lo) * 0.25 - 1
            q41v[j + 16] = Float(hi) * 0.25 - 1
        }
        out.append((.init(name: "q4_1", shape: [32, 1], type: 3, data: q41), q41v))
        return out
    }

    func testKnownValuesForEveryTensorType() throws {
        let known = knownTensors()
        let f = try GGUFFile(path: try write(TinyGGUF(metadata: [("general.architecture", .string("test"))],
                                                      tensors: known.map(\.0))))
        XCTAssertEqual(f.tensors.map(\.name), known.map(\.0.name))
        let types: [GGUFTensorType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1]
        for ((t, expected), type) in zip(known, types) {
            let info = try f.tensor(named: t.name)
            XCTAssertEqual(info.type, type)
            XCTAssertEqual(info.shape, t.shape)
            XCTAssertEqual(info.elementCount, expected.count)
            XCTAssertEqual(info.byteCount, t.data.count)
            XCTAssertEqual(info.offset % 32, 0)
            let got = try f.floats(t.name)
            XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "\(t.name): \(got) vs \(expected)")
        }
        // Row slices.
        let q8 = try f.tensor(named: "q8_0")
        XCTAssertEqual(q8.rowLength, 32)
        XCTAssertEqual(q8.rowCount, 2)
        var row = [Float](repeating: .nan, count: 32)
        try row.withUnsafeMutableBufferPointer { try f.dequantizeRows(q8, rows: 1..<2, into: $0.baseAddress!) }
        XCTAssertEqual(row, Array(known[3].1[32...]))
        assertGGUFError(["rows", "out of range", "'q8_0'"]) {
            try row.withUnsafeMutableBufferPointer { try f.dequantizeRows(q8, rows: 1..<3, into: $0.baseAddress!) }
        }
        XCTAssertEqual(Array(f.rawBytes(q8)), known[3].0.data)
    }

    func testHalfToFloatMatchesFloat16ForAllBitPatterns() {
        #if arch(x86_64) || arch(arm64)
        for bits in 0...UInt16.max {
            let mine = GGUFDequant.halfToFloat(bits)
            let ref = Float(Float16(bitPattern: bits))
            if ref.isNaN {
                XCTAssertTrue(mine.isNaN, "\(bits)")
                XCTAssertEqual(mine.bitPattern & 0x8000_0000, ref.bitPattern & 0x8000_0000)
            } else {
                XCTAssertEqual(mine.bitPattern, ref.bitPattern, "half bits \(String(bits, radix: 16))")
            }
        }
        #endif
    }

    // MARK: a file written by python's gguf.GGUFWriter

    func testFileWrittenByPythonGGUFWriter() throws {
        let dir = try S.tempDir(self)
        let script = """
        import sys, json, numpy as np, gguf
        from gguf import GGMLQuantizationType as T
        d = sys.argv[1]
        w = gguf.GGUFWriter(d + "/py.gguf", arch="llama")
        w.add_uint8("k.u8", 200); w.add_int8("k.i8", -7); w.add_uint16("k.u16", 60000); w.add_int16("k.i16", -300)
        w.add_uint32("k.u32", 3000000000); w.add_int32("k.i32", -123456); w.add_uint64("k.u64", 2**63 + 5)
        w.add_int64("k.i64", -2**62); w.add_float32("k.f32", 0.1); w.add_float64("k.f64", 1e-300)
        w.add_bool("k.b", True); w.add_string("k.s", "Grüße")
        w.add_array("k.as", ["x", "yy", "Ġz"]); w.add_array("k.ai", [5, -6, 7]); w.add_array("k.af", [0.5, 2.0])
        w.add_array("k.nested", [[1, 2], [3]])
        rng = np.random.default_rng(7)
        expected = []
        def add(name, arr, qtype):
            if qtype in (T.F32,):
                w.add_tensor(name, arr.astype(np.float32))
                expected.append(arr.astype(np.float32).ravel())
            elif qtype == T.F16:
                w.add_tensor(name, arr.astype(np.float16))
                expected.append(arr.astype(np.float16).astype(np.float32).ravel())
            else:
                q = gguf.quants.quantize(arr.astype(np.float32), qtype)
                w.add_tensor(name, q, raw_dtype=qtype)
                expected.append(gguf.quants.dequantize(q, qtype).astype(np.float32).ravel())
        add("t.f32", rng.standard_normal((3, 5)), T.F32)
        add("t.f16", rng.standard_normal((4, 6)), T.F16)
        add("t.bf16", rng.standard_normal((2, 8)), T.BF16)
        add("t.q8_0", rng.standard_normal((3, 64)) * 3, T.Q8_0)
        add("t.q4_0", rng.standard_normal((2, 96)), T.Q4_0)
        add("t.q4_1", rng.standard_normal((5, 32)) + 0.7, T.Q4_1)
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
        np.concatenate(expected).astype("<f4").tofile(d + "/expected.f32")
        """
        _ = try S.python(script, [dir])
        let f = try GGUFFile(path: dir + "/py.gguf")
        XCTAssertEqual(try f.string("general.architecture"), "llama")
        XCTAssertEqual(f.metadata["k.u8"], .uint8(200))
        XCTAssertEqual(f.metadata["k.i8"], .int8(-7))
        XCTAssertEqual(f.metadata["k.u16"], .uint16(60000))
        XCTAssertEqual(f.metadata["k.i16"], .int16(-300))
        XCTAssertEqual(f.metadata["k.u32"], .uint32(3_000_000_000))
        XCTAssertEqual(f.metadata["k.i32"], .int32(-123456))
        XCTAssertEqual(f.metadata["k.u64"], .uint64((1 << 63) + 5))
        XCTAssertEqual(f.metadata["k.i64"], .int64(-(1 << 62)))
        XCTAssertEqual(f.metadata["k.f32"], .float32(0.1))
        XCTAssertEqual(f.metadata["k.f64"], .float64(1e-300))
        XCTAssertEqual(f.metadata["k.b"], .bool(true))
        XCTAssertEqual(try f.string("k.s"), "Grüße")
        XCTAssertEqual(try f.stringArray("k.as"), ["x", "yy", "Ġz"])
        XCTAssertEqual(try f.intArray("k.ai"), [5, -6, 7])
        XCTAssertEqual(f.metadata["k.af"], .array([.float32(0.5), .float32(2)]))
        XCTAssertEqual(f.metadata["k.nested"], .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])]))

        let names = ["t.f32", "t.f16", "t.bf16", "t.q8_0", "t.q4_0", "t.q4_1"]
        XCTAssertEqual(f.tensors.map(\.name), names)
        XCTAssertEqual(f.tensors.map(\.type), [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1])
        XCTAssertEqual(f.tensors.map(\.shape), [[5, 3], [6, 4], [8, 2], [64, 3], [96, 2], [32, 5]])
        let expected = try S.readFloats(dir + "/expected.f32")
        let got = try names.flatMap { try f.floats($0) }
        XCTAssertEqual(got.count, expected.count)
        XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern))
    }

    // MARK: errors

    func testErrorsNameTheFileAndTheProblem() throws {
        let dir = try S.tempDir(self)
        func file(_ bytes: [UInt8], _ name: String) throws -> String {
            let p = dir + "/" + name
            try S.write(bytes, to: p)
            return p
        }
        let good = TinyGGUF(metadata: [("a", .uint32(1))], tensors: [.init(name: "w", shape: [32], type: 8, data: [UInt8](repeating: 0, count: 34))])
        let goodBytes = good.bytes()
        XCTAssertNoThrow(try GGUFFile(path: file(goodBytes, "good.gguf")))

        assertGGUFError(["missing.gguf", "cannot open"]) { _ = try GGUFFile(path: dir + "/missing.gguf") }
        assertGGUFError(["cannot open", "not a regular file"]) { _ = try GGUFFile(path: dir) }
        assertGGUFError(["empty.gguf", "truncated", "magic"]) { _ = try GGUFFile(path: file([], "empty.gguf")) }

        var bad = goodBytes
        bad[0] = UInt8(ascii: "X")
        let badMagicPath = try file(bad, "magic.gguf")
        assertGGUFError([badMagicPath, "bad magic", "not a GGUF file"]) { _ = try GGUFFile(path: badMagicPath) }

        for v: UInt32 in [1, 4, 0x0300_0000] {
            var g = good
            g.version = v
            assertGGUFError(["v.gguf", "unsupported GGUF version \(v)"]) { _ = try GGUFFile(path: file(g.bytes(), "v.gguf")) }
        }
        var be = good
        be.version = 0x0300_0000
        assertGGUFError(["big-endian"]) { _ = try GGUFFile(path: file(be.bytes(), "be.gguf")) }
        // localizedDescription carries the message too.
        do { _ = try GGUFFile(path: dir + "/missing.gguf") } catch { XCTAssertTrue(error.localizedDescription.contains("missing.gguf")) }

        assertGGUFError(["trunc.gguf", "truncated", "tensor count"]) { _ = try GGUFFile(path: file(Array(goodBytes[..<12]), "trunc.gguf")) }

        // A huge metadata count.
        var hugeKV = goodBytes
        hugeKV.replaceSubrange(16..<24, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0])
        assertGGUFError(["metadata key/value count", "larger than the file"]) { _ = try GGUFFile(path: file(hugeKV, "kv.gguf")) }

        // Tensor data past the end of the file (the last block cut off).
        assertGGUFError(["cut.gguf", "'w'", "runs past the end of the file"]) {
            _ = try GGUFFile(path: file(Array(goodBytes.dropLast(1)), "cut.gguf"))
        }
        // An offset that points past the end.
        var far = good
        far.tensors[0].offset = 1 << 20
        assertGGUFError(["'w'", "past the end of the file"]) { _ = try GGUFFile(path: file(far.bytes(), "far.gguf")) }
        var misaligned = good
        misaligned.tensors[0].offset = 4
        assertGGUFError(["'w'", "not a multiple of the alignment"]) { _ = try GGUFFile(path: file(misaligned.bytes(), "mis.gguf")) }

        // Element count not a multiple of the block size.
        let notBlock = TinyGGUF(tensors: [.init(name: "odd", shape: [48], type: 8, data: [UInt8](repeating: 0, count: 68))])
        assertGGUFError(["'odd'", "not a multiple of the block size 32"]) { _ = try GGUFFile(path: file(notBlock.bytes(), "odd.gguf")) }

        // Unknown ggml type id; known type that cannot be dequantised.
        let unknown = TinyGGUF(tensors: [.init(name: "u", shape: [4], type: 99, data: [UInt8](repeating: 0, count: 16))])
        assertGGUFError(["'u'", "ggml type 99"]) { _ = try GGUFFile(path: file(unknown.bytes(), "unk.gguf")) }
        let q4k = TinyGGUF(tensors: [.init(name: "blk.0.ffn_up.weight", shape: [256], type: 12, data: [UInt8](repeating: 0, count: 144))])
        let q4kFile = try GGUFFile(path: file(q4k.bytes(), "q4k.gguf"))
        XCTAssertEqual(q4kFile.tensors[0].byteCount, 144)
        assertGGUFError(["q4k.gguf", "'blk.0.ffn_up.weight'", "Q4_K"]) { _ = try q4kFile.floats("blk.0.ffn_up.weight") }

        // Bad metadata: unknown value type, bool that is not 0/1, duplicate keys, bad alignment.
        var unkType = TinyGGUF(metadata: [("a", .uint32(1))]).bytes()
        unkType.replaceSubrange(33..<37, with: [13, 0, 0, 0]) // the type after "GGUF",ver,counts,len,"a"
        assertGGUFError(["metadata 'a'", "unknown value type 13"]) { _ = try GGUFFile(path: file(unkType, "ut.gguf")) }
        var badBool = TinyGGUF(metadata: [("b", .bool(true))]).bytes()
        badBool[37] = 2
        assertGGUFError(["metadata 'b'", "bool"]) { _ = try GGUFFile(path: file(badBool, "bb.gguf")) }
        let dup = TinyGGUF(metadata: [("a", .uint32(1)), ("a", .uint32(2))])
        assertGGUFError(["duplicate metadata key 'a'"]) { _ = try GGUFFile(path: file(dup.bytes(), "dup.gguf")) }
        let dupT = TinyGGUF(tensors: [.init(name: "x", shape: [1], type: 0, data: [0, 0, 0, 0]),
                                      .init(name: "x", shape: [1], type: 0, data: [0, 0, 0, 0])])
        assertGGUFError(["duplicate tensor name 'x'"]) { _ = try GGUFFile(path: file(dupT.bytes(), "dupt.gguf")) }
        let align = TinyGGUF(metadata: [("general.alignment", .uint32(24))])
        assertGGUFError(["general.alignment", "power of two"]) { _ = try GGUFFile(path: file(align.bytes(), "al.gguf")) }
        let dims = TinyGGUF(tensors: [.init(name: "d", shape: [1, 1, 1, 1, 1], type: 0, data: [0, 0, 0, 0])])
        assertGGUFError(["'d'", "5 dimensions"]) { _ = try GGUFFile(path: file(dims.bytes(), "dims.gguf")) }
        // Deeply nested arrays.
        var deep: GGUFValue = .uint8(1)
        for _ in 0..<20 { deep = .array([deep]) }
        assertGGUFError(["nested deeper"]) { _ = try GGUFFile(path: file(TinyGGUF(metadata: [("deep", deep)]).bytes(), "deep.gguf")) }
        // A string array whose count exceeds what the file can hold.
        var bigArr = TinyGGUF(metadata: [("s", .array([.string("a")]))]).bytes()
        bigArr.replaceSubrange(41..<49, with: [5, 0, 0, 0, 0, 0, 0, 0])
        assertGGUFError(["array 's'", "truncated"]) { _ = try GGUFFile(path: file(bigArr, "big.gguf")) }
    }

    /// A small file with a bit of everything, for the fuzz tests.
    func fuzzSample() -> [UInt8] {
        let known = knownTensors()
        return TinyGGUF(metadata: [("general.architecture", .string("llama")), ("n", .uint32(7)),
                                   ("toks", .array([.string("a"), .string("bc")])),
                                   ("nest", .array([.array([.int8(1)]), .array([.float64(2)])])),
                                   ("f", .float32(0.5))],
                        tensors: known.map(\.0)).bytes()
    }

    func testEveryTruncationIsAnError() throws {
        let dir = try S.tempDir(self)
        let bytes = fuzzSample()
        for cut in 0..<bytes.count {
            let p = dir + "/cut\(cut).gguf"
            try S.write(Array(bytes[..<cut]), to: p)
            do {
                _ = try GGUFFile(path: p)
                XCTFail("truncation at \(cut) of \(bytes.count) bytes was accepted")
            } catch let e as GGUFError {
                XCTAssertTrue(e.description.contains(p), e.description)
            }
            try FileManager.default.removeItem(atPath: p)
        }
    }

    func testRandomByteFlipsNeverCrash() throws {
        let dir = try S.tempDir(self)
        let bytes = fuzzSample()
        var rng = SplitMix(seed: 12345)
        var opened = 0, rejected = 0
        let p = dir + "/flip.gguf"
        for _ in 0..<1500 {
            var b = bytes
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(b.count))
                b[i] = rng.next() % 3 == 0 ? 0xff : UInt8(truncatingIfNeeded: rng.next())
            }
            try S.write(b, to: p)
            do {
                let f = try GGUFFile(path: p)
                opened += 1
                for t in f.tensors where t.type.isSupported { _ = try f.floats(t.name) }
                _ = f.metadata.values.map(\.description)
            } catch is GGUFError {
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 100)
        XCTAssertGreaterThan(opened, 100) // flips inside tensor data leave the file valid
    }
}

/// A small deterministic generator for the fuzz tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
