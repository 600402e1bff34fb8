import Foundation
import XCTest
@testable import Learner
import Model

/// Training checkpoints: bit-exact round trips, atomicity leftovers, corruption, retention,
/// `latest` and `--resume` resolution; XXH64 against published vectors.
final class CheckpointTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "ebft-ckpt-tests-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// A tiny model and an optimizer that has taken `steps` real updates.
    func trained(seed: UInt64, steps: Int = 3, config: ModelConfig = .tiny()) -> (ParameterStore, AdamW) {
        let p = ParameterStore(config: config)
        p.randomize(seed: seed)
        var opt = AdamW(count: p.count)
        var g = [Float](repeating: 0, count: p.count)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<steps {
            // Gradients live in the tensors only; the alignment padding stays zero (as in training).
            for v in p.layout.views {
                for i in v.offset..<(v.offset + v.count) { g[i] = Float.random(in: -1...1, using: &rng) }
            }
            g.withUnsafeBufferPointer { opt.update(params: p.pointer, grads: $0.baseAddress!, lr: 1e-2) }
        }
        return (p, opt)
    }

    func state(_ step: Int) -> CheckpointState {
        CheckpointState(stepsDone: step, seed: UInt64.max - 12345, worldSize: 4, learners: 2, colocate: true,
                        configYAML: "steps: 10\nlearning-rate: 1e-05\nrun-dir: \"runs/x y\"\nnote: 'ünïcode — \"quoted\"'\n",
                        info: ["git": "abc123", "loss": "0.25"])
    }

    static func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    func files(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    }

    // MARK: round trip

    func testSaveLoadRoundTripIsBitExact() throws {
        let run = try tempDir()
        for (i, c) in [ModelConfig.tiny(), .tiny(dim: 24, heads: 6, kvHeads: 3, tiedEmbeddings: false)].enumerated() {
            let (p, opt) = trained(seed: 11 + UInt64(i), steps: 3, config: c)
            let runDir = run + "/r\(i)"
            let dir = try Checkpoint.save(runDir: runDir, params: p, optimizer: opt, state: state(3))
            XCTAssertEqual(dir, runDir + "/checkpoints/step-000003")
            XCTAssertEqual(try files(dir), ["config.json", "model.safetensors", "optimizer.safetensors", "state.json",
                                            "state.json.xxh64"])
            XCTAssertEqual(try String(contentsOfFile: runDir + "/checkpoints/latest", encoding: .utf8), "step-000003\n")

            let q = ParameterStore(config: c)
            var o2 = AdamW(count: q.count, config: AdamWConfig(weightDecay: 0.1))
            let s = try Checkpoint.load(try XCTUnwrap(Checkpoint.latest(runDir: runDir)), into: q, optimizer: &o2)
            XCTAssertEqual(memcmp(p.pointer, q.pointer, 4 * p.count), 0)
            XCTAssertEqual(Self.bits(o2.m), Self.bits(opt.m))
            XCTAssertEqual(Self.bits(o2.v), Self.bits(opt.v))
            XCTAssertEqual(o2.step, 3)
            XCTAssertEqual(o2.config.weightDecay, 0.1) // hyper-parameters are the run's, not the checkpoint's
            var expect = state(3)
            expect.adamStep = 3
            XCTAssertEqual(s, expect)
            XCTAssertEqual(s.dataCursor, 3)

            // The checkpoint is also a plain HF model directory.
            let hf = try ParameterStore.loadHF(directory: dir)
            XCTAssertEqual(memcmp(p.pointer, hf.pointer, 4 * p.count), 0)

            // Continuing from the restored state matches continuing from the original.
            var a = opt, b = o2
            b.config = a.config
            let g = [Float](repeating: 0.3, count: p.count)
            g.withUnsafeBufferPointer {
                a.update(params: p.pointer, grads: $0.baseAddress!, lr: 1e-2)
                b.update(params: q.pointer, grads: $0.baseAddress!, lr: 1e-2)
            }
            XCTAssertEqual(memcmp(p.pointer, q.pointer, 4 * p.count), 0)
        }
    }

    func testStateJSONFields() throws {
        let run = try tempDir()
        let (p, opt) = trained(seed: 2, steps: 2)
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(7))
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/state.json"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(json["format"] as? String, "ebft-dist-checkpoint")
        XCTAssertEqual(json["format_version"] as? Int, 2)
        XCTAssertEqual(json["steps_done"] as? Int, 7)
        XCTAssertEqual(json["data_cursor"] as? Int, 7)
        XCTAssertEqual(json["adam_step"] as? Int, 2)
        XCTAssertEqual(json["world_size"] as? Int, 4)
        XCTAssertEqual(json["learners"] as? Int, 2)
        XCTAssertEqual(json["colocate"] as? Bool, true)
        XCTAssertEqual(json["parameter_count"] as? Int, p.count)
        XCTAssertEqual(json["config_yaml"] as? String, state(7).configYAML)
        XCTAssertEqual(json["info"] as? [String: String], ["git": "abc123", "loss": "0.25"])
        // The seed is written as an exact integer (not through a Double).
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"seed\" : \(UInt64.max - 12345)"))
        let files = try XCTUnwrap(json["files"] as? [[String: Any]])
        XCTAssertEqual(files.compactMap { $0["name"] as? String }.sorted(), ["config.json", "model.safetensors", "optimizer.safetensors"])
        for f in files {
            let path = dir + "/" + (f["name"] as! String)
            let (bytes, h) = try XXH64.file(path)
            XCTAssertEqual(f["bytes"] as? Int, bytes)
            XCTAssertEqual(f["xxh64"] as? String, XXH64.hex(h))
        }
        // state.json.xxh64: state.json's checksum, in xxh64sum's format.
        XCTAssertEqual(try String(contentsOfFile: dir + "/state.json.xxh64", encoding: .utf8),
                       XXH64.hex(XXH64.hash([UInt8](data))) + "  state.json\n")
        let sf = try Checkpoint.readState(dir)
        XCTAssertEqual(sf.seed, UInt64.max - 12345)
        XCTAssertEqual(sf.model, p.config)
        // optimizer.safetensors holds exactly two flat F32 tensors.
        let o = try SafeTensorsFile(path: dir + "/optimizer.safetensors")
        XCTAssertEqual(o.tensors.map(\.name).sorted(), ["adam.m", "adam.v"])
        XCTAssertEqual(try o.tensor(named: "adam.m").shape, [p.count])
        XCTAssertEqual(Self.bits(try o.floats("adam.v")), Self.bits(opt.v))
    }

    // MARK: atomicity leftovers, corruption

    func testLeftoverTemporaryIsIgnoredAndCleaned() throws {
        let run = try tempDir()
        let ck = run + "/checkpoints"
        let (p, opt) = trained(seed: 3)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(2))
        // A crash while writing step 3 (by a process that no longer exists) leaves a complete-looking tmp dir.
        let deadTmp = ck + "/step-000003.tmp-2147483000"
        try FileManager.default.copyItem(atPath: ck + "/step-000002", toPath: deadTmp)
        try "step-000003.tmp-2147483000\n".write(toFile: ck + "/latest", atomically: true, encoding: .utf8)
        XCTAssertEqual(try Checkpoint.latest(runDir: run), ck + "/step-000002")
        XCTAssertEqual(try Checkpoint.resolve(resume: run).directory, ck + "/step-000002")
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(4))
        XCTAssertEqual(try files(ck), ["latest", "step-000002", "step-000004"])
        XCTAssertEqual(try Checkpoint.latest(runDir: run), ck + "/step-000004")
    }

    func testCorruptedOptimizerByteIsAChecksumError() throws {
        let run = try tempDir()
        let (p, opt) = trained(seed: 4)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(1))
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(2))
        let path = dir + "/optimizer.safetensors"
        try Self.flipByte(path)

        let q = ParameterStore(config: p.config)
        var o2 = AdamW(count: q.count)
        XCTAssertThrowsError(try Checkpoint.load(dir, into: q, optimizer: &o2)) { e in
            guard case .checksumMismatch(let pth, _, _, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(pth, path)
            let msg = "\(e)"
            XCTAssertTrue(msg.contains("optimizer.safetensors") && msg.contains("corrupted"), msg)
            XCTAssertTrue(msg.contains("previous checkpoint") && msg.contains("step-000001"), msg)
        }
        // Nothing was modified by the failed load.
        XCTAssertEqual(q.squaredNorm(), 0)
        XCTAssertEqual(o2.step, 0)
        XCTAssertTrue(o2.m.allSatisfy { $0 == 0 })
        // The previous checkpoint still loads.
        _ = try Checkpoint.load(run + "/checkpoints/step-000001", into: q, optimizer: &o2)
        XCTAssertEqual(memcmp(p.pointer, q.pointer, 4 * p.count), 0)
    }

    func testTruncatedOrMissingModelIsAnError() throws {
        let run = try tempDir()
        let (p, opt) = trained(seed: 5)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(1))
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(2))
        let path = dir + "/model.safetensors"
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        try full.prefix(full.count - 100).write(to: URL(fileURLWithPath: path))
        let q = ParameterStore(config: p.config)
        var o2 = AdamW(count: q.count)
        XCTAssertThrowsError(try Checkpoint.load(dir, into: q, optimizer: &o2)) { e in
            XCTAssertEqual(e as? CheckpointError, .truncated(path: path, expectedBytes: full.count, foundBytes: full.count - 100,
                                                             hint: "Resume from the previous checkpoint instead: --resume \(run)/checkpoints/step-000001"))
            XCTAssertTrue("\(e)".contains("truncated"), "\(e)")
        }
        // `latest` names step 2, which is incomplete now: fall back to step 1.
        XCTAssertEqual(try Checkpoint.latest(runDir: run), run + "/checkpoints/step-000001")
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try Checkpoint.load(dir, into: q, optimizer: &o2)) { e in
            guard case .missingFile(let pth, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(pth, path)
        }
        try FileManager.default.removeItem(atPath: dir + "/state.json")
        XCTAssertThrowsError(try Checkpoint.load(dir, into: q, optimizer: &o2)) { e in
            XCTAssertTrue("\(e)".contains(dir + "/state.json") && "\(e)".contains("missing"), "\(e)")
        }
    }

    /// Flips one byte in the middle of `path` (inside the tensor data of a safetensors file).
    static func flipByte(_ path: String) throws {
        let fh = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        let size = try fh.seekToEnd()
        try fh.seek(toOffset: size / 2)
        let byte = try XCTUnwrap(fh.readData(ofLength: 1).first)
        try fh.seek(toOffset: size / 2)
        fh.write(Data([byte ^ 0x10]))
        try fh.close()
    }

    /// One edited character in state.json (the step counter, the learning rate in the run's
    /// configuration, the seed, Adam's step) is a checksum error naming state.json, from `load`
    /// and `verify` alike; nothing is loaded.
    func testEditedStateJSONIsAChecksumError() throws {
        let run = try tempDir()
        let (p, opt) = trained(seed: 12)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(1))
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(2))
        let path = dir + "/state.json"
        let original = try String(contentsOfFile: path, encoding: .utf8)
        let edits = [("\"steps_done\" : 2", "\"steps_done\" : 3"),
                     ("learning-rate: 1e-05", "learning-rate: 1e-04"),
                     ("\"seed\" : \(UInt64.max - 12345)", "\"seed\" : \(UInt64.max - 12344)"),
                     ("\"adam_step\" : 3", "\"adam_step\" : 4")]
        for (from, to) in edits {
            XCTAssertEqual(original.components(separatedBy: from).count, 2, "'\(from)' once in \(original)")
            try original.replacingOccurrences(of: from, with: to).write(toFile: path, atomically: true, encoding: .utf8)
            let q = ParameterStore(config: p.config)
            var o2 = AdamW(count: q.count)
            XCTAssertThrowsError(try Checkpoint.load(dir, into: q, optimizer: &o2), to) { e in
                guard case .checksumMismatch(let pth, _, _, _)? = e as? CheckpointError else { return XCTFail("\(to): \(e)") }
                XCTAssertEqual(pth, path)
                let msg = "\(e)"
                XCTAssertTrue(msg.contains("state.json") && msg.contains("checksum"), msg)
                XCTAssertTrue(msg.contains("step-000001"), "suggests the previous checkpoint: \(msg)")
            }
            XCTAssertEqual(q.squaredNorm(), 0, to)
            XCTAssertThrowsError(try Checkpoint.verify(dir), to)
        }
        try original.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertNoThrow(try Checkpoint.verify(dir))
    }

    /// `latest` names a checkpoint whose state.json is damaged (unparsable, or edited so that
    /// it no longer matches its checksum): `resolve` and `find` fall back to the previous
    /// checkpoint and say why, naming the file; with no usable checkpoint left the error lists
    /// the reasons.
    func testFallbackFromDamagedLatestIsReported() throws {
        let run = try tempDir()
        let ck = run + "/checkpoints"
        let (p, opt) = trained(seed: 14)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(1))
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(2))
        let path = dir + "/state.json"
        let original = try String(contentsOfFile: path, encoding: .utf8)
        // Truncated, edited, and (without its checksum file) unparsable.
        for (damaged, why) in [(String(original.dropLast(40)), "checksum mismatch"),
                               (original.replacingOccurrences(of: "\"steps_done\" : 2", with: "\"steps_done\" : 3"), "checksum"),
                               ("{\"format_version\": 2, ", "cannot parse")] {
            try damaged.write(toFile: path, atomically: true, encoding: .utf8)
            if why == "cannot parse" { try FileManager.default.removeItem(atPath: dir + "/state.json.xxh64") }
            for found in [try Checkpoint.resolve(resume: run), try XCTUnwrap(Checkpoint.find(runDir: run))] {
                XCTAssertEqual(found.directory, ck + "/step-000001")
                let reason = try XCTUnwrap(found.fallback, "a fallback must say why")
                XCTAssertTrue(reason.contains(path) && reason.contains(why) && reason.contains("latest")
                              && reason.contains("step-000001"), reason)
                XCTAssertEqual(found.messages, [reason])
            }
        }
        // The named checkpoint itself is an error, not a silent fallback.
        XCTAssertThrowsError(try Checkpoint.resolve(resume: dir)) { e in
            XCTAssertTrue("\(e)".contains(path) && "\(e)".contains("cannot parse"), "\(e)")
        }
        try FileManager.default.removeItem(atPath: ck + "/step-000001/state.json.xxh64")
        XCTAssertThrowsError(try Checkpoint.resolve(resume: run)) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.contains("no complete step-* checkpoint") && msg.contains(ck + "/step-000001/state.json.xxh64")
                          && msg.contains(path), msg)
        }
    }

    /// A format-1 checkpoint (no state.json.xxh64) is still read — to resume and as a model —
    /// with a warning that its state is unverified; its other files are still checked.
    func testFormatVersion1IsReadWithAWarning() throws {
        let run = try tempDir()
        let (p, opt) = trained(seed: 15)
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(2))
        let path = dir + "/state.json"
        let v1 = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "\"format_version\" : 2", with: "\"format_version\" : 1")
        try v1.write(toFile: path, atomically: true, encoding: .utf8)
        // A version-2 state.json without its checksum file is an error.
        try FileManager.default.removeItem(atPath: dir + "/state.json.xxh64")
        let v2 = v1.replacingOccurrences(of: "\"format_version\" : 1", with: "\"format_version\" : 2")
        try v2.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Checkpoint.verify(dir)) { e in
            guard case .missingFile(let pth, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(pth, dir + "/state.json.xxh64")
        }
        try v1.write(toFile: path, atomically: true, encoding: .utf8)

        let found = try Checkpoint.resolve(resume: run)
        XCTAssertEqual(found.directory, dir)
        XCTAssertNil(found.fallback)
        let warning = try XCTUnwrap(found.warning)
        XCTAssertTrue(warning.contains(path) && warning.contains("version 1") && warning.contains("unverified"), warning)
        let q = ParameterStore(config: p.config)
        var o2 = AdamW(count: q.count)
        XCTAssertEqual(try Checkpoint.load(dir, into: q, optimizer: &o2).stepsDone, 2)
        XCTAssertEqual(memcmp(p.pointer, q.pointer, 4 * p.count), 0)
        var logged: [String] = []
        _ = try ModelSource.load(dir, log: { logged.append($0) })
        XCTAssertEqual(logged, [warning])
        try Self.flipByte(dir + "/model.safetensors")
        XCTAssertThrowsError(try ModelSource.load(dir, log: { _ in })) { e in
            guard case .checksumMismatch? = e as? CheckpointError else { return XCTFail("\(e)") }
        }
    }

    /// A checkpoint used as a model (`ModelSource.load`, what `--set model=`, `score`, `eval`
    /// and `export` call; and `ParameterStore.loadHF`) is verified: one flipped byte in
    /// model.safetensors is a checksum error naming the file. An intact checkpoint and a plain
    /// HF directory (no state.json) load.
    func testCheckpointUsedAsAModelIsVerified() throws {
        let run = try tempDir()
        let (p, opt) = trained(seed: 13)
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(1))
        let intact = try ModelSource.load(dir)
        withExtendedLifetime(intact) { XCTAssertEqual(memcmp(p.pointer, intact.pointer, 4 * p.count), 0) }
        let plain = run + "/plain-hf"
        try p.saveHF(directory: plain)
        let plainLoaded = try ModelSource.load(plain)  // held: its buffer lives as long as it does
        withExtendedLifetime(plainLoaded) { XCTAssertEqual(memcmp(p.pointer, plainLoaded.pointer, 4 * p.count), 0) }

        let weights = dir + "/model.safetensors"
        try Self.flipByte(weights)
        for load in [{ try ModelSource.load(dir) }, { try ParameterStore.loadHF(directory: dir) }] {
            XCTAssertThrowsError(try load()) { e in
                guard case .checksumMismatch(let pth, _, _, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
                XCTAssertEqual(pth, weights)
                XCTAssertTrue("\(e)".contains("model.safetensors") && "\(e)".contains("checksum"), "\(e)")
            }
        }
    }

    /// The tokenizer files of the run's model (here the installed SmolLM2's, as for a `random:`
    /// model) are written into the checkpoint and listed with their checksums in state.json, so
    /// the checkpoint is a complete HF directory; an edited tokenizer.json is a checksum error
    /// when the checkpoint is used as a model or resumed.
    func testTokenizerFilesAreWrittenAndChecksummed() throws {
        let run = try tempDir()
        let side = try TokenizerExport.sideFiles(runModel: "random:dim=32", contextLength: 2048)
        XCTAssertEqual(side.map(\.name), ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                          "generation_config.json"])
        let (p, opt) = trained(seed: 17, config: .tiny(vocabSize: 49152))
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(2), sideFiles: side)
        XCTAssertEqual(try files(dir), ["config.json", "generation_config.json", "model.safetensors", "optimizer.safetensors",
                                        "special_tokens_map.json", "state.json", "state.json.xxh64", "tokenizer.json",
                                        "tokenizer_config.json"])
        for f in side { XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/" + f.name))), f.bytes, f.name) }
        let listed = try Checkpoint.verify(dir).files.map(\.name)
        XCTAssertEqual(Set(listed), Set(Checkpoint.dataFiles + side.map(\.name)))
        XCTAssertNotNil(try TokenizerExport.hfFiles(source: dir, contextLength: 2048))
        _ = try ModelSource.load(dir)

        let tok = dir + "/tokenizer.json"
        try Self.flipByte(tok)
        XCTAssertThrowsError(try ModelSource.load(dir)) { e in
            guard case .checksumMismatch(let pth, _, _, _)? = e as? CheckpointError else { return XCTFail("\(e)") }
            XCTAssertEqual(pth, tok)
        }
        var o2 = AdamW(count: p.count)
        XCTAssertThrowsError(try Checkpoint.load(dir, into: ParameterStore(config: p.config), optimizer: &o2))
        // A side file may not replace a checkpoint file.
        XCTAssertThrowsError(try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(3),
                                                 sideFiles: [HFSideFile(name: "state.json", bytes: [])]))
    }

    func testLatestFallsBackWhenItNamesAMissingDirectory() throws {
        let run = try tempDir()
        let ck = run + "/checkpoints"
        XCTAssertNil(try Checkpoint.latest(runDir: run))
        let (p, opt) = trained(seed: 6)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(5), keep: 5)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(12), keep: 5)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(9), keep: 5)
        XCTAssertEqual(try Checkpoint.latest(runDir: run), ck + "/step-000009") // `latest` wins over the highest step
        for text in ["step-000099\n", "garbage", "../step-000005", ""] {
            try text.write(toFile: ck + "/latest", atomically: true, encoding: .utf8)
            XCTAssertEqual(try Checkpoint.latest(runDir: run), ck + "/step-000012", text)
        }
        try FileManager.default.removeItem(atPath: ck + "/latest")
        XCTAssertEqual(try Checkpoint.latest(runDir: run), ck + "/step-000012")
    }

    // MARK: retention, replacement, resume resolution

    func testRetentionKeepsTheNewestAndLeavesForeignFiles() throws {
        let run = try tempDir()
        let ck = run + "/checkpoints"
        let (p, opt) = trained(seed: 7, steps: 1)
        try FileManager.default.createDirectory(atPath: ck + "/step-000001-manual-copy", withIntermediateDirectories: true)
        try "notes".write(toFile: ck + "/notes.txt", atomically: true, encoding: .utf8)
        for s in 1...4 { try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(s)) }
        XCTAssertEqual(try files(ck), ["latest", "notes.txt", "step-000001-manual-copy", "step-000003", "step-000004"])
        for s in 5...7 { try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(s), keep: 3) }
        XCTAssertEqual(try files(ck), ["latest", "notes.txt", "step-000001-manual-copy", "step-000005", "step-000006", "step-000007"])
        // Saving an older step (after resuming from it) never deletes the one just written.
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(2), keep: 1)
        XCTAssertEqual(try files(ck), ["latest", "notes.txt", "step-000001-manual-copy", "step-000002", "step-000007"])
        XCTAssertEqual(try Checkpoint.latest(runDir: run), ck + "/step-000002")
    }

    func testSameStepIsReplaced() throws {
        let run = try tempDir()
        let (p, opt) = trained(seed: 8)
        try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(3))
        let (p2, opt2) = trained(seed: 9, steps: 5)
        let dir = try Checkpoint.save(runDir: run, params: p2, optimizer: opt2, state: state(3))
        XCTAssertEqual(try files(run + "/checkpoints"), ["latest", "step-000003"])
        let q = ParameterStore(config: p.config)
        var o = AdamW(count: q.count)
        let s = try Checkpoint.load(dir, into: q, optimizer: &o)
        XCTAssertEqual(memcmp(p2.pointer, q.pointer, 4 * q.count), 0)
        XCTAssertEqual(s.adamStep, 5)
    }

    func testResolveResumeAndMismatches() throws {
        let run = try tempDir()
        let (p, opt) = trained(seed: 10)
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(6))
        for path in [run, dir, run + "/checkpoints", run + "/checkpoints/"] {
            let found = try Checkpoint.resolve(resume: path)
            XCTAssertEqual(found.directory, dir, path)
            XCTAssertEqual(found.runDirectory, URL(fileURLWithPath: run).standardizedFileURL.path, path)
            XCTAssertEqual(found.messages, [], path)
        }
        XCTAssertThrowsError(try Checkpoint.resolve(resume: run + "/nope")) { e in
            XCTAssertTrue("\(e)".contains(run + "/nope"), "\(e)")
        }
        let empty = run + "/empty"
        try FileManager.default.createDirectory(atPath: empty + "/checkpoints", withIntermediateDirectories: true)
        XCTAssertThrowsError(try Checkpoint.resolve(resume: empty)) { e in
            XCTAssertTrue("\(e)".contains("no complete step-* checkpoint"), "\(e)")
        }
        // Another model shape, or an optimizer of the wrong size.
        let other = ParameterStore(config: .tiny(layers: 3))
        var o = AdamW(count: other.count)
        XCTAssertThrowsError(try Checkpoint.load(dir, into: other, optimizer: &o)) { e in
            XCTAssertTrue("\(e)".contains("does not fit this run"), "\(e)")
        }
        XCTAssertThrowsError(try Checkpoint.save(runDir: run, params: p, optimizer: AdamW(count: 3), state: state(7))) { e in
            XCTAssertTrue("\(e)".contains("moments"), "\(e)")
        }
        XCTAssertEqual(try files(run + "/checkpoints"), ["latest", "step-000006"])
    }

    // MARK: checksum

    func testXXH64KnownVectors() {
        func h(_ s: String) -> UInt64 { XXH64.hash(Array(s.utf8)) }
        XCTAssertEqual(h(""), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(h("a"), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(h("abc"), 0x44BC_2CF5_AD77_0999)
        // ≥ 32 bytes: the four-lane stripe loop, then 8-, 4- and 1-byte tails (python-xxhash README).
        XCTAssertEqual(h("Nobody inspects the spammish repetition"), 0xFBCE_A83C_8A37_8BF1)
        XCTAssertEqual(XXH64.hex(0xAB), "00000000000000ab")
        // Every length class (tails of 1-3, 4 and 8 bytes, 1-n stripes), unseeded and seeded, on
        // bytes (7i + 3) mod 256; digests from python-xxhash 3.5.0 (libxxhash 0.8.2).
        let data = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
        let vectors: [(Int, UInt64, UInt64)] = [
            (1, 0x1f25c8d0bc1f4bb6, 0x79826bcd749d267a),
            (3, 0x31d2363f52e564c9, 0x78efd77575e26575),
            (4, 0x9bb64b7d66ee9fda, 0x6f0a6c97d68bf353),
            (5, 0xc7608efddb7051fe, 0xa677b535c22b67a5),
            (7, 0x9a7b149959ce60d8, 0xd97ede93c9d66a0d),
            (8, 0xdab99d95c6f90092, 0xa2f1e28437a78a1b),
            (9, 0x170bb6bf975b4c02, 0x9c9a3cd83532d84f),
            (12, 0xd52e407833af5133, 0xbcc9f0d616ff9a7b),
            (15, 0x1b47cb8243cc8e32, 0xe2ec50a544faec61),
            (16, 0x434850232b787be2, 0x93351859a7286376),
            (31, 0xa2aa5f33cc4a6119, 0x755437271d1d0a84),
            (32, 0x23c3c17ef790fd97, 0xbf624b932c090428),
            (33, 0x50a7cfc7ba588784, 0x7aceaf1e9d34ea35),
            (40, 0xb620306b253d76b6, 0x3b3666e250c83a50),
            (47, 0xa7c5465cc5ad205e, 0x230880b9188bee4b),
            (63, 0x5e3e54b431c7493c, 0x2c8ddce5c85d0d9d),
            (64, 0x0eb64b3ef6eeb01f, 0x4af341f14e3a6fc9),
            (100, 0xa61f8d4c170fe531, 0xf6d8f65c625abb4f),
            (1000, 0x5f235fa033f1a3fb, 0x442acd0a822e86f6),
            (1048576, 0x989560ce899d661b, 0xf4b6ff08a66f55fa),
        ]
        data.withUnsafeBytes { raw in
            for (n, unseeded, seeded) in vectors {
                let b = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                XCTAssertEqual(XXH64.hash(b), unseeded, "length \(n)")
                XCTAssertEqual(XXH64.hash(b, seed: 0x9E37_79B9_7F4A_7C15), seeded, "length \(n), seeded")
            }
        }
    }

    /// Timing and bit-exactness on the real 135M model (run in release for the figures).
    func testRealModelCheckpointRoundTrip() throws {
        let model = Self.packageRoot + "/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        guard FileManager.default.fileExists(atPath: model) else { throw XCTSkip("no \(model) (make deps)") }
        let run = try tempDir()
        let p = try ModelSource.load(model)
        var opt = AdamW(count: p.count)
        for i in 0..<p.count { opt.m[i] = p.pointer[i] * 0.5; opt.v[i] = p.pointer[i] * p.pointer[i] }
        opt.step = 17
        var t = Date()
        let dir = try Checkpoint.save(runDir: run, params: p, optimizer: opt, state: state(17))
        let save = Date().timeIntervalSince(t)
        let q = ParameterStore(config: p.config)
        var o2 = AdamW(count: q.count)
        t = Date()
        _ = try Checkpoint.load(dir, into: q, optimizer: &o2)
        let load = Date().timeIntervalSince(t)
        t = Date()
        let (bytes, _) = try XXH64.file(dir + "/model.safetensors")
        let hash = Date().timeIntervalSince(t)
        print(String(format: "real model checkpoint: save %.2f s, load (verify + read) %.2f s, xxh64 of %d bytes %.3f s (%.1f GB/s)",
                     save, load, bytes, hash, Double(bytes) / hash / 1e9))
        XCTAssertEqual(memcmp(p.pointer, q.pointer, 4 * p.count), 0)
        XCTAssertEqual(Self.bits(o2.m), Self.bits(opt.m))
        XCTAssertEqual(Self.bits(o2.v), Self.bits(opt.v))
        XCTAssertEqual(o2.step, 17)
    }
}
