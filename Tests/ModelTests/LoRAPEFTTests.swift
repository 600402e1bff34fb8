import Foundation
import XCTest
@testable import Model

/// Adapters written in the PEFT layout (`LoRAFiles`) applied by an independent NumPy reader of
/// the PEFT files (Tests/reference/peft_lora_reference.py: W + (α/r)·B·A per target module, on
/// the base Hugging Face directory run by hf_family_reference.py) give our log-probs within 1e-4;
/// the adapter directory as a model (base + adapter, merged) too; reading it back is exact.
final class LoRAPEFTTests: XCTestCase {
    typealias S = GGUFTestSupport

    func python(_ scriptFile: String, _ request: [String: Any]) throws -> [String: Any] {
        let dir = try S.tempDir(self)
        let req = dir + "/request.json"
        try JSONSerialization.data(withJSONObject: request).write(to: URL(fileURLWithPath: req))
        let script = "import sys, runpy; sys.stdin = open(sys.argv[1]); p = sys.argv[2]; sys.argv = [p]; "
            + "runpy.run_path(p, run_name='__main__')"
        let out = try S.python(script, [req, S.packageRoot + "/Tests/reference/" + scriptFile])
        return try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
    }

    func check(family: String, extra: [String: Any], lora lc: LoRAConfig) throws {
        let root = try S.tempDir(self)
        var make: [String: Any] = ["dir": root + "/base", "family": family, "hidden": 48, "layers": 2, "heads": 4,
                                   "kv_heads": 2, "ffn": 64, "vocab": 97, "tied": false, "seed": 7, "max_positions": 128]
        for (k, v) in extra { make[k] = v }
        _ = try python("hf_family_reference.py", ["make": make])
        let base = try ModelSource.load(root + "/base")
        let lora = LoRAWeights(config: lc, model: base.config)
        lora.randomize(seed: 11, std: 0.1)
        let adapterDir = root + "/adapter"
        try FileManager.default.createDirectory(atPath: adapterDir, withIntermediateDirectories: true)
        try LoRAFiles.save(lora, directory: adapterDir, baseModel: root + "/base")

        let seqs: [[Int]] = [[1, 5, 9, 20, 33, 2, 96, 40, 41, 7, 0, 13], (0..<30).map { ($0 * 37 + 11) % 97 }]
        let ref = try python("peft_lora_reference.py", ["model": root + "/base", "adapter": adapterDir, "sequences": seqs])
        XCTAssertEqual((ref["adapted"] as! [String]).count, lora.adapters.count)
        XCTAssertEqual(ref["scaling"] as! Double, lc.alpha / Double(lc.rank))
        let theirs = ref["logprobs"] as! [[Double]]

        let policy = Transformer(parameters: base)
        policy.lora = lora
        let merged = Transformer(parameters: try ModelSource.load(adapterDir))   // base + adapter, merged
        let plain = policy.withoutAdapters()
        for (i, ids) in seqs.enumerated() {
            let t = ids.map(Int32.init)
            let preds = (0..<(t.count - 1)).map { Prediction(row: $0, target: t[$0 + 1]) }
            for (what, m) in [("adapters", policy), ("merged model", merged)] {
                let ours = m.logProbs(tokens: t, layout: .causal(length: t.count), predictions: preds)
                let worst = zip(ours, theirs[i]).map { abs(Double($0) - $1) }.max()!
                XCTAssertLessThan(worst, 1e-4, "\(family) \(what), sequence \(i): max |Δ log-prob| \(worst)")
            }
            // The adapter matters: without it the log-probs are further from the reference.
            let off = plain.logProbs(tokens: t, layout: .causal(length: t.count), predictions: preds)
            XCTAssertGreaterThan(zip(off, theirs[i]).map { abs(Double($0) - $1) }.max()!, 1e-2)
        }
        // The files read back exactly, with the settings of adapter_config.json.
        let back = try LoRAFiles.load(directory: adapterDir, model: base.config)
        XCTAssertEqual(back.config, lc)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: back.pointer, count: back.count)),
                       Array(UnsafeBufferPointer(start: lora.pointer, count: lora.count)))
        XCTAssertEqual(try LoRAFiles.baseModel(of: adapterDir), root + "/base")
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: adapterDir + "/adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(cfg["peft_type"] as? String, "LORA")
        XCTAssertEqual(cfg["task_type"] as? String, "CAUSAL_LM")
        XCTAssertEqual(cfg["r"] as? Int, lc.rank)
        XCTAssertEqual(cfg["target_modules"] as? [String], lc.targets.map(\.hfName))
        XCTAssertEqual(cfg["fan_in_fan_out"] as? Bool, false)
        XCTAssertEqual(cfg["bias"] as? String, "none")
    }

    func testQwen2AllTargets() throws {
        try check(family: "qwen2", extra: ["tied": true], lora: LoRAConfig(rank: 4, alpha: 8))
    }

    func testLlamaBiasesRopeScalingSomeTargets() throws {
        try check(family: "llama", extra: ["head_dim": 16, "attention_bias": true, "mlp_bias": true,
                                           "rope": HFFamilyTests.llama3Rope],
                  lora: LoRAConfig(rank: 3, alpha: 5, targets: [.q, .v, .o, .down]))
    }

    /// A wrong shape, a missing tensor or unsupported settings are clear errors.
    func testBadAdaptersAreRefused() throws {
        let dir = try S.tempDir(self) + "/a"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let lora = LoRAWeights(config: LoRAConfig(rank: 2, alpha: 4, targets: [.q]), model: .tiny())
        try LoRAFiles.save(lora, directory: dir, baseModel: "x")
        XCTAssertThrowsError(try LoRAFiles.load(directory: dir, model: .tiny(dim: 64))) {
            XCTAssertTrue("\($0)".contains("shape"), "\($0)")
        }
        XCTAssertThrowsError(try LoRAFiles.load(directory: dir, model: .tiny(layers: 3))) {
            XCTAssertTrue("\($0)".contains("missing tensor"), "\($0)")
        }
        let other = LoRAWeights(config: LoRAConfig(rank: 3, alpha: 4, targets: [.q]), model: .tiny())
        XCTAssertThrowsError(try LoRAFiles.read(directory: dir, into: other)) {
            XCTAssertTrue("\($0)".contains("r=2"), "\($0)")
        }
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))) as! [String: Any]
        cfg["use_dora"] = true
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
        XCTAssertThrowsError(try LoRAFiles.readConfig(directory: dir)) { XCTAssertTrue("\($0)".contains("use_dora")) }
    }
}
