import Foundation
import Model
import Rollout

/// Measured per-phase costs of one EBFT step in one process (np 1, colocated), the planner's
/// compute input: written by `ebft-dist bench step --calibration-out FILE`, read by
/// `ebft-dist plan --calibration FILE` and `train --learners auto --set plan-calibration=FILE`.
///
/// Each model phase is kept as (seconds, FLOPs the phase needs per `StepCost`), so its rate in
/// FLOP/s carries over to another geometry or model; the optimizer as (seconds, bytes it must
/// move), a rate in bytes/s; rewards as seconds (per chunk when used). All measured with
/// `threads` BLAS threads (= the cores the process used).
public struct PlanCalibration: Codable, Equatable, Sendable {
    public struct Phase: Codable, Equatable, Sendable {
        public var seconds: Double
        /// Model FLOPs of the phase (sample, features, backward).
        public var flops: Double?
        /// Bytes the phase must move (optimizer).
        public var bytes: Double?

        public init(seconds: Double, flops: Double? = nil, bytes: Double? = nil) {
            self.seconds = seconds
            self.flops = flops
            self.bytes = bytes
        }
    }

    public static let formatName = "ebft-dist plan calibration v1"
    public var format: String = formatName
    /// BLAS threads of the measured process (the cores it computed on).
    public var threads: Int
    /// Cores of the machine it ran on.
    public var cores: Int
    /// What was measured: the model's shape, its trained parameters, the geometry, the step's
    /// size and the feature network's depth.
    public var model: ModelConfig
    public var trainedParameters: Int
    public var geometry: StridedGeometry
    public var samples: Int
    public var chunks: Int
    public var criticLayers: Int
    public var sample: Phase
    public var features: Phase
    public var reward: Phase
    public var backward: Phase
    public var optimizer: Phase
    /// Seconds of the step outside these phases (data, sorting, metrics).
    public var other: Double
    /// The measured step's time.
    public var step: Double
    /// memcpy bandwidth of this machine, bytes read + written per second.
    public var memcpyBandwidth: Double
    /// Free text: which steps, which command, when.
    public var note: String = ""

    public init(threads: Int, cores: Int, model: ModelConfig, trainedParameters: Int, geometry: StridedGeometry,
                samples: Int, chunks: Int, criticLayers: Int, sample: Phase, features: Phase, reward: Phase,
                backward: Phase, optimizer: Phase, other: Double, step: Double, memcpyBandwidth: Double, note: String = "") {
        self.threads = threads
        self.cores = cores
        self.model = model
        self.trainedParameters = trainedParameters
        self.geometry = geometry
        self.samples = samples
        self.chunks = chunks
        self.criticLayers = criticLayers
        self.sample = sample
        self.features = features
        self.reward = reward
        self.backward = backward
        self.optimizer = optimizer
        self.other = other
        self.step = step
        self.memcpyBandwidth = memcpyBandwidth
        self.note = note
    }

    /// Every field present, positive where a rate is divided by it.
    public func validate(source: String = "calibration") throws {
        func need(_ ok: Bool, _ what: String) throws {
            if !ok { throw PlanError.calibration("\(source): \(what)") }
        }
        try need(format == Self.formatName, "format is '\(format)', expected '\(Self.formatName)'")
        try need(threads >= 1, "threads must be at least 1, got \(threads)")
        try need(cores >= 1, "cores must be at least 1, got \(cores)")
        try need(samples >= 1 && chunks >= 1, "samples and chunks must be at least 1")
        for (name, p) in [("sample", sample), ("features", features), ("backward", backward)] {
            try need(p.seconds > 0 && p.seconds.isFinite, "\(name).seconds must be positive, got \(p.seconds)")
            guard let f = p.flops else { throw PlanError.calibration("\(source): missing field '\(name).flops'") }
            try need(f > 0 && f.isFinite, "\(name).flops must be positive, got \(f)")
        }
        try need(reward.seconds >= 0 && reward.seconds.isFinite, "reward.seconds must be ≥ 0, got \(reward.seconds)")
        try need(optimizer.seconds > 0 && optimizer.seconds.isFinite, "optimizer.seconds must be positive, got \(optimizer.seconds)")
        guard let b = optimizer.bytes else { throw PlanError.calibration("\(source): missing field 'optimizer.bytes'") }
        try need(b > 0 && b.isFinite, "optimizer.bytes must be positive, got \(b)")
        try need(other.isFinite, "other must be finite")
        try need(memcpyBandwidth > 0 && memcpyBandwidth.isFinite, "memcpyBandwidth must be positive, got \(memcpyBandwidth)")
    }

    // Rates at `threads` cores.
    public var sampleRate: Double { sample.flops! / sample.seconds }
    public var featuresRate: Double { features.flops! / features.seconds }
    public var backwardRate: Double { backward.flops! / backward.seconds }
    public var optimizerRate: Double { optimizer.bytes! / optimizer.seconds }
    public var rewardSecondsPerChunk: Double { reward.seconds / Double(chunks) }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    public func write(to path: String) throws {
        try json().write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Decodes and validates; a missing or mistyped field is named.
    public static func decode(_ data: Data, source: String = "calibration") throws -> PlanCalibration {
        let c: PlanCalibration
        do {
            c = try JSONDecoder().decode(PlanCalibration.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            let path = (ctx.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
            throw PlanError.calibration("\(source): missing field '\(path)'")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw PlanError.calibration("\(source): field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw PlanError.calibration("\(source): field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))' is null")
        } catch {
            throw PlanError.calibration("\(source): not a calibration file: \(error)")
        }
        try c.validate(source: source)
        return c
    }

    public static func load(path: String) throws -> PlanCalibration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PlanError.calibration("cannot read calibration file \(path)")
        }
        return try decode(data, source: path)
    }
}

public enum PlanError: Error, Equatable, CustomStringConvertible {
    case calibration(String)
    case input(String)

    public var description: String {
        switch self {
        case let .calibration(s): return "plan calibration: \(s)"
        case let .input(s): return "plan: \(s)"
        }
    }
}
