import Foundation
import XCTest

/// `ebft-dist train` checkpoints and `ebft-dist export` through the binary: a checkpoint is a
/// Hugging Face directory that transformers' AutoTokenizer and AutoConfig load; export to HF,
/// to GGUF (F32, Q8_0) and back gives the same tensors; the gguf package reads the GGUF; bad
/// options and a source without a tokenizer are clear errors.
final class ExportEndToEndTests: XCTestCase {
    func tempDir(_ name: String) -> String { runDir(name, create: true) }

    func python(_ script: String, _ args: [String]) throws -> [String: Any] {
        let out = try MPIRun.spawn(["python3", "-c", script] + args, environment: [:], timeout: 300)
        guard out.succeeded else { throw MPIRun.HarnessError(description: "python3 failed: \(out)") }
        return try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as! [String: Any]
    }

    func testCheckpointAndExportsLoadWithTransformersAndRoundTrip() throws {
        let root = tempDir("run")
        let run = root + "/run"
        let train = try MPIRun.run(np: 1, ["train"] + TrainerEndToEndTests.tiny.map { $0 == "3" ? "2" : $0 }
                                   + ["--run-dir", run, "--set", "eval-every=0"], timeout: 300)
        XCTAssertTrue(train.succeeded, "\(train)")
        let ckpt = run + "/checkpoints/step-000002"
        for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: ckpt + "/" + f), "checkpoint lacks \(f)")
        }

        let hf = root + "/hf", f32 = root + "/m.gguf", q8 = root + "/q8.gguf", back = root + "/back"
        for args in [["--model", run, "--out", hf],
                     ["--model", run, "--format", "gguf", "--out", f32],
                     ["--model", run, "--format", "gguf", "--dtype", "q8_0", "--out", q8],
                     ["--model", f32, "--out", back]] {
            let out = try MPIRun.runDirect(["export"] + args, timeout: 120)
            XCTAssertTrue(out.succeeded, "\(out)")
        }
        // HF → GGUF (F32) → HF gives the checkpoint's tensors exactly.
        let a = try TrainerEndToEndTests.safetensors(ckpt + "/model.safetensors")
        XCTAssertEqual(a, try TrainerEndToEndTests.safetensors(hf + "/model.safetensors"))
        XCTAssertEqual(a, try TrainerEndToEndTests.safetensors(back + "/model.safetensors"))

        let script = """
        import json, sys
        from transformers import AutoTokenizer, AutoConfig
        from gguf import GGUFReader
        ckpt, hf, back, f32, q8 = sys.argv[1:6]
        text = "def f(x):\\n    return x ** 2  # 123 <|im_start|>user ünï<|im_end|>"
        ids = {d: AutoTokenizer.from_pretrained(d)(text)["input_ids"] for d in (ckpt, hf, back)}
        cfg = AutoConfig.from_pretrained(hf)
        out = {"ids": ids[ckpt], "same": ids[ckpt] == ids[hf] == ids[back], "config": type(cfg).__name__,
               "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size}
        for name, p in (("f32", f32), ("q8", q8)):
            r = GGUFReader(p)
            f = r.fields
            out[name] = {"arch": f["general.architecture"].contents(), "tokens": len(f["tokenizer.ggml.tokens"].data),
                         "pre": f["tokenizer.ggml.pre"].contents(),
                         "types": sorted({t.tensor_type.name for t in r.tensors}), "tensors": len(r.tensors)}
        print(json.dumps(out))
        """
        let r = try python(script, [ckpt, hf, back, f32, q8])
        XCTAssertEqual(r["same"] as? Bool, true, "\(r)")
        // SmolLM2's ids for this text: <|im_start|> = 1, <|im_end|> = 2 matched as special tokens.
        let ids = try XCTUnwrap(r["ids"] as? [Int])
        XCTAssertTrue(ids.contains(1) && ids.last == 2, "\(ids)")
        XCTAssertEqual(r["config"] as? String, "LlamaConfig")
        XCTAssertEqual(r["layers"] as? Int, 2)
        XCTAssertEqual(r["hidden"] as? Int, 32)
        let g32 = try XCTUnwrap(r["f32"] as? [String: Any]), g8 = try XCTUnwrap(r["q8"] as? [String: Any])
        XCTAssertEqual(g32["arch"] as? String, "llama")
        XCTAssertEqual(g32["tokens"] as? Int, 49152)
        XCTAssertEqual(g32["pre"] as? String, "smollm")
        XCTAssertEqual(g32["types"] as? [String], ["F32"])
        XCTAssertEqual(g8["types"] as? [String], ["F32", "Q8_0"])
        XCTAssertEqual(g32["tensors"] as? Int, a.count)

        // Our own reader takes the Q8_0 file as a model.
        let score = try MPIRun.runDirect(["export", "--model", q8, "--out", root + "/from-q8"], timeout: 120)
        XCTAssertTrue(score.succeeded, "\(score)")

        // Bad options and a source without a tokenizer are clear errors.
        let badType = try MPIRun.runDirect(["export", "--model", f32, "--format", "gguf", "--dtype", "bf16", "--out", root + "/x.gguf"])
        XCTAssertFalse(badType.succeeded)
        XCTAssertTrue(badType.stderr.contains("--dtype bf16 is not a gguf tensor type"), "\(badType)")
        let bare = root + "/bare"
        try FileManager.default.createDirectory(atPath: bare, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] { try FileManager.default.copyItem(atPath: hf + "/" + f, toPath: bare + "/" + f) }
        let noTok = try MPIRun.runDirect(["export", "--model", bare, "--out", root + "/y"])
        XCTAssertEqual(noTok.exitCode, 1, "\(noTok)")
        XCTAssertTrue(noTok.stderr.contains("no tokenizer.json; pass --tokenizer"), "\(noTok)")
        let withTok = try MPIRun.runDirect(["export", "--model", bare, "--tokenizer", f32, "--out", root + "/y"])
        XCTAssertTrue(withTok.succeeded, "\(withTok)")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: root + "/y/tokenizer.json")),
                       try Data(contentsOf: URL(fileURLWithPath: hf + "/tokenizer.json")))
    }
}
