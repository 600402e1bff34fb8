import Foundation
import XCTest
@testable import Model

final class HFLlamaTests: XCTestCase {
    typealias S = GGUFTestSupport

    func testNameMapping() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
            ("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight"),
            ("blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight"),
            ("blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"),
            ("blk.29.attn_output.weight", "model.layers.29.self_attn.o_proj.weight"),
            ("blk.12.ffn_norm.weight", "model.layers.12.post_attention_layernorm.weight"),
            ("blk.12.ffn_gate.weight", "model.layers.12.mlp.gate_proj.weight"),
            ("blk.12.ffn_up.weight", "model.layers.12.mlp.up_proj.weight"),
            ("blk.12.ffn_down.weight", "model.layers.12.mlp.down_proj.weight"),
            ("blk.1.attn_q.bias", "model.layers.1.self_attn.q_proj.bias"),
            ("blk.1.attn_output.bias", "model.layers.1.self_attn.o_proj.bias"),
            ("blk.2.attn_q_norm.weight", "model.layers.2.self_attn.q_norm.weight"),
            ("blk.2.attn_k_norm.weight", "model.layers.2.self_attn.k_norm.weight"),
            ("blk.0.ffn_down.bias", "model.layers.0.mlp.down_proj.bias"),
        ]
        for (g, h) in pairs {
            XCTAssertEqual(HFLlama.hfName(fromGGUF: g), h)
            XCTAssertEqual(HFLlama.ggufName(fromHF: h), g)
        }
        for bad in ["blk.x.attn_q.weight", "blk..attn_q.weight", "blk.01.attn_q.weight", "blk.1.attn_norm.bias",
                    "rope_freqs.weight", "blk.1", ""] {
            XCTAssertNil(HFLlama.hfName(fromGGUF: bad), bad)
        }
        XCTAssertNil(HFLlama.ggufName(fromHF: "model.layers.1.self_attn.rotary_emb.inv_freq"))
        XCTAssertEqual(HFLlama.qkRole(ggufName: "blk.4.attn_q.weight"), .query)
        XCTAssertEqual(HFLlama.qkRole(ggufName: "blk.4.attn_k.weight"), .key)
        XCTAssertNil(HFLlama.qkRole(ggufName: "blk.4.attn_v.weight"))
        XCTAssertEqual(HFLlama.qkRole(ggufName: "blk.4.attn_q.bias"), .query)
        XCTAssertEqual(HFLlama.qkRole(ggufName: "blk.4.attn_k.bias"), .key)
        XCTAssertEqual(HFLlama.qkRole(ggufName: "blk.4.attn_q_norm.weight"), .headNorm)
        XCTAssertNil(HFLlama.qkRole(ggufName: "blk.4.attn_v.bias"))
    }

    func testEveryRealTensorHasAnHFName() throws {
        let f = try GGUFFile(path: try S.realModel())
        let names = f.tensors.map { HFLlama.hfName(fromGGUF: $0.name) }
        XCTAssertFalse(names.contains(nil), "\(zip(f.tensors, names).filter { $1 == nil }.map(\.0.name))")
        XCTAssertEqual(Set(names.compactMap { $0 }).count, 272)
        XCTAssertFalse(names.contains("lm_head.weight")) // tied embeddings
    }

    func testPermutationsAreInversesAndMatchNumpy() throws {
        let dir = try S.tempDir(self)
        // q_proj-like (9 heads of 8) and k_proj-like (3 heads of 8), 5 input columns.
        for (heads, hd, cols) in [(9, 8, 5), (3, 8, 5), (2, 2, 3), (1, 64, 1)] {
            let rows = heads * hd
            let hf = (0..<(rows * cols)).map { Float($0) + 0.5 }
            let gg = HFLlama.permuteHFToGGUF(hf, rows: rows, cols: cols, heads: heads)
            if hd > 2 { XCTAssertNotEqual(gg, hf) } else { XCTAssertEqual(gg, hf) } // head_dim 2: identity
            XCTAssertEqual(HFLlama.permuteGGUFToHF(gg, rows: rows, cols: cols, heads: heads), hf)
            XCTAssertEqual(HFLlama.permuteHFToGGUF(HFLlama.permuteGGUFToHF(hf, rows: rows, cols: cols, heads: heads),
                                                   rows: rows, cols: cols, heads: heads), hf)

            let script = """
            import sys, numpy as np
            h, hd, c = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
            out = h * hd
            w = np.arange(out * c, dtype=np.float32).reshape(out, c) + 0.5
            g = w.reshape(h, 2, hd // 2, c).swapaxes(1, 2).reshape(out, c)
            g.astype("<f4").tofile(sys.argv[4])
            """
            _ = try S.python(script, ["\(heads)", "\(hd)", "\(cols)", dir + "/p.f32"])
            XCTAssertEqual(gg, try S.readFloats(dir + "/p.f32"), "heads \(heads) hd \(hd)")

            // Pointer versions agree with the array versions.
            var out = [Float](repeating: 0, count: hf.count)
            hf.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { d in
                    HFLlama.permuteHFToGGUF(s.baseAddress!, into: d.baseAddress!, rows: rows, cols: cols, heads: heads)
                }
            }
            XCTAssertEqual(out, gg)
            gg.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { d in
                    HFLlama.permuteGGUFToHF(s.baseAddress!, into: d.baseAddress!, rows: rows, cols: cols, heads: heads)
                }
            }
            XCTAssertEqual(out, hf)
        }
    }

    /// Real tensors through GGUF → HF → safetensors → back to GGUF order, bit for bit.
    func testRealTensorsThroughHFLayoutAndSafeTensors() throws {
        let f = try GGUFFile(path: try S.realModel())
        let dir = try S.tempDir(self)
        let names = ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.ffn_down.weight",
                     "blk.0.attn_norm.weight", "output_norm.weight"]
        var hf = [(name: String, shape: [Int], data: [Float])]()
        var originals = [String: [Float]]()
        for n in names {
            let info = try f.tensor(named: n)
            let data = try f.floats(n)
            originals[n] = data
            let t = try XCTUnwrap(HFLlama.hfTensor(ggufName: n, ggufShape: info.shape, data: data, numHeads: 9, numKVHeads: 3))
            hf.append(t)
        }
        XCTAssertEqual(hf.map(\.shape), [[576, 576], [192, 576], [192, 576], [576, 1536], [576], [576]])
        XCTAssertEqual(hf[0].name, "model.layers.0.self_attn.q_proj.weight")
        XCTAssertNotEqual(hf[0].data, originals[names[0]]) // q rows moved
        XCTAssertNotEqual(hf[1].data, originals[names[1]]) // k rows moved
        XCTAssertEqual(hf[2].data, originals[names[2]]) // v untouched
        // k: HF row 1 of head 0 (first half, i = 1) is GGUF row 2.
        XCTAssertEqual(Array(hf[1].data[576..<1152]), Array(originals[names[1]]![1152..<1728]))

        let path = dir + "/model.safetensors"
        try SafeTensors.write(tensors: hf, metadata: ["format": "pt"], to: path)
        let st = try SafeTensorsFile(path: path)
        for (t, n) in zip(hf, names) {
            let info = try st.tensor(named: t.name)
            let back = try XCTUnwrap(HFLlama.ggufTensor(hfName: t.name, hfShape: info.shape, data: try st.floats(t.name),
                                                        numHeads: 9, numKVHeads: 3))
            XCTAssertEqual(back.name, n)
            XCTAssertEqual(back.shape, try f.tensor(named: n).shape)
            XCTAssertEqual(back.data.map(\.bitPattern), originals[n]!.map(\.bitPattern), n)
        }
        XCTAssertNil(HFLlama.hfTensor(ggufName: "rope_freqs.weight", ggufShape: [32], data: [], numHeads: 9, numKVHeads: 3))
    }

    func testConfigJSON() throws {
        let c = HFLlama.Config(hiddenSize: 576, intermediateSize: 1536, numAttentionHeads: 9, numKeyValueHeads: 3,
                               numHiddenLayers: 30, rmsNormEps: 1e-5, ropeTheta: 100000, vocabSize: 49152,
                               maxPositionEmbeddings: 8192, bosTokenID: 1, eosTokenID: 2)
        let text = HFLlama.configJSON(c)
        let j = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        XCTAssertEqual(j["architectures"] as? [String], ["LlamaForCausalLM"])
        XCTAssertEqual(j["model_type"] as? String, "llama")
        XCTAssertEqual(j["hidden_act"] as? String, "silu")
        XCTAssertEqual(j["torch_dtype"] as? String, "float32")
        XCTAssertEqual(j["tie_word_embeddings"] as? Bool, true)
        let ints: [String: Int] = ["hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9,
                                   "num_key_value_heads": 3, "num_hidden_layers": 30, "vocab_size": 49152,
                                   "max_position_embeddings": 8192, "bos_token_id": 1, "eos_token_id": 2, "head_dim": 64]
        for (k, v) in ints { XCTAssertEqual((j[k] as? NSNumber)?.intValue, v, k) }
        XCTAssertEqual((j["rms_norm_eps"] as? NSNumber)?.doubleValue, 1e-5)
        XCTAssertEqual((j["rope_theta"] as? NSNumber)?.doubleValue, 100000)
        XCTAssertTrue(text.contains("\"rms_norm_eps\": 1e-05"), text)
        // Python's json agrees.
        let py = try S.python("import sys, json; c = json.loads(sys.argv[1]); print(c['rms_norm_eps'], c['head_dim'], c['rope_scaling'])", [text])
        XCTAssertEqual(py.trimmingCharacters(in: .whitespacesAndNewlines), "1e-05 64 None")
    }

    func testConfigFromRealGGUF() throws {
        let f = try GGUFFile(path: try S.realModel())
        let c = try HFLlama.Config(gguf: f)
        XCTAssertEqual(c, HFLlama.Config(hiddenSize: 576, intermediateSize: 1536, numAttentionHeads: 9, numKeyValueHeads: 3,
                                         numHiddenLayers: 30, rmsNormEps: 1e-5, ropeTheta: 100000, vocabSize: 49152,
                                         maxPositionEmbeddings: 8192, bosTokenID: 1, eosTokenID: 2, tieWordEmbeddings: true))
    }
}
