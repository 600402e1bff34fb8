import Foundation
import XCTest

/// Issue 10 #3, #4, #8, #9 through the binary: copies of the installed SmolLM2 GGUF with one
/// header value or one weight patched (found by walking the GGUF header here, independently of
/// the Model module), given to `score`, `generate` and `train`. Every bad input is a clear error
/// with exit status 1 or 2 — never a signal, never a silent exit 0.
final class CLIValidationEndToEndTests: XCTestCase {
    /// The real model: `$EBFT_MODEL` or assets/ under the package root.
    static func realModel() throws -> String {
        if let e = ProcessInfo.processInfo.environment["EBFT_MODEL"], !e.isEmpty { return e }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let p = root + "/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        guard FileManager.default.fileExists(atPath: p) else {
            throw MPIRun.HarnessError(description: "the SmolLM2 model is missing: expected \(p) (run `make deps`) or set EBFT_MODEL")
        }
        return p
    }

    /// Where a GGUF's metadata values and tensor data are (byte offsets in the file).
    struct GGUFMap {
        /// Metadata key → (value type, offset of the value).
        var values: [String: (type: UInt32, offset: Int)] = [:]
        /// Tensor name → (ggml type, absolute offset of the data).
        var tensors: [String: (type: UInt32, offset: Int)] = [:]

        init(_ d: [UInt8]) throws {
            var at = 0
            func u32() -> UInt32 { defer { at += 4 }; return (0..<4).reduce(0) { $0 | UInt32(d[at + $1]) << (8 * $1) } }
            func u64() -> Int { defer { at += 8 }; return (0..<8).reduce(0) { $0 | Int(d[at + $1]) << (8 * $1) } }
            func string() -> String { let n = u64(); defer { at += n }; return String(decoding: d[at..<(at + n)], as: UTF8.self) }
            let sizes: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
            func skip(_ type: UInt32) throws {
                if let n = sizes[type] { at += n; return }
                if type == 8 { _ = string(); return }
                guard type == 9 else { throw MPIRun.HarnessError(description: "GGUF value type \(type)") }
                let inner = u32(), count = u64()
                for _ in 0..<count { try skip(inner) }
            }
            guard d.count > 24, Array(d[0..<4]) == Array("GGUF".utf8) else { throw MPIRun.HarnessError(description: "not GGUF") }
            at = 8
            let tensorCount = u64(), kvCount = u64()
            var alignment = 32
            for _ in 0..<kvCount {
                let key = string(), type = u32()
                values[key] = (type, at)
                if key == "general.alignment" { alignment = Int(u32()); at -= 4 }
                try skip(type)
            }
            var infos: [(String, UInt32, Int)] = []
            for _ in 0..<tensorCount {
                let name = string(), dims = Int(u32())
                at += 8 * dims
                let type = u32()
                infos.append((name, type, u64()))
            }
            let data = (at + alignment - 1) / alignment * alignment
            for (name, type, off) in infos { tensors[name] = (type, data + off) }
        }
    }

    /// A copy of the real model with `patch` applied to its bytes.
    func patchedModel(_ name: String, _ patch: (GGUFMap, inout [UInt8]) throws -> Void) throws -> String {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try Self.realModel())))
        try patch(try GGUFMap(bytes), &bytes)
        let path = try tempDir() + "/\(name).gguf"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ebft-e2e-cli-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// Sets a uint32 metadata value.
    static func setU32(_ key: String, _ v: UInt32) -> (GGUFMap, inout [UInt8]) throws -> Void {
        { map, bytes in
            guard let (type, off) = map.values[key], type == 4 else {
                throw MPIRun.HarnessError(description: "\(key) is not a uint32 in the model")
            }
            for i in 0..<4 { bytes[off + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
        }
    }

    func text(_ s: String) throws -> String {
        let path = try tempDir() + "/text.txt"
        try s.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A failure that is an error message, not a crash: exit 1 or 2, no signal, the fragments on stderr.
    func assertCleanFailure(_ out: MPIRun.Output, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(out.signal, "\(out)", file: file, line: line)
        XCTAssertFalse(out.timedOut, "\(out)", file: file, line: line)
        XCTAssertTrue([1, 2].contains(out.exitCode), "\(out)", file: file, line: line)
        for f in fragments { XCTAssertTrue(out.stderr.contains(f), "expected '\(f)' on stderr:\n\(out)", file: file, line: line) }
    }

    /// #3: head_count = 0 crashed `score` and `train` with SIGFPE (exit 136).
    func testZeroHeadCountIsAnErrorNotACrash() throws {
        let model = try patchedModel("heads0", Self.setU32("llama.attention.head_count", 0))
        let t = try text("def add(a, b):\n    return a + b\n")
        assertCleanFailure(try MPIRun.runDirect(["score", "--model", model, "--text-file", t], timeout: 120),
                           ["'llama.attention.head_count' is 0", model])
        let train = try MPIRun.run(np: 1, ["train", "--preset", "small", "--quiet", "--steps", "1", "--set", "model=\(model)",
                                           "--run-dir", try tempDir() + "/run"], timeout: 120)
        assertCleanFailure(train, ["'llama.attention.head_count' is 0"])
    }

    /// #4: block_count 29 of 30 blocks used to drop a block silently (exit 0, NLL 18.5); 31
    /// allocated the parameters before finding blk.30 missing. Both name the count now.
    func testBlockCountDisagreeingWithTheTensorsIsAnError() throws {
        let t = try text("def add(a, b):\n    return a + b\n")
        let fewer = try patchedModel("blocks29", Self.setU32("llama.block_count", 29))
        assertCleanFailure(try MPIRun.runDirect(["score", "--model", fewer, "--text-file", t], timeout: 120),
                           ["llama.block_count is 29 but the file has tensors for 30 layers", "'blk.29."])
        let more = try patchedModel("blocks31", Self.setU32("llama.block_count", 31))
        assertCleanFailure(try MPIRun.runDirect(["score", "--model", more, "--text-file", t], timeout: 120),
                           ["llama.block_count is 31 but the file has tensors for 30 layers; "
                            + "tensor 'blk.30.attn_norm.weight' is missing"])
    }

    /// #8: context_length 16 changed nothing; a prompt + budget past it is now an error, and
    /// `score` says when it windows.
    func testContextLengthBoundsGenerateAndScoreSaysItWindows() throws {
        let model = try patchedModel("ctx16", Self.setU32("llama.context_length", 16))
        let prompt = "The quick brown fox jumps over the lazy dog and then runs far away into the forest"
        let gen = try MPIRun.runDirect(["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "4",
                                        "--temperature", "0"], timeout: 120)
        assertCleanFailure(gen, ["more than the model's context length 16"])
        let ok = try MPIRun.runDirect(["generate", "--model", model, "--prompt", "The quick brown fox", "--max-new-tokens", "4",
                                       "--temperature", "0", "--ids"], timeout: 120)
        XCTAssertTrue(ok.succeeded, "\(ok)")
        let score = try MPIRun.runDirect(["score", "--model", model, "--text-file", try text(prompt + " " + prompt), "--json"],
                                         timeout: 120)
        XCTAssertTrue(score.succeeded, "\(score)")
        XCTAssertTrue(score.stderr.contains("more than the window of 16 (the model's context length)"), "\(score)")
        let obj = try JSONSerialization.jsonObject(with: Data(score.stdout.utf8)) as? [String: Any]
        let tokens = try XCTUnwrap(obj?["tokens"] as? [Int]), logprobs = try XCTUnwrap(obj?["logprobs"] as? [Double])
        XCTAssertEqual(logprobs.count, tokens.count - 1)
        XCTAssertGreaterThan(tokens.count, 16)
    }

    /// #9: NaN weights printed `nan` with exit 0; invalid UTF-8 was replaced without a word.
    func testNaNWeightsFailAndInvalidUTF8IsReported() throws {
        let model = try patchedModel("nan") { map, bytes in
            guard let (type, off) = map.tensors["blk.3.attn_norm.weight"], type == 0 else {
                throw MPIRun.HarnessError(description: "blk.3.attn_norm.weight is not F32 in the model")
            }
            let nan = Float.nan.bitPattern
            for i in 0..<4 { bytes[off + 4 * 7 + i] = UInt8(truncatingIfNeeded: nan >> (8 * i)) }
        }
        let t = try text("def add(a, b):\n    return a + b\n")
        assertCleanFailure(try MPIRun.runDirect(["score", "--model", model, "--text-file", t], timeout: 120),
                           ["'blk.3.attn_norm.weight' has 1 non-finite value (first: nan at element 7)"])

        let bad = try tempDir() + "/bad.txt"
        try Data(Array("hello ".utf8) + [0xff, 0xfe] + Array(" world ".utf8) + [0xe2, 0x82] + Array("!".utf8))
            .write(to: URL(fileURLWithPath: bad))
        let score = try MPIRun.runDirect(["score", "--model", try Self.realModel(), "--text-file", bad], timeout: 120)
        XCTAssertTrue(score.succeeded, "\(score)")
        XCTAssertTrue(score.stderr.contains("3 invalid byte sequences, the first at byte offset 6"), "\(score)")
        let gen = try MPIRun.runDirect(["generate", "--model", try Self.realModel(), "--prompt-file", bad,
                                        "--max-new-tokens", "1", "--temperature", "0"], timeout: 120)
        XCTAssertTrue(gen.succeeded, "\(gen)")
        XCTAssertTrue(gen.stderr.contains("--prompt-file \(bad) is not valid UTF-8"), "\(gen)")
    }

    /// #8 and #9 for `train`: an unknown `random:` key was ignored, and chunks longer than the
    /// model's context ran without a word.
    func testTrainRejectsUnknownRandomKeysAndChunksPastTheContext() throws {
        let base = ["train", "--preset", "small", "--quiet", "--steps", "1", "--set", "chunk-length=32"]
        let typo = try MPIRun.run(np: 1, base + ["--set", "model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,lyers=3",
                                                 "--run-dir", try tempDir() + "/run"], timeout: 120)
        assertCleanFailure(typo, ["unknown key 'lyers'", "dim, layers, heads, kv-heads, ffn, seed, std, context"])
        let short = try MPIRun.run(np: 1, base + ["--set", "model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,context=16",
                                                  "--run-dir", try tempDir() + "/run"], timeout: 120)
        assertCleanFailure(short, ["chunk-length 32 needs rotary positions 0…31, past the context length 16"])
    }
}
