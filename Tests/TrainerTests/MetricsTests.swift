import XCTest
@testable import Trainer

final class MetricsTests: XCTestCase {
    func testJSONLineIsValidJSONInInsertionOrder() throws {
        var r = MetricsRecord()
        r["step"] = 3
        r["reward"] = 0.25
        r["nan"] = .nan
        r.set("phase", "sample \"x\"\n")
        r.add("bytes", 10)
        r.add("bytes", 5)
        let line = r.jsonLine()
        XCTAssertTrue(line.hasPrefix("{\"step\":3,\"reward\":0.25,\"nan\":null,"), line)
        let obj = try JSONSerialization.jsonObject(with: line.data(using: .utf8)!) as! [String: Any]
        XCTAssertEqual(obj["bytes"] as? Int, 15)
        XCTAssertEqual(obj["phase"] as? String, "sample \"x\"\n")
        XCTAssertTrue(obj["nan"] is NSNull)
    }

    func testWriterAppends() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("m-\(UUID())/metrics.jsonl").path
        var r = MetricsRecord()
        r["step"] = 1
        try JSONLWriter(path: path).write(r)
        r["step"] = 2
        try JSONLWriter(path: path).write(r)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines, ["{\"step\":1}", "{\"step\":2}"])
    }

    func testClock() {
        XCTAssertEqual(ProgressBar.clock(61), "1:01")
        XCTAssertEqual(ProgressBar.clock(3725), "1:02:05")
    }
}
