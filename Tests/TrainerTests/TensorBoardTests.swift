import Foundation
import XCTest
@testable import Trainer

/// Runs Tests/reference/tensorboard_check.py on `runDir` (the `tensorboard` package's own reader
/// against metrics.jsonl) and returns its verdict.
func tensorBoardCheck(_ runDir: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let script = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent()
        .appendingPathComponent("../reference/tensorboard_check.py").standardized.path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", script, runDir]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0,
          let verdict = try JSONSerialization.jsonObject(with: outData) as? [String: Any] else {
        XCTFail("tensorboard_check.py failed (run scripts/install-deps.sh?): \(String(decoding: errData, as: UTF8.self))",
                file: file, line: line)
        throw NSError(domain: "tensorboard_check", code: Int(p.terminationStatus))
    }
    return verdict
}

final class TensorBoardTests: XCTestCase {
    /// Published CRC-32C check values: RFC 3720 (iSCSI) appendix B.4 and the "123456789" check.
    func testCRC32CKnownVectors() {
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0 ..< 32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0 ..< 32).reversed().map { UInt8($0) }), 0x113F_DB5C)
        // Masked values as tensorboard's masked_crc32c computes them.
        XCTAssertEqual(CRC32C.masked(CRC32C.checksum(Array("123456789".utf8))), 0xC78A_B0E5)
        XCTAssertEqual(CRC32C.masked(CRC32C.checksum([UInt8](repeating: 0, count: 8))), 0x0798_0329)
        XCTAssertEqual(CRC32C.masked(0), 0xA282_EAD8)
    }

    /// An empty record's framing, byte for byte: zero length, its CRC, no data, the CRC of nothing.
    func testFraming() {
        XCTAssertEqual(TensorBoardWriter.frame([]),
                       [0, 0, 0, 0, 0, 0, 0, 0, 0x29, 0x03, 0x98, 0x07, 0xD8, 0xEA, 0x82, 0xA2])
    }

    func runDir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-tb-\(UUID())").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func record(_ kind: String, step: Int, _ values: [(String, Double)]) -> MetricsRecord {
        var r = MetricsRecord()
        r["step"] = Double(step)
        r.set("kind", kind)
        r.set("method", "ebft")
        for (k, v) in values { r[k] = v }
        return r
    }

    /// Records of several kinds through the metrics writer; then a "resume" that carries the
    /// first records over: the tensorboard reader sees every number of metrics.jsonl, once.
    func testTensorBoardReadsBackEveryScalar() throws {
        let dir = runDir()
        let path = dir + "/metrics.jsonl"
        var w: JSONLWriter? = try JSONLWriter(path: path)
        w?.tensorboard = try TensorBoardWriter.mirroring(metricsFile: path, directory: dir)
        w?.write(record("eval", step: 0, [("eval_ce", 3.25), ("eval_reward", -0.125)]))
        w?.write(record("train", step: 1, [("ce", 2.718281828459045), ("grad_norm", 1e-7), ("lr", 1e-6),
                                           ("bytes_sent", 538_000_000), ("logp_drift", .nan)]))
        w?.write(record("train", step: 2, [("ce", 2.5), ("grad_norm", 12345.678), ("lr", 2e-6),
                                           ("bytes_sent", 538_000_000), ("logp_drift", 0)]))
        w?.write(record("downstream", step: 2, [("pass_at_1", 0.1)]))
        var v = try tensorBoardCheck(dir)
        XCTAssertEqual(v["errors"] as? [String], [])
        XCTAssertEqual(v["scalars"] as? Int, 2 + 5 + 5 + 1)
        XCTAssertEqual(v["files"] as? Int, 1)

        // A restart: the event file is rebuilt from metrics.jsonl, then appended to.
        w = nil
        w = try JSONLWriter(path: path)
        w?.tensorboard = try TensorBoardWriter.mirroring(metricsFile: path, directory: dir)
        w?.write(record("train", step: 3, [("ce", 2.25), ("grad_norm", 0.5), ("lr", 3e-6)]))
        v = try tensorBoardCheck(dir)
        XCTAssertEqual(v["errors"] as? [String], [])
        XCTAssertEqual(v["scalars"] as? Int, 2 + 5 + 5 + 1 + 3)
        XCTAssertEqual(v["files"] as? Int, 1)
    }

    /// The checker itself can fail: a flipped byte in the event file is a CRC error, and a
    /// number missing from the event file is reported.
    func testCheckerNoticesDamage() throws {
        let dir = runDir()
        let path = dir + "/metrics.jsonl"
        let w = try JSONLWriter(path: path)
        let tb = try TensorBoardWriter.mirroring(metricsFile: path, directory: dir)
        w.tensorboard = tb
        w.write(record("train", step: 1, [("ce", 2.5)]))
        w.tensorboard = nil
        w.write(record("train", step: 2, [("ce", 2.0)]))
        var v = try tensorBoardCheck(dir)
        XCTAssertEqual(v["errors"] as? [String], ["train/ce: 2 values in metrics.jsonl, 1 in the event file"])

        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tb.path)))
        bytes[bytes.count - 6] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: tb.path))
        v = try tensorBoardCheck(dir)
        XCTAssertTrue((v["errors"] as? [String] ?? []).contains { $0.contains("data CRC") }, "\(v)")
    }
}
