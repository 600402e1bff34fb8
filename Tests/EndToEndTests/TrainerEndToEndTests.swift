import Foundation
import XCTest

/// `ebft-dist train` under mpirun with a tiny random model: the same run for any N.
final class TrainerEndToEndTests: XCTestCase {
    static let tiny = [
        "--preset", "small", "--quiet", "--steps", "3",
        "--set", "model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1",
        "--set", "chunk-length=32", "--set", "chunks-per-step=4", "--set", "samples-per-chunk=4",
        "--set", "eval-every=2", "--set", "eval-chunks=4", "--set", "learning-rate=1e-3",
    ]

    /// All F32 tensors of a safetensors file by name (parsed here, independently of the Model
    /// module's reader).
    static func safetensors(_ path: String) throws -> [String: [Float]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        var out: [String: [Float]] = [:]
        for (name, v) in header where name != "__metadata__" {
            let info = v as! [String: Any], offsets = info["data_offsets"] as! [Int]
            let bytes = data.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
            out[name] = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return out
    }

    /// np 1, 2 (1 learner + 1 worker), 3 (1 + 2), 4 (2 learners + 2 workers) and 2 colocated:
    /// the same rewards (the same sampled tokens), CE and gradient norms at every step, and
    /// final weights equal within 1e-5 relative (float reduction order is the only difference).
    func testSameRunForAnyNumberOfRanks() throws {
        var reference: [[String: Any]]?
        var referenceWeights: [String: [Float]]?
        for (np, extra) in [(1, [String]()), (2, []), (3, []), (4, ["--learners", "2"]), (2, ["--colocate"])] {
            let dir = runDir("np\(np)\(extra.joined())")
            let out = try MPIRun.run(np: np, ["train"] + Self.tiny + ["--run-dir", dir, "--set", "eval-seeds=2"] + extra,
                                     timeout: 120)
            XCTAssertTrue(out.succeeded, "\(out)")
            let m = try metrics(dir)
            let weights = try Self.safetensors(dir + "/checkpoints/step-000003/model.safetensors")
            XCTAssertGreaterThan(weights.count, 10)
            if let refW = referenceWeights {
                XCTAssertEqual(Set(refW.keys), Set(weights.keys))
                var worst: Float = 0
                for (name, a) in refW {
                    let b = try XCTUnwrap(weights[name])
                    let scale = max(a.map(abs).max() ?? 0, 1e-6)
                    for (x, y) in zip(a, b) { worst = max(worst, abs(x - y) / scale) }
                }
                XCTAssertLessThan(worst, 1e-5, "np \(np) \(extra): weights differ by \(worst) (relative to each tensor's max)")
            } else {
                referenceWeights = weights
            }
            XCTAssertEqual(m.filter { $0["kind"] as? String == "train" }.count, 3, "\(out)")
            XCTAssertEqual(m.filter { $0["kind"] as? String == "eval" }.count, 3, "\(out)")
            for e in m where e["kind"] as? String == "train" && (e["step"] as? Int ?? 0) >= 2 {
                // From the second step on, Adam's moment gives a gradient signal-to-noise estimate.
                let f = try XCTUnwrap(e["grad_signal_fraction"] as? Double, "np \(np): no grad_signal_fraction")
                XCTAssertTrue(f >= 0 && f <= 1, "grad_signal_fraction \(f)")
            }
            for e in m where e["kind"] as? String == "eval" {
                // Two sampling seeds: means with standard errors; raw-feature metrics beside the
                // whitened ones.
                XCTAssertGreaterThan(try XCTUnwrap(e["eval_reward_pass1_se"] as? Double), 0)
                let j = try XCTUnwrap(e["eval_objective_raw"] as? Double)
                // Each seed's value too, for changes paired over seeds; their mean is the value.
                let seeds = try (0..<2).map { try XCTUnwrap(e["eval_objective_raw_seed\($0)"] as? Double) }
                XCTAssertEqual((seeds[0] + seeds[1]) / 2, j, accuracy: 1e-12 * max(1, abs(j)))
                XCTAssertNil(e["eval_objective_raw_seed2"])
                XCTAssertNotNil(e["eval_feature_matching_raw_pass1_seed1"] as? Double)
            }
            guard let ref = reference else { reference = m; continue }
            for (a, b) in zip(ref, m) {
                for key in ["reward", "alignment", "diversity", "ce", "grad_norm", "eval_ce", "eval_reward_pass1",
                            "eval_reward_pass1_se", "eval_objective_raw", "eval_objective_raw_se",
                            "eval_feature_matching_raw_pass1", "eval_objective_raw_seed0", "eval_objective_raw_seed1"] {
                    guard let x = a[key] as? Double else { continue }
                    let y = try XCTUnwrap(b[key] as? Double, "np \(np) \(extra): \(key) missing")
                    XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "np \(np) \(extra): \(key) at step \(a["step"] ?? "?")")
                }
            }
        }
    }

    /// `--async`: workers sample with weights one update old. The run is the same for np 2 and
    /// np 3, and differs from the synchronous run once the staleness matters (non-zero drift).
    func testAsyncModeIsDeterministicAndOffPolicyByOneStep() throws {
        let args = ["train"] + Self.tiny.map { $0 == "3" ? "4" : $0 } + ["--async"]
        var runs: [[[String: Any]]] = []
        for np in [2, 3] {
            let dir = runDir("async\(np)")
            let out = try MPIRun.run(np: np, args + ["--run-dir", dir], timeout: 120)
            XCTAssertTrue(out.succeeded, "\(out)")
            runs.append(try metrics(dir))
        }
        XCTAssertEqual(runs[0].count, runs[1].count)
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["reward", "ce", "grad_norm", "logp_drift", "eval_ce"] {
                guard let x = a[key] as? Double else { continue }
                XCTAssertEqual(x, try XCTUnwrap(b[key] as? Double), accuracy: 1e-5 * max(1, abs(x)), key)
            }
        }
        let drift = runs[0].compactMap { $0["logp_drift"] as? Double }.max() ?? 0
        XCTAssertGreaterThan(drift, 1e-3, "stale rollouts should show a log-prob drift")
    }

    /// `--set method=sft`: teacher-forced CE on the chunks, every rank training on its share;
    /// the same run for np 1 and np 3, validation CE falls at every evaluation.
    ///
    /// The learning rate keeps the run in the regime where a step's effect is first order: at
    /// 3e-3 each AdamW step moves every weight by about 15 % of its initial scale (std 0.02) and
    /// validation CE falls by 0.007 and then 0.017 (steps 0 → 2 → 4). At 1e-2 (half the weight
    /// scale per step) the run overshoots and CE rises again at step 4 — a trajectory whose
    /// direction is not a property of SFT. The margin, 1e-3 per evaluation, is far above the
    /// spread across BLAS kernels (OpenBLAS cores Haswell, SkylakeX, Cooperlake, Zen and
    /// Sandybridge give the same CE to 1e-7 here) and far below the decrease.
    func testSFTBaseline() throws {
        var args = ["train"] + Self.tiny.map { $0 == "3" ? "4" : $0 } + ["--set", "method=sft"]
        args[args.firstIndex(of: "learning-rate=1e-3")!] = "learning-rate=3e-3"
        var runs: [[[String: Any]]] = []
        for np in [1, 3] {
            let dir = runDir("sft\(np)")
            let out = try MPIRun.run(np: np, args + ["--run-dir", dir], timeout: 120)
            XCTAssertTrue(out.succeeded, "\(out)")
            runs.append(try metrics(dir))
        }
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["ce", "grad_norm", "eval_ce"] {
                guard let x = a[key] as? Double else { continue }
                XCTAssertEqual(x, try XCTUnwrap(b[key] as? Double), accuracy: 1e-5 * max(1, abs(x)), key)
            }
            XCTAssertNil(a["reward"], "SFT samples nothing")
        }
        let ce = runs[0].compactMap { $0["eval_ce"] as? Double }
        XCTAssertEqual(ce.count, 3, "evaluations at steps 0, 2, 4")
        for (a, b) in zip(ce, ce.dropFirst()) {
            XCTAssertLessThan(b, a - 1e-3, "validation CE should fall at every evaluation under SFT: \(ce)")
        }
    }

    /// `--method rlvr` on translation (reward: sentence BLEU of the model's completions):
    /// the same rewards, advantages, losses and gradient norms for np 1 and np 2, and the
    /// downstream BLEU (every `eval-down-every` steps, split across ranks) the same too;
    /// `--eval-only` writes the step-0 evaluations of the same weights and trains nothing.
    func testRLVRBaselineWithDownstreamEvaluation() throws {
        let args = ["train"] + Self.tiny + ["--task", "translation", "--method", "rlvr",
                                            "--set", "rlvr-questions=4", "--set", "rlvr-max-new-tokens=6",
                                            "--set", "eval-down-every=2", "--set", "eval-down-limit=6",
                                            "--set", "eval-down-max-new-tokens=6"]
        var runs: [[[String: Any]]] = []
        var dirs: [String] = []
        for np in [1, 2] {
            let dir = runDir("rlvr\(np)")
            dirs.append(dir)
            let out = try MPIRun.run(np: np, args + ["--run-dir", dir], timeout: 180)
            XCTAssertTrue(out.succeeded, "\(out)")
            runs.append(try metrics(dir))
        }
        XCTAssertEqual(runs[0].count, runs[1].count)
        for (a, b) in zip(runs[0], runs[1]) {
            XCTAssertEqual(a["kind"] as? String, b["kind"] as? String)
            for key in ["reward", "reward_passn", "advantage_abs_mean", "loss", "grad_norm", "eval_ce", "bleu"] {
                guard let x = a[key] as? Double else { continue }
                XCTAssertEqual(x, try XCTUnwrap(b[key] as? Double), accuracy: 1e-5 * max(1, abs(x)), key)
            }
        }
        let train = runs[0].filter { $0["kind"] as? String == "train" }
        XCTAssertEqual(train.count, 3)
        for r in train {
            XCTAssertEqual(r["method"] as? String, "rlvr")
            let reward = try XCTUnwrap(r["reward"] as? Double)
            XCTAssertTrue(reward >= 0 && reward <= 1, "\(reward)")
        }
        XCTAssertGreaterThan(train.compactMap { $0["advantage_abs_mean"] as? Double }.max() ?? 0, 0,
                             "sentence BLEU should separate some samples")
        let down = runs[0].filter { $0["kind"] as? String == "downstream" }
        XCTAssertEqual(down.compactMap { $0["step"] as? Int }, [0, 2, 3])
        for d in down {
            XCTAssertEqual(d["benchmark"] as? String, "de-en")
            XCTAssertEqual(d["pairs"] as? Int, 6)
            XCTAssertNotNil(d["bleu"] as? Double)
            XCTAssertNotNil(d["chrf"] as? Double)
        }
        // --eval-only: the same step-0 evaluations, nothing trained, no checkpoint.
        let dir = runDir("rlvr-eval-only")
        let out = try MPIRun.run(np: 2, args + ["--run-dir", dir, "--eval-only"], timeout: 120)
        XCTAssertTrue(out.succeeded, "\(out)")
        let base = try metrics(dir)
        XCTAssertEqual(base.compactMap { $0["kind"] as? String }, ["eval", "downstream", "memory"])
        XCTAssertEqual(base[1]["bleu"] as? Double ?? -1, down[0]["bleu"] as? Double ?? -2, accuracy: 1e-9)
        XCTAssertEqual(base[0]["eval_ce"] as? Double ?? -1, runs[0][0]["eval_ce"] as? Double ?? -2, accuracy: 1e-6)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/checkpoints"))
        // The report over the base and the RLVR run: plots and the table.
        let out2 = runDir("report")
        let rep = try MPIRun.runDirect(["report", dir, dirs[0], "--out", out2], timeout: 60)
        XCTAssertTrue(rep.succeeded, "\(rep)")
        let md = try String(contentsOfFile: out2 + "/README.md", encoding: .utf8)
        XCTAssertTrue(md.contains("| base |") && md.contains("| rlvr |"), md)
        for f in ["translation-bleu.svg", "translation-reward.svg", "translation-val-ce.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out2 + "/" + f), f)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out2 + "/translation-pass1.svg"))
        // RLVR needs an explicit step count.
        let noSteps = try MPIRun.run(np: 1, args.map { $0 == "3" ? "0" : $0 } + ["--run-dir", runDir("rlvr-nosteps")])
        XCTAssertFalse(noSteps.succeeded)
        XCTAssertTrue(noSteps.stderr.contains("method rlvr needs an explicit number of steps"), "\(noSteps)")
    }

    func testBadRoleRequestIsAClearError() throws {
        let out = try MPIRun.run(np: 2, ["train"] + Self.tiny + ["--run-dir", runDir("bad"), "--learners", "2"], timeout: 60)
        XCTAssertFalse(out.succeeded)
        XCTAssertTrue(out.stderr.contains("learner"), "\(out)")
    }
}

/// Checkpoints, resume and the loss of a rank.
final class TrainerResumeEndToEndTests: XCTestCase {
    /// A run stopped after a checkpoint and resumed ends with bit-identical weights and Adam
    /// moments to the uninterrupted run (same N).
    func testResumeIsBitExact() throws {
        let args = ["train"] + TrainerEndToEndTests.tiny.map { $0 == "3" ? "4" : $0 }
        XCTAssertTrue(args.contains("4"))
        let a = runDir("a"), b = runDir("b")
        let full = try MPIRun.run(np: 3, args + ["--run-dir", a], timeout: 120)
        XCTAssertTrue(full.succeeded, "\(full)")
        let first = try MPIRun.run(np: 3, args + ["--run-dir", b, "--stop-after", "2"], timeout: 120)
        XCTAssertTrue(first.succeeded, "\(first)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: b + "/checkpoints/step-000002/state.json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: b + "/checkpoints/step-000004"))
        let rest = try MPIRun.run(np: 3, ["train", "--resume", b, "--quiet"], timeout: 120)
        XCTAssertTrue(rest.succeeded, "\(rest)")
        XCTAssertTrue(rest.stderr.contains("resumed from"), "\(rest)")
        for f in ["model.safetensors", "optimizer.safetensors"] {
            XCTAssertEqual(try file(a + "/checkpoints/step-000004/" + f), try file(b + "/checkpoints/step-000004/" + f), f)
        }
        // The metrics file of the resumed run reads like the uninterrupted one's.
        let lines = { (d: String) in try String(contentsOfFile: d + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").count }
        XCTAssertEqual(try lines(a), try lines(b))
    }

    /// Every regular file under `dir` (relative path → contents).
    func snapshot(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: dir) else { return out }
        for case let rel as String in e {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), !isDir.boolValue { out[rel] = try file(dir + "/" + rel) }
        }
        return out
    }

    func checkpoints(_ run: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints")) ?? []).sorted()
    }

    func metricLines(_ run: String) throws -> [String] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// (kind, step) of every metrics line.
    func kinds(_ lines: [String]) throws -> [String] {
        try lines.map {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            return "\(o["kind"] as? String ?? "?")\(o["step"] as? Int ?? -1)"
        }
    }

    /// `--resume B` where B is a copy of run A writes steps 3–4 into B and leaves A byte for
    /// byte as it was (files and checkpoint list); `--resume A --run-dir C` writes into C, which
    /// gets A's metrics up to the resumed step, and again leaves A alone.
    func testResumeWritesWhereItIsPointed() throws {
        var args = ["train"] + TrainerEndToEndTests.tiny + ["--set", "save-every=1"]
        args[args.firstIndex(of: "--steps")! + 1] = "2"
        let a = runDir("where-a"), b = runDir("where-b"), c = runDir("where-c")
        let first = try MPIRun.run(np: 3, args + ["--run-dir", a], timeout: 120)
        XCTAssertTrue(first.succeeded, "\(first)")
        XCTAssertEqual(checkpoints(a), ["latest", "step-000001", "step-000002"])
        let before = try snapshot(a)
        XCTAssertGreaterThan(before.count, 8)
        try FileManager.default.copyItem(atPath: a, toPath: b)

        let resumed = try MPIRun.run(np: 3, ["train", "--resume", b, "--steps", "4", "--quiet"], timeout: 120)
        XCTAssertTrue(resumed.succeeded, "\(resumed)")
        XCTAssertEqual(try snapshot(a), before, "the resumed copy changed the original run")
        XCTAssertEqual(checkpoints(a), ["latest", "step-000001", "step-000002"])
        XCTAssertEqual(checkpoints(b), ["latest", "step-000003", "step-000004"])
        XCTAssertEqual(try kinds(try metricLines(b)), ["eval0", "train1", "train2", "eval2", "train3", "train4", "eval4", "memory4"])
        XCTAssertTrue(resumed.stderr.contains("run directory: \(b)"), "\(resumed)")
        XCTAssertTrue(try String(contentsOfFile: b + "/config.yaml", encoding: .utf8).contains("steps: 4"))

        let moved = try MPIRun.run(np: 3, ["train", "--resume", a, "--run-dir", c, "--steps", "4", "--quiet"], timeout: 120)
        XCTAssertTrue(moved.succeeded, "\(moved)")
        XCTAssertEqual(try snapshot(a), before, "resuming into another run directory changed the source run")
        XCTAssertEqual(checkpoints(c), ["latest", "step-000003", "step-000004"])
        let lc = try metricLines(c)
        XCTAssertEqual(try kinds(lc), ["eval0", "train1", "train2", "eval2", "train3", "train4", "eval4", "memory4"])
        XCTAssertEqual(Array(lc.prefix(3)), Array(try metricLines(a).prefix(3)), "C starts with A's metrics up to step 2")
        XCTAssertTrue(moved.stderr.contains("run directory: \(c)"), "\(moved)")
        // Both resumed from the same checkpoint with the same N: the same weights.
        XCTAssertEqual(try file(b + "/checkpoints/step-000004/model.safetensors"),
                       try file(c + "/checkpoints/step-000004/model.safetensors"))
    }

    /// A checkpoint used as a model is verified whatever the command: `score --model CKPT` (and
    /// a run directory) reads an intact checkpoint; one flipped byte in its model.safetensors
    /// makes `score` and `train --set model=CKPT` exit non-zero naming the file.
    func testDamagedCheckpointAsModelIsAnError() throws {
        var args = ["train"] + TrainerEndToEndTests.tiny
        args[args.firstIndex(of: "--steps")! + 1] = "1"
        let run = runDir("as-model")
        let out = try MPIRun.run(np: 1, args + ["--run-dir", run, "--set", "eval-every=0"], timeout: 120)
        XCTAssertTrue(out.succeeded, "\(out)")
        let ckpt = run + "/checkpoints/step-000001"
        let text = run + "/text.txt"
        try "func add(_ a: Int, _ b: Int) -> Int { a + b }\n".write(toFile: text, atomically: true, encoding: .utf8)
        for model in [ckpt, run] {
            let ok = try MPIRun.runDirect(["score", "--model", model, "--text-file", text], timeout: 60)
            XCTAssertTrue(ok.succeeded && ok.stdout.contains("mean NLL"), "\(ok)")
        }

        let weights = ckpt + "/model.safetensors"
        var data = try file(weights)
        data[data.count / 2] ^= 0x10
        try data.write(to: URL(fileURLWithPath: weights))
        let score = try MPIRun.runDirect(["score", "--model", ckpt, "--text-file", text], timeout: 60)
        XCTAssertFalse(score.succeeded, "\(score)")
        XCTAssertTrue(score.stderr.contains(weights) && score.stderr.contains("checksum"), "\(score)")
        let train = try MPIRun.run(np: 1, args + ["--run-dir", runDir("as-model-2"), "--set", "model=" + ckpt], timeout: 120)
        XCTAssertFalse(train.succeeded, "\(train)")
        XCTAssertTrue(train.stderr.contains(weights) && train.stderr.contains("checksum"), "\(train)")
    }

    /// SIGKILL one rollout worker mid-run: every rank is gone with a non-zero exit within 30 s
    /// and a message naming the lost rank; `--resume` then completes the run.
    func testKilledWorkerThenResume() throws {
        let dir = runDir("kill")
        var args = ["train"] + TrainerEndToEndTests.tiny + ["--run-dir", dir, "--set", "save-every=2",
                                                          "--set", "eval-every=0"]
        args[args.firstIndex(of: "--steps")! + 1] = "400"
        var killedAt: Date?
        var victim: pid_t = 0
        let out = try MPIRun.run(np: 3, args, timeout: 180) {
            guard killedAt == nil,
                  FileManager.default.fileExists(atPath: dir + "/checkpoints/latest"),
                  let pid = Self.rankPID(2, runDir: dir) else { return }
            victim = pid
            kill(pid, SIGKILL)
            killedAt = Date()
        }
        let killed = try XCTUnwrap(killedAt, "no checkpoint appeared / rank 2 not found: \(out)")
        XCTAssertFalse(out.succeeded, "\(out)")
        XCTAssertFalse(out.timedOut, "\(out)")
        let gone = Date().timeIntervalSince(killed)
        XCTAssertLessThan(gone, 30, "the job took \(gone) s to end after the kill")
        let text = out.stdout + out.stderr
        XCTAssertTrue(text.contains("rank 2"), "the message should name rank 2 (pid \(victim)): \(out)")
        XCTAssertNil(Self.rankPID(0, runDir: dir), "rank 0 survived")
        XCTAssertNil(Self.rankPID(1, runDir: dir), "rank 1 survived")

        let latest = try String(contentsOfFile: dir + "/checkpoints/latest", encoding: .utf8)
        let done = Int(latest.trimmingCharacters(in: .whitespacesAndNewlines).suffix(6)) ?? 0
        XCTAssertGreaterThanOrEqual(done, 2)
        let resumed = try MPIRun.run(np: 3, ["train", "--resume", dir, "--quiet", "--steps", "\(done + 2)"], timeout: 120)
        XCTAssertTrue(resumed.succeeded, "\(resumed)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/checkpoints/" + String(format: "step-%06d", done + 2)))
    }

    /// The pid of the live process that is MPI rank `rank` of the run writing to `runDir`.
    static func rankPID(_ rank: Int, runDir: String) -> pid_t? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for e in entries {
            guard let pid = pid_t(e),
                  let cmd = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(e)/cmdline")),
                  String(decoding: cmd, as: UTF8.self).contains(runDir),
                  let env = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(e)/environ")) else { continue }
            let vars = env.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if vars.contains("OMPI_COMM_WORLD_RANK=\(rank)") {
                if let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                   stat.split(separator: " ").dropFirst(2).first == "Z" { continue }
                return pid
            }
        }
        return nil
    }
}
