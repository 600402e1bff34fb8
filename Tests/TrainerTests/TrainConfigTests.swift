import XCTest
@testable import Trainer

final class TrainConfigTests: XCTestCase {
    func testPresetsValidate() throws {
        for name in TrainConfig.presetNames {
            XCTAssertNoThrow(try TrainConfig.preset(name).validate(), name)
        }
        XCTAssertEqual(try TrainConfig.preset("code").blocksPerChunk, 127)
        XCTAssertEqual(try TrainConfig.preset("translation").blocksPerChunk, 509)
        // `objective` is `small` with the batch, γ and evaluation of the measured rise.
        var o = try TrainConfig.preset("objective"), s = try TrainConfig.preset("small")
        XCTAssertEqual([o.chunksPerStep, o.steps, o.evalEvery, o.evalChunks, o.evalSeeds], [8, 40, 10, 8, 6])
        XCTAssertEqual(o.ceCoef, 0)
        XCTAssertEqual(o.learningRate, 1e-5)
        (o.chunksPerStep, o.ceCoef, o.steps, o.evalEvery, o.evalChunks, o.evalSeeds, o.runDir) =
            (s.chunksPerStep, s.ceCoef, s.steps, s.evalEvery, s.evalChunks, s.evalSeeds, s.runDir)
        XCTAssertEqual(try o.yaml(), try s.yaml())
        XCTAssertThrowsError(try TrainConfig.preset("huge")) { e in
            XCTAssertTrue("\(e)".contains("unknown preset 'huge'"), "\(e)")
        }
    }

    func testOverridesParseTypesAndNameTheField() throws {
        var c = try TrainConfig.preset("small")
        try c.apply(override: "chunk-length=256")
        try c.apply(override: "learningRate=3e-5")
        try c.apply(override: "whitening=false")
        try c.apply(override: "pooling=mean")
        XCTAssertTrue(c.sharedPrefix, "shared prefixes are the default")
        try c.apply(override: "shared-prefix=false")
        XCTAssertFalse(c.sharedPrefix)
        XCTAssertThrowsError(try c.apply(override: "shared-prefix=sometimes")) { e in
            XCTAssertTrue("\(e)".contains("shared-prefix") && "\(e)".contains("true or false"), "\(e)")
        }
        try c.apply(override: "model=/tmp/x.gguf")
        XCTAssertEqual(c.chunkLength, 256)
        XCTAssertEqual(c.learningRate, 3e-5)
        XCTAssertFalse(c.whitening)
        XCTAssertEqual(c.pooling, "mean")
        XCTAssertEqual(c.model, "/tmp/x.gguf")
        try c.apply(override: "model=null")
        XCTAssertNil(c.model)
        XCTAssertThrowsError(try c.apply(override: "chunk-length=abc")) { e in
            XCTAssertTrue("\(e)".contains("chunk-length"), "\(e)")
        }
        XCTAssertThrowsError(try c.apply(override: "chunk-lenght=12")) { e in
            XCTAssertTrue("\(e)".contains("unknown config field 'chunk-lenght'"), "\(e)")
        }
        XCTAssertThrowsError(try c.apply(override: "whitening=maybe"))
        XCTAssertThrowsError(try c.apply(override: "stride"))
    }

    func testValidationNamesTheField() throws {
        var c = try TrainConfig.preset("small")
        c.stride = 5
        XCTAssertThrowsError(try c.validate()) { e in
            XCTAssertEqual((e as? ConfigError).map { if case let .invalid(f, _) = $0 { return f } else { return "" } }, "stride")
        }
        c = try TrainConfig.preset("small")
        c.topP = 0
        XCTAssertThrowsError(try c.validate()) { e in XCTAssertTrue("\(e)".contains("top-p"), "\(e)") }
        c = try TrainConfig.preset("small")
        try c.apply(override: "flop-budget=2.5e15")
        XCTAssertEqual(c.flopBudget, 2.5e15)
        try c.apply(override: "flop-budget=-1")
        XCTAssertThrowsError(try c.validate()) { e in XCTAssertTrue("\(e)".contains("flop-budget"), "\(e)") }
        // The downstream and RLVR fields.
        for (field, value) in [("eval-down-samples", "0"), ("eval-down-every", "-1"), ("eval-down-top-p", "1.5"),
                               ("rlvr-questions", "0"), ("rlvr-max-new-tokens", "0")] {
            c = try TrainConfig.preset("small")
            try c.set(field, to: value)
            XCTAssertThrowsError(try c.validate()) { e in XCTAssertTrue("\(e)".contains("'\(field)'"), "\(field): \(e)") }
        }
        c = try TrainConfig.preset("small")
        try c.apply(override: "method=rlvr")
        XCTAssertTrue(c.runsColocated)
        try c.validate()
        c.samplesPerChunk = 1
        XCTAssertThrowsError(try c.validate()) { e in XCTAssertTrue("\(e)".contains("leave-one-out"), "\(e)") }
        try c.apply(override: "eval-down-start=false")
        XCTAssertFalse(c.evalDownStart)
    }

    func testYAMLRoundTripAndFileOverlay() throws {
        let c = try TrainConfig.preset("translation")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = dir.appendingPathComponent("full.yaml").path
        try c.yaml().write(toFile: full, atomically: true, encoding: .utf8)
        XCTAssertEqual(try TrainConfig.load(yamlFile: full), c)

        let partial = dir.appendingPathComponent("partial.yaml").path
        try "steps: 7\ndiversity-coef: 1.0\nrun-dir: runs/x\n".write(toFile: partial, atomically: true, encoding: .utf8)
        let o = try TrainConfig.load(yamlFile: partial, over: c)
        XCTAssertEqual(o.steps, 7)
        XCTAssertEqual(o.diversityCoef, 1.0)
        XCTAssertEqual(o.runDir, "runs/x")
        XCTAssertEqual(o.stride, 2)

        let bad = dir.appendingPathComponent("bad.yaml").path
        try "stepz: 3\n".write(toFile: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainConfig.load(yamlFile: bad)) { e in
            XCTAssertTrue("\(e)".contains("stepz"), "\(e)")
        }
        XCTAssertThrowsError(try TrainConfig.load(yamlFile: dir.appendingPathComponent("missing.yaml").path))
    }
}

/// The printed configuration (startup print, config.yaml, checkpoints) reads as a person
/// wrote it and parses back to the identical values.
final class TrainConfigYAMLNumberTests: XCTestCase {
    /// Every Double field of `c`, by YAML key (found by reflection, so a new field is covered).
    static func doubles(_ c: TrainConfig) -> [String: Double] {
        var out: [String: Double] = [:]
        for child in Mirror(reflecting: c).children {
            if let label = child.label, let d = child.value as? Double { out[TrainConfig.yamlKey(label)] = d }
        }
        return out
    }

    func assertRoundTrip(_ c: TrainConfig, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = try c.yaml()
        let back = try TrainConfig.load(yamlText: text, source: what)
        XCTAssertTrue(back == c, "\(what): the configuration read back differs", file: file, line: line)
        let a = Self.doubles(c), b = Self.doubles(back)
        XCTAssertEqual(Set(a.keys), Set(b.keys), file: file, line: line)
        for (k, v) in a {
            XCTAssertEqual(b[k]?.bitPattern, v.bitPattern, "\(what): \(k) \(v) came back as \(b[k] ?? .nan)\n\(text)",
                           file: file, line: line)
        }
    }

    func testDoubleFieldsPrintShortAndRoundTripBitExactly() throws {
        XCTAssertGreaterThanOrEqual(Self.doubles(TrainConfig()).count, 16, "reflection finds the Double fields")
        for name in TrainConfig.presetNames {
            try assertRoundTrip(try TrainConfig.preset(name), "preset \(name)")
        }
        let awkward: [Double] = [1e-5, 3e-5, 0.1, 1.0 / 3, 1e-300, .leastNonzeroMagnitude, 1e22, 123456789.125, 0.6, 300, 0,
                                 -2.5e-7, 1e16, 9007199254740992, 2.2250738585072014e-308, .greatestFiniteMagnitude]
        let base = try TrainConfig.preset("small")
        for v in awkward {
            // Every Double field set to v (through the override path, which parses v's text).
            var c = base
            for key in Self.doubles(base).keys { try c.set(key, to: "\(v)") }
            for (key, d) in Self.doubles(c) { XCTAssertEqual(d.bitPattern, v.bitPattern, "setting \(key) to \(v)") }
            try assertRoundTrip(c, "every Double field = \(v)")
        }
    }

    func testPrintedNumbersReadAsAPersonWroteThem() throws {
        var c = try TrainConfig.preset("small")
        c.ceCoef = 1.0 / 3
        c.adamEps = .leastNonzeroMagnitude  // 5e-324
        c.weightDecay = 1e22
        c.diversityCoef = 123456789.125
        let lines = Set(try c.yaml().split(separator: "\n").map(String.init))
        for expected in ["learning-rate: 1e-05", "temperature: 0.6", "stall-timeout: 300", "top-p: 1",
                         "warmup-ratio: 0.03", "beta2: 0.95", "ce-coef: 0.3333333333333333", "adam-eps: 5e-324",
                         "weight-decay: 1e+22", "diversity-coef: 123456789.125", "validation-fraction: 0.05",
                         "chunk-length: 128", "steps: 8", "seed: 43", "whitening: true", "pooling: last-token"] {
            XCTAssertTrue(lines.contains(expected), "no line '\(expected)' in:\n\(lines.sorted().joined(separator: "\n"))")
        }
    }
}
