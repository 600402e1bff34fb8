import Foundation
import XCTest

/// scripts/claims.py (the per-claim reading of `scripts/compare.sh report`) on runs whose final
/// values are chosen so that each verdict and each difference can be worked out by hand.
final class ClaimsScriptTests: XCTestCase {
    private var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("claims-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// One finished run: an eval, a downstream and a train record, and DONE.
    private func run(_ name: String, ce: Double, down: [String: Double], done: Bool = true) throws {
        let dir = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var records: [[String: Any]] = [
            ["step": 0, "kind": "eval", "eval_ce": ce + 1, "eval_feature_matching_raw_pass1": 0.5],
            ["step": 3, "kind": "train", "flops_total": 1e12],
            ["step": 3, "kind": "eval", "eval_ce": ce, "eval_feature_matching_raw_pass1": 0.55],
        ]
        var d: [String: Any] = ["step": 3, "kind": "downstream"]
        for (k, v) in down { d[k] = v }
        records.append(d)
        let text = try records.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
            .joined(separator: "\n") + "\n"
        try text.write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        if done { try "1 s\n".write(to: dir.appendingPathComponent("DONE"), atomically: true, encoding: .utf8) }
    }

    private func claims(tasks: String, seeds: String) throws -> [String] {
        try ScriptRunner.run("/usr/bin/env", ["python3", "scripts/claims.py", root.path, tasks, seeds])
            .split(separator: "\n").map(String.init)
    }

    /// The row of `claim` and `quantity` in the section of `task`.
    private func row(_ lines: [String], task: String, claim: String, quantity: String) -> String? {
        guard let start = lines.firstIndex(of: "## Task `\(task)`") else { return nil }
        let section = lines[(start + 1)...].prefix { !$0.hasPrefix("## ") }
        return section.first { $0.hasPrefix("| \(claim)") && $0.contains("| \(quantity) |") }
    }

    func testVerdictsAndDifferences() throws {
        // code: three seeds, values 0.01 apart, so every method's SE is 0.01/√3 and every
        // difference's SE is 0.01·√(2/3) = 0.0082 on Welch's 4 degrees of freedom (t₀.₉₇₅ = 2.776).
        for (i, s) in [1, 2, 3].enumerated() {
            let x = Double(i) * 0.01
            try run("code-sft-s\(s)", ce: 2.90 + x, down: ["pass1": 0.10 + x, "passk": 0.30 + x])
            try run("code-rlvr-s\(s)", ce: 2.80 + x, down: ["pass1": 0.21 + x, "passk": 0.40 + x])
            try run("code-ebft-s\(s)", ce: 2.70 + x, down: ["pass1": 0.21 + x, "passk": 0.38 + x])
            try run("code-base-s\(s)", ce: 3.00, down: ["pass1": 0.05, "passk": 0.2])
            // translation: EBFT below RLVR on BLEU, level with SFT on chrF, CE above SFT.
            try run("translation-sft-s\(s)", ce: 2.50 + x, down: ["bleu": 15 + 100 * x, "chrf": 41 + 50 * x])
            try run("translation-rlvr-s\(s)", ce: 2.70 + x, down: ["bleu": 20 + 100 * x, "chrf": 41 + 100 * x])
            try run("translation-ebft-s\(s)", ce: 2.60 + x, down: ["bleu": 10 + 100 * x, "chrf": 40 + 100 * x])
        }
        // qa-code: one seed per method (and an unfinished second one), so no verdicts.
        for m in ["sft", "rlvr", "ebft"] { try run("qa-code-\(m)-s1", ce: 2.9, down: ["pass1": 0.1, "passk": 0.2]) }
        try run("qa-code-ebft-s2", ce: 1.0, down: ["pass1": 0.9, "passk": 0.9], done: false)

        let lines = try claims(tasks: "qa-code code translation", seeds: "1 2 3")
        func check(_ task: String, _ claim: String, _ q: String, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
            guard let r = row(lines, task: task, claim: claim, quantity: q) else {
                return XCTFail("no row \(task) / \(claim) / \(q) in:\n\(lines.joined(separator: "\n"))", file: file, line: line)
            }
            for p in parts { XCTAssertTrue(r.contains(p), "\(r) lacks \(p)", file: file, line: line) }
        }
        // 1. EBFT − RLVR pass@1 = 0 exactly; pass@k = −0.02, t = −2.4 (inside ±2.776).
        check("code", "1. matches RLVR", "pass@1", ["+0.0000 ± 0.0082 (t +0.0, df 4.0", "not separable"])
        check("code", "1. matches RLVR", "pass@k", ["-0.0200 ± 0.0082 (t -2.4, df 4.0", "not separable"])
        // 2. EBFT − SFT pass@1 = +0.11, t = 13.5, the 95 % interval ±2.776 · 0.0082 = ±0.0227.
        check("code", "2. beats SFT", "pass@1", ["+0.1100 ± 0.0082 (t +13.5, df 4.0, 95 % [+0.0873, +0.1327])", "**supported**"])
        // 3. CE 0.2 below SFT and 0.1 below RLVR.
        check("code", "3. lower validation CE than SFT", "val CE", ["-0.2000 ± 0.0082", "**supported**"])
        check("code", "3. lower validation CE than RLVR", "val CE", ["-0.1000 ± 0.0082"])
        // translation: BLEU 10 below RLVR (SE √(2/3)); chrF +0.5 over SFT with SEs 0.577 and
        // 0.289 (Welch df = 0.417² / (0.333²/2 + 0.0833²/2) = 2.94 → 2, t₀.₉₇₅ = 4.303).
        check("translation", "1. matches RLVR", "BLEU", ["-10.00 ± 0.82", "**contradicted** (EBFT below RLVR)"])
        check("translation", "2. beats SFT", "chrF", ["-0.50 ± 0.65 (t -0.8, df 2.9", "not separable"])
        check("translation", "3. lower validation CE than SFT", "val CE", ["+0.1000 ± 0.0082", "**contradicted**"])
        // qa-code: one finished seed each, the unfinished run ignored.
        check("qa-code", "2. beats SFT", "pass@1", ["needs ≥ 2 seeds", "no verdict"])
        XCTAssertTrue(lines.contains("| ebft | 1 | 2.9000 | 0.5500 | 0.1000 | 0.2000 | 1.000e+12 |"), lines.joined(separator: "\n"))
    }
}
