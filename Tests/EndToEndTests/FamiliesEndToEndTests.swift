import Foundation
import XCTest

/// `ebft-dist train` on random models of the other families (`random:arch=…`): 2 EBFT steps
/// under mpirun give the same metrics for np 1 and np 2, and the checkpoint is a Hugging Face
/// directory of the family (config.json model_type, biases / q/k norms among the tensors).
final class FamiliesEndToEndTests: XCTestCase {
    static let base = [
        "--preset", "small", "--quiet", "--steps", "2",
        "--set", "chunk-length=32", "--set", "chunks-per-step=2", "--set", "samples-per-chunk=4",
        "--set", "eval-every=2", "--set", "eval-chunks=2", "--set", "learning-rate=1e-3",
    ]

    static let specs: [(name: String, spec: String, modelType: String, tensor: String)] = [
        ("qwen2", "random:arch=qwen2,dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1,tied=true,rope-theta=1000000",
         "qwen2", "model.layers.1.self_attn.k_proj.bias"),
        ("llama3", "random:arch=llama,dim=32,layers=2,heads=4,kv-heads=2,head-dim=12,ffn=64,seed=2,tied=false,"
            + "rope-theta=500000,rope-scaling=llama3:8:1:4:16,attention-bias=true,mlp-bias=true",
         "llama", "model.layers.0.mlp.down_proj.bias"),
        ("qwen3", "random:arch=qwen3,dim=32,layers=2,heads=4,kv-heads=2,head-dim=16,ffn=64,seed=3",
         "qwen3", "model.layers.1.self_attn.q_norm.weight"),
    ]

    func testFamiliesTrainTheSameForOneAndTwoRanks() throws {
        for s in Self.specs {
            var runs: [[[String: Any]]] = []
            for np in [1, 2] {
                let dir = runDir("\(s.name)-np\(np)")
                let out = try MPIRun.run(np: np, ["train"] + Self.base + ["--set", "model=" + s.spec, "--run-dir", dir],
                                         timeout: 180)
                XCTAssertTrue(out.succeeded, "\(s.name) np \(np): \(out)")
                let m = try metrics(dir)
                XCTAssertEqual(m.filter { $0["kind"] as? String == "train" }.count, 2, "\(s.name) np \(np): \(out)")
                runs.append(m)
                let ckpt = dir + "/checkpoints/step-000002"
                let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: ckpt + "/config.json")))
                    as! [String: Any]
                XCTAssertEqual(config["model_type"] as? String, s.modelType, s.name)
                let weights = try TrainerEndToEndTests.safetensors(ckpt + "/model.safetensors")
                XCTAssertNotNil(weights[s.tensor], "\(s.name): \(s.tensor) not in the checkpoint")
                if np == 1 && s.name == "qwen2" {
                    // `bench model --model DIR` measures the directory's own shape.
                    let b = try MPIRun.runDirect(["bench", "model", "--model", ckpt, "--sequence-length", "16",
                                                  "--decode-batches", "1", "--decode-prefix", "8", "--repeats", "1"],
                                                 timeout: 120)
                    XCTAssertTrue(b.succeeded, "\(b)")
                    XCTAssertTrue(b.stdout.contains("qwen2, d=32, 2 layers, heads 4/2"), "\(b)")
                    XCTAssertTrue(b.stdout.contains("forward+backward S=16"), "\(b)")
                }
            }
            XCTAssertEqual(runs[0].count, runs[1].count, s.name)
            for (a, b) in zip(runs[0], runs[1]) {
                for key in ["reward", "alignment", "diversity", "ce", "grad_norm", "eval_ce", "eval_reward_pass1"] {
                    guard let x = a[key] as? Double else { continue }
                    let y = try XCTUnwrap(b[key] as? Double, "\(s.name): \(key) missing for np 2")
                    XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "\(s.name): \(key) at step \(a["step"] ?? "?")")
                }
            }
        }
    }
}
