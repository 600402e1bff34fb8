import Foundation
import XCTest
@testable import Model

/// The GGUF reader on the real SmolLM2-135M-Instruct file, against python's gguf + numpy.
final class GGUFRealFileTests: XCTestCase {
    typealias S = GGUFTestSupport

    func testMetadataAndTensorTableMatchPython() throws {
        let model = try S.realModel()
        let dir = try S.tempDir(self)
        let t0 = Date()
        let f = try GGUFFile(path: model)
        let openSeconds = Date().timeIntervalSince(t0)
        print("GGUF open + parse (metadata, 49152 tokens, 48900 merges, 272 tensors): \(String(format: "%.3f", openSeconds)) s")

        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(try f.string("general.architecture"), "llama")
        XCTAssertEqual(try f.int("llama.block_count"), 30)
        XCTAssertEqual(try f.int("llama.embedding_length"), 576)
        XCTAssertEqual(try f.int("llama.feed_forward_length"), 1536)
        XCTAssertEqual(try f.int("llama.attention.head_count"), 9)
        XCTAssertEqual(try f.int("llama.attention.head_count_kv"), 3)
        XCTAssertEqual(try f.int("llama.vocab_size"), 49152)
        XCTAssertEqual(f.tensors.count, 272)
        XCTAssertEqual(f.tensors.filter { $0.type == .q4_1 }.count, 210)
        XCTAssertEqual(f.tensors.filter { $0.type == .f32 }.count, 61)
        XCTAssertEqual(f.tensors.filter { $0.type == .q8_0 }.map(\.name), ["token_embd.weight"])
        XCTAssertEqual(try f.tensor(named: "token_embd.weight").shape, [576, 49152])

        let script = """
        import sys, json, gguf
        r = gguf.GGUFReader(sys.argv[1])
        meta = {}
        for k, fld in r.fields.items():
            if k.startswith("GGUF."): continue
            v = fld.contents()
            meta[k] = {"type": [int(t) for t in fld.types], "value": v}
        tensors = [[t.name, [int(x) for x in t.shape], t.tensor_type.name, int(t.data_offset), int(t.n_bytes)] for t in r.tensors]
        json.dump({"meta": meta, "tensors": tensors}, open(sys.argv[2], "w"))
        """
        _ = try S.python(script, [model, dir + "/ref.json"])
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/ref.json"))) as! [String: Any]
        let meta = ref["meta"] as! [String: [String: Any]]
        XCTAssertEqual(Set(meta.keys), Set(f.metadata.keys))
        for (key, entry) in meta {
            let types = entry["type"] as! [Int]
            let value = f.metadata[key]!
            switch types[0] {
            case 8: XCTAssertEqual(value.string, entry["value"] as? String, key)
            case 7: XCTAssertEqual(value.bool, entry["value"] as? Bool, key)
            case 6, 12: XCTAssertEqual(value.double!, (entry["value"] as! NSNumber).doubleValue, accuracy: 1e-12, key)
            case 9:
                if types.last == 8 {
                    XCTAssertEqual(try f.stringArray(key), entry["value"] as? [String], key)
                } else {
                    XCTAssertEqual(try f.intArray(key), entry["value"] as? [Int], key)
                }
            default: XCTAssertEqual(value.int, (entry["value"] as! NSNumber).intValue, key)
            }
        }
        XCTAssertEqual(try f.stringArray("tokenizer.ggml.tokens").count, 49152)
        XCTAssertEqual(try f.stringArray("tokenizer.ggml.merges").count, 48900)

        let tensors = ref["tensors"] as! [[Any]]
        XCTAssertEqual(tensors.count, f.tensors.count)
        for (r, t) in zip(tensors, f.tensors) {
            XCTAssertEqual(r[0] as? String, t.name)
            XCTAssertEqual(r[1] as? [Int], t.shape, t.name)
            XCTAssertEqual(r[2] as? String, t.type.description, t.name)
            XCTAssertEqual(r[3] as? Int, f.dataOffset + t.offset, t.name)
            XCTAssertEqual(r[4] as? Int, t.byteCount, t.name)
        }
    }

    func testDequantisedTensorsMatchPythonGGUF() throws {
        let model = try S.realModel()
        let dir = try S.tempDir(self)
        let whole = ["blk.0.attn_q.weight", "blk.29.ffn_down.weight", "blk.7.ffn_gate.weight",
                     "blk.0.attn_norm.weight", "output_norm.weight", "blk.15.ffn_norm.weight"]
        let embRows = [0, 1, 2, 1000, 1001, 1002, 1003, 30000, 49151]
        let script = """
        import sys, numpy as np, gguf
        r = gguf.GGUFReader(sys.argv[1]); d = sys.argv[2]
        byname = {t.name: t for t in r.tensors}
        def deq(t):
            if t.tensor_type == gguf.GGMLQuantizationType.F32:
                return np.asarray(t.data, dtype=np.float32)
            return gguf.quants.dequantize(t.data, t.tensor_type)
        for i, name in enumerate(sys.argv[3].split(",")):
            deq(byname[name]).astype("<f4").tofile(f"{d}/{i}.f32")
        rows = [int(x) for x in sys.argv[4].split(",")]
        emb = deq(byname["token_embd.weight"])
        assert emb.shape == (49152, 576), emb.shape
        emb[rows].astype("<f4").tofile(f"{d}/emb.f32")
        """
        _ = try S.python(script, [model, dir, whole.joined(separator: ","), embRows.map(String.init).joined(separator: ",")])

        let f = try GGUFFile(path: model)
        for (i, name) in whole.enumerated() {
            let expected = try S.readFloats("\(dir)/\(i).f32")
            let got = try f.floats(name)
            XCTAssertEqual(got.count, try f.tensor(named: name).elementCount, name)
            XCTAssertEqual(got.count, expected.count, name)
            var mismatches = 0
            for (a, b) in zip(got, expected) where a.bitPattern != b.bitPattern { mismatches += 1 }
            XCTAssertEqual(mismatches, 0, "\(name): \(mismatches) values differ from gguf.quants.dequantize")
        }
        XCTAssertEqual(try f.tensor(named: "blk.0.attn_q.weight").type, .q4_1)

        let emb = try f.tensor(named: "token_embd.weight")
        let expected = try S.readFloats(dir + "/emb.f32")
        var got = [Float]()
        var row = [Float](repeating: 0, count: 576)
        for r in embRows {
            try row.withUnsafeMutableBufferPointer { try f.dequantizeRows(emb, rows: r..<(r + 1), into: $0.baseAddress!) }
            got += row
        }
        XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern))
    }

    /// Opens the file and dequantises all 272 tensors (135M values). Prints the time; in a
    /// release build (`swift test -c release -Xswiftc -enable-testing`) this is the load cost.
    func testOpenAndDequantiseEverything() throws {
        let model = try S.realModel()
        let t0 = Date()
        let f = try GGUFFile(path: model)
        let maxCount = f.tensors.map(\.elementCount).max()!
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: maxCount)
        defer { buf.deallocate() }
        var total = 0
        var checksum = 0.0
        for t in f.tensors {
            try f.dequantize(t, into: buf)
            total += t.elementCount
            checksum += Double(buf[0]) + Double(buf[t.elementCount - 1])
            XCTAssertTrue(buf[t.elementCount / 2].isFinite, t.name)
        }
        let seconds = Date().timeIntervalSince(t0)
        print("GGUF open + dequantise all \(f.tensors.count) tensors (\(total) values): \(String(format: "%.3f", seconds)) s (checksum \(checksum))")
        XCTAssertEqual(total, 134_515_008)
    }
}
