import ArgumentParser
import Foundation
import Trainer

/// Options shared by commands that take a run configuration.
struct ConfigOptions: ParsableArguments {
    @Option(help: "Preset to start from: \(TrainConfig.presetNames.joined(separator: ", ")).")
    var preset: String = "small"

    @Option(name: .customLong("config"), help: "YAML file whose fields override the preset.")
    var configFile: String?

    @Option(name: .customLong("set"), parsing: .singleValue,
            help: ArgumentHelp("Override one field, e.g. --set learning-rate=3e-5 (repeatable).",
                               valueName: "field=value"))
    var overrides: [String] = []

    @Option(help: "Optimizer steps (overrides the config's steps).") var steps: Int?
    @Option(help: "Run directory for metrics, config and checkpoints.") var runDir: String?
    @Option(help: "Policy model (GGUF); default: the installed SmolLM2.") var model: String?
    @Option(help: "Random seed.") var seed: UInt64?

    func resolve() throws -> TrainConfig {
        var c = try TrainConfig.preset(preset)
        if let f = configFile { c = try TrainConfig.load(yamlFile: f, over: c) }
        for o in overrides { try c.apply(override: o) }
        if let s = steps { c.steps = s }
        if let r = runDir { c.runDir = r }
        if let m = model { c.model = m }
        if let s = seed { c.seed = s }
        try c.validate()
        return c
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune with EBFT: strided sampling, frozen-critic features, RLOO policy gradient.",
        discussion: """
        The configuration is a preset, then an optional YAML file, then --set overrides; the \
        resolved configuration is printed at start and saved as RUN_DIR/config.yaml. Every step \
        appends one JSON line to RUN_DIR/metrics.jsonl.
        """)

    @OptionGroup var config: ConfigOptions
    @Flag(help: "No progress bar.") var quiet = false

    func run() throws {
        let c: TrainConfig
        do { c = try config.resolve() } catch { throw ValidationError("\(error)") }
        FileHandle.standardError.write(("configuration:\n" + (try c.yaml())).data(using: .utf8)!)
        let say: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
        do {
            let context = try RunContext(config: c, log: say)
            say("\(context.totalSteps) steps × \(c.chunksPerStep) chunks × \(c.samplesPerChunk) samples; "
                + "K=\(context.geometry.K) blocks of G=\(c.generateLength) per chunk")
            let trainer = try Trainer(context: context, showProgress: !quiet, log: say)
            try trainer.run()
            say("done: metrics in \(c.runDir)/metrics.jsonl")
        } catch let e as ValidationError {
            throw e
        } catch {
            say("error: \(error)")
            throw ExitCode(1)
        }
    }
}
