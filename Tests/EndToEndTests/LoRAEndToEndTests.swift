import Foundation
import XCTest

/// `ebft-dist train --set lora-rank=r` under mpirun with a tiny random model: only the adapters
/// are trained and broadcast, the run is the same for np 1 and np 3, the sampler and learner
/// agree on log-probs, checkpoints hold the adapters in the PEFT layout, resume is bit-exact,
/// and a LoRA checkpoint works as a model and as `lora-init`.
final class LoRAEndToEndTests: XCTestCase {
    /// dim 32, 2 layers, ffn 64, rank 4 on all seven projections: per layer
    /// 4·(32+32) q + 2·4·(32+16) k,v + 4·(32+32) o + 2·4·(32+64) gate,up + 4·(64+32) down.
    static let adapterValues = 2 * (4 * 64 + 2 * 4 * 48 + 4 * 64 + 2 * 4 * 96 + 4 * 96)
    static let lora = TrainerEndToEndTests.tiny.map { $0 == "learning-rate=1e-3" ? "learning-rate=2e-2" : $0 }
        + ["--set", "lora-rank=4", "--set", "lora-alpha=8"]

    /// np 1 and np 3 (1 learner + 2 workers): the same rewards, CE, gradient norms and
    /// evaluations; sampler/learner log-prob drift ≤ 1e-4; the broadcast carries the adapters
    /// only; the adapters change the model (the evaluation CE moves) and the checkpoint is PEFT.
    func testSameRunForNp1AndNp3() throws {
        var runs: [[[String: Any]]] = []
        var adapters: [[String: [Float]]] = []
        for np in [1, 3] {
            let dir = runDir("np\(np)")
            let out = try MPIRun.run(np: np, ["train"] + Self.lora + ["--run-dir", dir], timeout: 180)
            XCTAssertTrue(out.succeeded, "\(out)")
            runs.append(try metrics(dir))
            let ck = dir + "/checkpoints/step-000003"
            XCTAssertFalse(FileManager.default.fileExists(atPath: ck + "/model.safetensors"), "no copy of the base weights")
            let t = try TrainerEndToEndTests.safetensors(ck + "/adapter_model.safetensors")
            XCTAssertEqual(t.count, 2 * 7 * 2)
            XCTAssertEqual(t.values.reduce(0) { $0 + $1.count }, Self.adapterValues)
            XCTAssertEqual(t["base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight"]?.count, 4 * 32)
            XCTAssertEqual(t["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"]?.count, 32 * 4)
            let b = try XCTUnwrap(t["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"])
            XCTAssertGreaterThan(b.map(abs).max() ?? 0, 0, "B moved away from its zero initialisation")
            adapters.append(t)
            let cfg = try JSONSerialization.jsonObject(with: file(ck + "/adapter_config.json")) as! [String: Any]
            XCTAssertEqual(cfg["peft_type"] as? String, "LORA")
            XCTAssertEqual(cfg["r"] as? Int, 4)
            XCTAssertEqual(cfg["lora_alpha"] as? Double, 8)
            XCTAssertEqual(cfg["target_modules"] as? [String],
                           ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
            XCTAssertEqual(cfg["base_model_name_or_path"] as? String, "random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1")
        }
        let train = runs.map { $0.filter { $0["kind"] as? String == "train" } }
        XCTAssertEqual(train[0].count, 3)
        for (np, run) in zip([1, 3], train) {
            for r in run {
                let drift = try XCTUnwrap(r["logp_drift"] as? Double)
                XCTAssertLessThanOrEqual(drift, 1e-4, "np \(np): the sampler and the learner disagree")
                // One broadcast per step to each of the 2 workers: the adapters only.
                XCTAssertEqual(r["sync_bytes"] as? Double, np == 1 ? 0 : Double(Self.adapterValues * 4 * 2))
            }
        }
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["reward", "alignment", "diversity", "ce", "grad_norm", "eval_ce", "eval_reward_pass1"] {
                guard let x = a[key] as? Double else { continue }
                let y = try XCTUnwrap(b[key] as? Double, "np 3: \(key) missing")
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "\(key) at step \(a["step"] ?? "?")")
            }
        }
        var worst: Float = 0
        for (name, a) in adapters[0] {
            let b = try XCTUnwrap(adapters[1][name])
            let scale = max(a.map(abs).max() ?? 0, 1e-6)
            for (x, y) in zip(a, b) { worst = max(worst, abs(x - y) / scale) }
        }
        XCTAssertLessThan(worst, 1e-5, "adapters after np 1 and np 3 differ by \(worst) (relative)")
        let evalCE = runs[0].compactMap { $0["eval_ce"] as? Double }
        XCTAssertEqual(evalCE.count, 3)
        XCTAssertNotEqual(evalCE.first, evalCE.last, "training the adapters changes the model")
    }

    /// Stopped after step 2 and resumed: the adapters and Adam moments at step 4 are the bytes
    /// of the uninterrupted run's. The checkpoint then serves as a model (score: base + adapters)
    /// and as lora-init; a full fine-tuning resume of it is refused.
    func testResumeIsBitExactAndTheCheckpointIsAModel() throws {
        let args = ["train"] + Self.lora.map { $0 == "3" ? "4" : $0 }
        let a = runDir("a"), b = runDir("b")
        let full = try MPIRun.run(np: 3, args + ["--run-dir", a], timeout: 180)
        XCTAssertTrue(full.succeeded, "\(full)")
        let first = try MPIRun.run(np: 3, args + ["--run-dir", b, "--stop-after", "2"], timeout: 180)
        XCTAssertTrue(first.succeeded, "\(first)")
        let rest = try MPIRun.run(np: 3, ["train", "--resume", b, "--quiet"], timeout: 180)
        XCTAssertTrue(rest.succeeded, "\(rest)")
        XCTAssertTrue(rest.stderr.contains("resumed from"), "\(rest)")
        for f in ["adapter_model.safetensors", "optimizer.safetensors", "adapter_config.json"] {
            XCTAssertEqual(try file(a + "/checkpoints/step-000004/" + f), try file(b + "/checkpoints/step-000004/" + f), f)
        }
        let ma = try metrics(a), mb = try metrics(b)
        XCTAssertEqual(ma.count, mb.count)

        // score: the checkpoint means base + adapters (not the base alone).
        let text = a + "/text.txt"
        try "def add(a, b):\n    return a + b\n".write(toFile: text, atomically: true, encoding: .utf8)
        let ck = a + "/checkpoints/step-000004"
        let s1 = try MPIRun.runDirect(["score", "--model", ck, "--text-file", text], timeout: 60)
        XCTAssertTrue(s1.succeeded, "\(s1)")
        let s0 = try MPIRun.runDirect(["score", "--model", b + "/checkpoints/step-000002", "--text-file", text], timeout: 60)
        XCTAssertTrue(s0.succeeded, "\(s0)")
        XCTAssertNotEqual(s1.stdout, s0.stdout, "the adapters of steps 2 and 4 score differently")

        // lora-init: a run starting from the step-4 adapters evaluates, before its first step,
        // what run a evaluated at step 4.
        let c = runDir("c")
        let initRun = try MPIRun.run(np: 1, args + ["--run-dir", c, "--set", "lora-init=\(ck)", "--stop-after", "1"],
                                     timeout: 180)
        XCTAssertTrue(initRun.succeeded, "\(initRun)")
        let evalA = try XCTUnwrap(ma.last { $0["kind"] as? String == "eval" && $0["step"] as? Int == 4 }?["eval_ce"] as? Double)
        let evalC = try XCTUnwrap(try metrics(c).first { $0["kind"] as? String == "eval" }?["eval_ce"] as? Double)
        XCTAssertEqual(evalA, evalC, accuracy: 1e-5 * max(1, abs(evalA)))

        // Resuming the LoRA checkpoint as full fine-tuning is refused with a clear message.
        let wrong = try MPIRun.run(np: 1, ["train", "--resume", ck, "--run-dir", runDir("d"), "--quiet",
                                           "--set", "lora-rank=0"], timeout: 120)
        XCTAssertFalse(wrong.succeeded)
        XCTAssertTrue((wrong.stderr + wrong.stdout).contains("LoRA checkpoint"), "\(wrong)")
    }

    /// A LoRA run on a Hugging Face base (a full fine-tuning checkpoint, which is one), then
    /// `export --merge` of its checkpoint: the merged directory scores exactly as the
    /// checkpoint itself (base + adapters, merged on load) and differently from the base;
    /// `export` of an adapter without `--merge` is refused.
    func testExportMergeEqualsTheCheckpointAsAModel() throws {
        let full = runDir("base")
        let one = TrainerEndToEndTests.tiny.map { $0 == "3" ? "1" : $0 }
        let r0 = try MPIRun.run(np: 1, ["train"] + one + ["--run-dir", full], timeout: 120)
        XCTAssertTrue(r0.succeeded, "\(r0)")
        let base = full + "/checkpoints/step-000001"
        let lr = runDir("lora-on-hf")
        let r1 = try MPIRun.run(np: 1, ["train"] + Self.lora.map { $0 == "3" ? "2" : $0 }
                                + ["--set", "model=\(base)", "--run-dir", lr], timeout: 120)
        XCTAssertTrue(r1.succeeded, "\(r1)")
        let ck = lr + "/checkpoints/step-000002"
        let cfg = try JSONSerialization.jsonObject(with: file(ck + "/adapter_config.json")) as! [String: Any]
        XCTAssertEqual(cfg["base_model_name_or_path"] as? String, URL(fileURLWithPath: base).standardizedFileURL.path)
        let refused = try MPIRun.runDirect(["export", "--model", ck, "--out", lr + "/nope"], timeout: 60)
        XCTAssertFalse(refused.succeeded)
        XCTAssertTrue(refused.stderr.contains("--merge"), "\(refused)")
        let merged = lr + "/merged"
        let ex = try MPIRun.runDirect(["export", "--model", ck, "--merge", "--out", merged], timeout: 120)
        XCTAssertTrue(ex.succeeded, "\(ex)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: merged + "/model.safetensors"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: merged + "/tokenizer.json"))
        let text = lr + "/text.txt"
        try "for i in range(10):\n    print(i * i)\n".write(toFile: text, atomically: true, encoding: .utf8)
        var scores: [String] = []
        for m in [merged, ck, base] {
            let s = try MPIRun.runDirect(["score", "--model", m, "--text-file", text], timeout: 60)
            XCTAssertTrue(s.succeeded, "\(s)")
            scores.append(s.stdout)
        }
        XCTAssertEqual(scores[0], scores[1], "the exported merged model is the checkpoint as a model")
        XCTAssertNotEqual(scores[1], scores[2], "the adapters change the base model's scores")
    }
}
