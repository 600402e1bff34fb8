import XCTest
@testable import Trainer

final class TrainConfigTests: XCTestCase {
    func testPresetsValidate() throws {
        for name in TrainConfig.presetNames {
            XCTAssertNoThrow(try TrainConfig.preset(name).validate(), name)
        }
        XCTAssertEqual(try TrainConfig.preset("code").blocksPerChunk, 127)
        XCTAssertEqual(try TrainConfig.preset("translation").blocksPerChunk, 509)
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
