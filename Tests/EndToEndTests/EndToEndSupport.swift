import Foundation
import XCTest

/// What the end-to-end test classes share: a fresh run directory per test and name, a run's
/// metrics records, a file's bytes.
extension XCTestCase {
    /// A fresh path `ebft-e2e-<class>-<pid>-<name>` in the temporary directory (an empty directory
    /// there when `create`), removed when the test ends.
    func runDir(_ name: String, create: Bool = false) -> String {
        let d = FileManager.default.temporaryDirectory
            .appendingPathComponent("ebft-e2e-\(String(describing: type(of: self)))-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: d)
        if create { try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// The records of `dir/metrics.jsonl`, one JSON object per line.
    func metrics(_ dir: String) throws -> [[String: Any]] {
        try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    func file(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }
}
