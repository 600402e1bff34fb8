import Foundation
import XCTest
@testable import Model

/// The real SmolLM2 against the independent NumPy reference (Tests/reference/llama_reference.py).
final class PretrainedReferenceTests: XCTestCase {
    static var cached: Transformer?

    func model() throws -> Transformer {
        if let m = Self.cached { return m }
        let gguf = try GGUFFile(path: try GGUFTestSupport.realModel())
        let m = Transformer(parameters: try ParameterStore.load(gguf: gguf))
        Self.cached = m
        return m
    }

    /// Runs the reference on a request, returns its JSON answer.
    func reference(_ request: [String: Any]) throws -> [String: Any] {
        let script = GGUFTestSupport.packageRoot + "/Tests/reference/llama_reference.py"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script]
        let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
        p.standardInput = inPipe
        p.standardOutput = outPipe
        p.standardError = errPipe
        try p.run()
        inPipe.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: request))
        try inPipe.fileHandleForWriting.close()
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        let err = errPipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            XCTFail("reference failed: \(String(decoding: err, as: UTF8.self))")
            throw XCTSkip("reference failed")
        }
        return try JSONSerialization.jsonObject(with: out) as! [String: Any]
    }

    static let texts = [
        "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
        "The quick brown fox jumps over the lazy dog. In 2024, 3.14159 people asked: why?",
        "Der Hund bellt laut, und die Katze schläft auf dem Sofa. — ¿Qué pasa? 東京は大きい都市です。",
    ]

    static func greedyPrompt(_ tok: BPETokenizer) -> [Int32] {
        ChatML.encode(messages: [(role: "user", content: "Name three prime numbers.")], addGenerationPrompt: true, tokenizer: tok)
    }

    static var cachedReference: [String: Any]?

    /// One run of the reference for both tests (loading the model into float64 is most of its
    /// cost): the log-probs of `texts` and 32 greedy tokens after `greedyPrompt`.
    func sharedReference() throws -> [String: Any] {
        if let r = Self.cachedReference { return r }
        let path = try GGUFTestSupport.realModel()
        let tok = try BPETokenizer(gguf: GGUFFile(path: path))
        let r = try reference(["model": path, "sequences": Self.texts.map { tok.encode($0, allowSpecial: false).map(Int.init) },
                               "greedy": ["prompt": Self.greedyPrompt(tok).map(Int.init), "new_tokens": 32]])
        Self.cachedReference = r
        return r
    }

    func testConfigFromGGUF() throws {
        let c = try ModelConfig(gguf: GGUFFile(path: try GGUFTestSupport.realModel()))
        XCTAssertEqual(c, ModelConfig.smolLM2_135M)
    }

    func testLogProbsMatchReferenceOnFixedTexts() throws {
        let path = try GGUFTestSupport.realModel()
        let m = try model()
        let tok = try BPETokenizer(gguf: GGUFFile(path: path))
        let seqs = Self.texts.map { tok.encode($0, allowSpecial: false) }
        let ref = try sharedReference()
        let theirs = ref["logprobs"] as! [[Double]]
        for (i, ids) in seqs.enumerated() {
            let preds = (0..<(ids.count - 1)).map { Prediction(row: $0, target: ids[$0 + 1]) }
            let ours = m.logProbs(tokens: ids, layout: .causal(length: ids.count), predictions: preds)
            XCTAssertEqual(ours.count, theirs[i].count)
            var worst = 0.0
            for (a, b) in zip(ours, theirs[i]) { worst = max(worst, abs(Double(a) - b)) }
            XCTAssertLessThan(worst, 1e-3, "text \(i): max |Δ log-prob| = \(worst)")
        }
    }

    /// Greedy decoding with the KV cache gives the reference's 32 tokens exactly.
    func testGreedyGenerationMatchesReference() throws {
        let path = try GGUFTestSupport.realModel()
        let m = try model()
        let tok = try BPETokenizer(gguf: GGUFFile(path: path))
        let prompt = Self.greedyPrompt(tok)
        let ours = m.generate(prompt: prompt, maxNewTokens: 32) { logits in
            Int32(logits.indices.max { logits[$0] < logits[$1] }!)
        }
        let ref = try sharedReference()
        XCTAssertEqual(ours.map(Int.init), ref["greedy"] as! [Int], "ours: \((try? tok.decode(ours)) ?? "?")")
    }
}
