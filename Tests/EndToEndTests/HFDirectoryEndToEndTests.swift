import Foundation
import XCTest

/// `ebft-dist train --set model=DIR` on real Hugging Face directories of the Qwen2 and Llama-3
/// families (issue 12): tiny random weights and config.json written by the independent NumPy
/// reference (Tests/reference/hf_family_reference.py), with a tokenizer.json /
/// tokenizer_config.json / generation_config.json of the family's style built by the
/// `tokenizers` library (Tests/reference/tokenizer_families.py), the model's vocabulary the
/// tokenizer's size. Two EBFT steps on a small code corpus give the same metrics under np 1 and
/// np 2; the checkpoint is a directory of the family with the family's tokenizer files, which
/// transformers' AutoTokenizer loads and which tokenises as the source tokenizer does; `score`
/// and `generate` on the checkpoint use that tokenizer and agree with the reference's forward
/// pass on the checkpoint's weights.
final class HFDirectoryEndToEndTests: XCTestCase {
    static let referenceDir = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent()
        .appendingPathComponent("../reference").standardized.path

    /// Each family's model shape (hf_family_reference.py `make` keys, without dir and vocab).
    /// Llama-3 as Llama-3.2: tied head, rope theta 500000 with llama3 scaling whose original
    /// context (16) is shorter than the chunks; Qwen2 as Qwen2.5-7B: q/k/v biases, untied head.
    typealias Family = (name: String, tokenizer: String, modelType: String, make: [String: Any])

    static let families: [Family] = [
        ("qwen2", "qwen2", "qwen2",
         ["family": "qwen2", "hidden": 32, "layers": 2, "heads": 4, "kv_heads": 2, "ffn": 64, "tied": false,
          "rope_theta": 1_000_000, "max_positions": 256, "seed": 11, "std": 0.15]),
        ("llama3", "llama3", "llama",
         ["family": "llama", "hidden": 32, "layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 12, "ffn": 64,
          "tied": true, "rope_theta": 500_000, "spelling": 5, "max_positions": 256, "seed": 12, "std": 0.15,
          "rope": ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 16] as [String: Any]]),
    ]

    /// Two EBFT steps on the `email` package of the Python stdlib (a few hundred kB of code).
    static let base = [
        "--preset", "small", "--quiet", "--steps", "2", "--set", "corpus-root=/usr/lib/python3.11/email",
        "--set", "chunk-length=32", "--set", "chunks-per-step=2", "--set", "samples-per-chunk=4",
        "--set", "eval-every=2", "--set", "eval-chunks=2", "--set", "learning-rate=1e-3",
    ]

    /// A text with code, non-ASCII letters, digits and the families' special tokens.
    static let sample = "def f(x):\n    return x ** 2  # 12345 café ünï 速い <|im_start|>user<|im_end|><|eot_id|>"

    func tempDir(_ name: String) -> String { runDir(name, create: true) }

    /// Runs a python3 script (`-c`) with `args`; its stdout is one JSON object.
    func python(_ script: String, _ args: [String]) throws -> [String: Any] {
        let out = try MPIRun.spawn(["python3", "-c", script] + args, environment: [:], timeout: 300)
        guard out.succeeded else {
            throw MPIRun.HarnessError(description: "python3 failed (scripts/install-deps.sh installs numpy, "
                                      + "tokenizers and transformers): \(out)")
        }
        return try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as! [String: Any]
    }

    /// Builds the family's tokenizer files in `tokDir` (tokenizer_families.py) and the model
    /// directory `dir` with the tokenizer's vocabulary size (hf_family_reference.py `make`), the
    /// tokenizer files copied in. Returns the vocabulary size.
    func makeDirectory(_ dir: String, family f: Family, tokDir: String) throws -> Int {
        let script = """
        import json, os, shutil, sys
        from tokenizers import Tokenizer
        ref, tok_dir, make = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
        sys.path.insert(0, ref)
        import hf_family_reference
        tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
        make["vocab"] = tok.get_vocab_size(with_added_tokens=True)
        hf_family_reference.make(make)
        for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            shutil.copy(os.path.join(tok_dir, name), os.path.join(make["dir"], name))
        print(json.dumps({"vocab": make["vocab"]}))
        """
        var make = f.make
        make["dir"] = dir
        let spec = String(decoding: try JSONSerialization.data(withJSONObject: make), as: UTF8.self)
        let r = try python(script, [Self.referenceDir, tokDir + "/" + f.tokenizer, spec])
        return try XCTUnwrap(r["vocab"] as? Int)
    }

    /// Both families' tokenizer files (tokenizer_families.py build), made once per process.
    static let tokenizers: Result<String, Error> = Result {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("ebft-e2e-hfdir-\(getpid())-tokenizers").path
        try? FileManager.default.removeItem(atPath: dir)
        let build = try MPIRun.spawn(["python3", referenceDir + "/tokenizer_families.py", "build", dir],
                                     environment: [:], timeout: 300)
        guard build.succeeded else {
            throw MPIRun.HarnessError(description: "tokenizer_families.py build failed (scripts/install-deps.sh "
                                      + "installs tokenizers): \(build)")
        }
        return dir
    }

    override class func tearDown() {
        if case .success(let dir) = tokenizers { try? FileManager.default.removeItem(atPath: dir) }
        super.tearDown()
    }

    func testQwen2DirectoryTrainsScoresAndGeneratesWithItsOwnTokenizer() throws {
        try check(Self.families[0])
    }

    func testLlama3DirectoryTrainsScoresAndGeneratesWithItsOwnTokenizer() throws {
        try check(Self.families[1])
    }

    func check(_ f: Family) throws {
        let root = tempDir(f.name)
        let tokDir = try Self.tokenizers.get()
        let source = root + "/" + f.name + "-source"
        let vocab = try makeDirectory(source, family: f, tokDir: tokDir)
        XCTAssertGreaterThan(vocab, 1000, f.name)

        // 2 EBFT steps under np 1 and np 2: the same metrics.
        var runs: [[[String: Any]]] = []
        for np in [1, 2] {
            let run = root + "/\(f.name)-np\(np)"
            let out = try MPIRun.run(np: np, ["train"] + Self.base + ["--set", "model=" + source, "--run-dir", run],
                                     timeout: 120)
            XCTAssertTrue(out.succeeded, "\(f.name) np \(np): \(out)")
            let m = try metrics(run)
            XCTAssertEqual(m.filter { $0["kind"] as? String == "train" }.count, 2, "\(f.name) np \(np): \(out)")
            XCTAssertEqual(m.filter { $0["kind"] as? String == "eval" }.count, 2, "\(f.name) np \(np): \(out)")
            runs.append(m)
        }
        XCTAssertEqual(runs[0].count, runs[1].count, f.name)
        var compared = 0
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["reward", "alignment", "diversity", "ce", "grad_norm", "eval_ce", "eval_reward_pass1"] {
                guard let x = a[key] as? Double else { continue }
                let y = try XCTUnwrap(b[key] as? Double, "\(f.name): \(key) missing for np 2")
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "\(f.name): \(key) at step \(a["step"] ?? "?")")
                compared += 1
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 10, "\(f.name): too few metrics compared")

        // The checkpoint: a directory of the family with the family's tokenizer files.
        let ckpt = root + "/\(f.name)-np2/checkpoints/step-000002"
        let configData = try Data(contentsOf: URL(fileURLWithPath: ckpt + "/config.json"))
        let config = try JSONSerialization.jsonObject(with: configData) as! [String: Any]
        XCTAssertEqual(config["model_type"] as? String, f.modelType, f.name)
        XCTAssertEqual(config["vocab_size"] as? Int, vocab, f.name)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ckpt + "/tokenizer.json")),
                       try Data(contentsOf: URL(fileURLWithPath: source + "/tokenizer.json")),
                       "\(f.name): the checkpoint's tokenizer.json is not the source's")

        // AutoTokenizer on the checkpoint gives the source tokenizer's ids (special tokens
        // and the post-processor's BOS included); the reference forward pass on the
        // checkpoint's weights gives the log-probs of the score ids and greedy tokens.
        let text = root + "/\(f.name)-sample.txt"
        try Self.sample.write(toFile: text, atomically: true, encoding: .utf8)
        let prompt = "def add(a, b):\n    return"
        let check = """
        import json, sys
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer
        ref, source, ckpt, text, prompt = sys.argv[1:6]
        sys.path.insert(0, ref)
        import hf_family_reference as h
        sample = open(text, encoding="utf-8").read()
        src = Tokenizer.from_file(source + "/tokenizer.json")
        auto = AutoTokenizer.from_pretrained(ckpt)
        out = {"auto": auto(sample)["input_ids"], "source": src.encode(sample).ids}
        src.encode_special_tokens = True
        plain = src.encode(sample, add_special_tokens=False).ids
        p = src.encode(prompt, add_special_tokens=True).ids
        m = h.Model(ckpt)
        lp = m.log_softmax(m.logits(plain))
        out["plain"] = plain
        out["logprobs"] = [float(lp[i, plain[i + 1]]) for i in range(len(plain) - 1)]
        ids, greedy, margin = list(p), [], float("inf")
        for _ in range(8):
            z = m.logits(ids)[-1]
            top = sorted(z)[-2:]
            margin = min(margin, float(top[1] - top[0]))
            greedy.append(int(z.argmax()))
            ids.append(greedy[-1])
        out["greedy"], out["margin"] = greedy, margin
        print(json.dumps(out))
        """
        let r = try python(check, [Self.referenceDir, source, ckpt, text, prompt])
        let auto = try XCTUnwrap(r["auto"] as? [Int]), src = try XCTUnwrap(r["source"] as? [Int])
        XCTAssertEqual(auto, src, "\(f.name): AutoTokenizer on the checkpoint")
        XCTAssertGreaterThan(auto.count, 10, f.name)

        let score = try MPIRun.runDirect(["score", "--model", ckpt, "--text-file", text, "--json"], timeout: 60)
        XCTAssertTrue(score.succeeded, "\(score)")
        let s = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(score.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(s["tokens"] as? [Int], r["plain"] as? [Int], "\(f.name): score's ids are not the tokenizer's")
        let ours = try XCTUnwrap(s["logprobs"] as? [Double]), theirs = try XCTUnwrap(r["logprobs"] as? [Double])
        XCTAssertEqual(ours.count, theirs.count, f.name)
        let worst = zip(ours, theirs).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-4, "\(f.name): score's log-probs vs the reference on the checkpoint")

        // Greedy decoding: the reference's smallest top-2 gap must dwarf Float32 rounding.
        let margin = try XCTUnwrap(r["margin"] as? Double)
        XCTAssertGreaterThan(margin, 1e-3, "\(f.name): the reference's greedy steps have a near tie")
        let gen = try MPIRun.runDirect(["generate", "--model", ckpt, "--prompt", prompt, "--max-new-tokens", "8",
                                        "--temperature", "0", "--ids"], timeout: 60)
        XCTAssertTrue(gen.succeeded, "\(gen)")
        let generated = gen.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        let greedy = try XCTUnwrap(r["greedy"] as? [Int])
        XCTAssertEqual(generated, Array(greedy.prefix(generated.count)), "\(f.name): greedy tokens")
        if generated.count < greedy.count {
            // generate stops before an end-of-sequence token (generation_config.json); the reference runs on.
            let stops = try XCTUnwrap(r["stops"] as? [Int])
            XCTAssertTrue(stops.contains(greedy[generated.count]), "\(f.name): \(generated) stops short of \(greedy)")
        }
        let text8 = try MPIRun.runDirect(["generate", "--model", ckpt, "--prompt", prompt, "--max-new-tokens", "8",
                                          "--temperature", "0"], timeout: 60)
        XCTAssertTrue(text8.succeeded, "\(text8)")
    }
}
