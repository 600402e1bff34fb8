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

    func testConfigFromGGUF() throws {
        let c = try ModelConfig(gguf: GGUFFile(path: try GGUFTestSupport.realModel()))
        XCTAssertEqual(c, ModelConfig.smolLM2_135M)
    }

    func testLogProbsMatchReference() throws {
        let m = try model()
        // "def fibonacci(n):\n    if n < 2: ..." tokenised by SmolLM2's tokenizer.
        let ids: [Int32] = [1604, 3987, 46477, 24, 94, 727, 472, 585, 304, 2067, 216, 34, 42, 448, 1003, 304,
                            472, 1003, 3987, 46477, 24, 94, 731, 216, 33, 25, 1232, 3987, 46477, 24, 94, 731,
                            216, 34, 25, 198]
        let preds = (0..<(ids.count - 1)).map { Prediction(row: $0, target: ids[$0 + 1]) }
        let ours = m.logProbs(tokens: ids, layout: .causal(length: ids.count), predictions: preds)
        let ref = try reference(["model": try GGUFTestSupport.realModel(), "sequences": [ids.map(Int.init)]])
        let theirs = (ref["logprobs"] as! [[Double]])[0]
        XCTAssertEqual(ours.count, theirs.count)
        var worst = 0.0
        for (a, b) in zip(ours, theirs) { worst = max(worst, abs(Double(a) - b)) }
        XCTAssertLessThan(worst, 1e-3, "max |Δ log-prob| = \(worst)")
    }
}
