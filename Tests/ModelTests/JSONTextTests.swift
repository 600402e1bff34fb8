import Foundation
import XCTest
@testable import Model

/// `JSONText` against Python's `json`: the compact text equals
/// `json.dumps(json.loads(ours), sort_keys=True, ensure_ascii=False, separators=(",", ":"))`
/// byte for byte, and the pretty text reads back to the same value.
final class JSONTextTests: XCTestCase {
    func testCompactTextIsPythonsSortedDumpAndPrettyReadsBackTheSame() throws {
        var keys: [String: Any] = [:]
        // Keys whose code-point order differs from a locale's: case, accents, symbols, astral.
        for (i, k) in ["b", "B", "a", "é", "e\u{301}x", "Ġthe", "_", "~", "Z", "\u{1F600}", "\u{FF21}", "ab", "a b", ""].enumerated() {
            keys[k] = i
        }
        let object: [String: Any] = [
            "keys": keys,
            "strings": ["quote \" backslash \\ slash /", "tab\tnewline\nreturn\r", "\u{8}\u{C}\u{1}\u{1F}\u{7F}",
                        "ünïcødé 東京 \u{1F600}", ""],
            "numbers": [0, -7, Int(Int32.max) + 1, 2.5, 1e-5, -0.125, 3.0] as [Any],
            "flags": [true, false, NSNull()] as [Any],
            "nested": [["a": [[], [:]] as [Any]], [:]] as [Any],
            "empty": [String: Any](),
        ]
        let compact = try JSONText.encode(object)
        let script = """
            import json, sys
            raw = sys.stdin.buffer.read()
            compact, pretty = raw.split(b"\\0")
            a = json.loads(compact.decode("utf-8"))
            b = json.loads(pretty.decode("utf-8"))
            assert a == b, "pretty text reads back differently"
            sys.stdout.buffer.write(json.dumps(a, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            """
        let pretty = try JSONText.encode(object, indent: 2)
        XCTAssertTrue(pretty.contains(0x0A), "pretty text has lines")
        let python = try PythonRun.run(script, input: Data(compact + [0] + pretty))
        XCTAssertEqual(String(decoding: compact, as: UTF8.self), String(decoding: python, as: UTF8.self))
    }

    func testValuesWithoutJSONFormAreRefused() {
        XCTAssertThrowsError(try JSONText.encode(["x": Double.nan])) { XCTAssertTrue("\($0)".contains("non-finite")) }
        XCTAssertThrowsError(try JSONText.encode(["x": Date()])) { XCTAssertTrue("\($0)".contains("no JSON form")) }
    }
}
