import Foundation

/// Watches every optimizer step for training that has gone wrong without a NaN (issue 10,
/// defect 7: at lr 1e2 CE climbed to 367,050 and at lr 1e4 the gradient stayed exactly 0 with CE
/// stuck at ln V, both with exit 0). A step is *bad* when
/// - `non-finite`: the loss or the gradient norm is NaN or ±∞ (the optimizer skipped the update);
/// - `ce-limit`: the CE exceeds `ceLimitFactor`·ln V nats, twice the CE of a uniform guess over the
///   vocabulary — no model that is learning is that wrong;
/// - `loss-spike`: the CE is more than `spikeZ` standard deviations above the mean of the last
///   `window` good steps (the z-score of llm.c's outlier detector; one-sided, only upward). It is
///   computed once `minHistory` good steps are known; the standard deviation is the population
///   one, floored at `minRelativeStd`·|mean| so that a nearly constant CE (a random model at
///   ln V) does not turn rounding noise into spikes. Bad steps do not enter the window, so a loss
///   that jumps and stays high keeps being flagged;
/// - `dead-gradient`: the gradient norm is exactly 0 although the loss has a gradient (a CE term,
///   or some non-zero advantage) — the weights have collapsed.
///
/// A non-finite step stops the run at once (as before this detector: NaN is never noise). The
/// other kinds stop it after `maxBadSteps` bad steps in a row (a good step resets the count;
/// 0 = report but never stop), so one odd batch is reported and tolerated.
///
/// Only rank 0 runs the detector, on the metrics summed over all ranks; the trainer broadcasts
/// its verdict, so every rank stops at the same step.
public struct DivergenceDetector: Sendable {
    public enum Anomaly: String, Sendable, CaseIterable {
        case nonFinite = "non-finite"
        case ceLimit = "ce-limit"
        case lossSpike = "loss-spike"
        case deadGradient = "dead-gradient"
    }

    /// One step's numbers, as rank 0 sees them after the reduction.
    public struct Observation: Sendable {
        /// The step just done (1-based, as printed).
        public var step: Int
        /// Mean teacher-forced CE (nats per token) of the step's sequences; nil when the method
        /// has none (RLVR), which leaves the CE checks out.
        public var ce: Double?
        /// The optimized loss.
        public var loss: Double
        /// Global gradient norm before clipping.
        public var gradNorm: Double
        /// False when a zero gradient is legitimate (every advantage 0 and no CE term, or no
        /// sequence trained).
        public var expectsGradient: Bool

        public init(step: Int, ce: Double?, loss: Double, gradNorm: Double, expectsGradient: Bool) {
            self.step = step
            self.ce = ce
            self.loss = loss
            self.gradNorm = gradNorm
            self.expectsGradient = expectsGradient
        }
    }

    public struct Verdict: Sendable {
        public var anomalies: [Anomaly] = []
        /// One sentence per anomaly, naming the quantity, its value and the threshold.
        public var reasons: [String] = []
        /// The CE's z-score against the window, nil before `minHistory` good steps (or without CE).
        public var z: Double?
        /// Bad steps in a row, this one included (0 for a good step).
        public var consecutiveBad = 0
        /// Set when the run must stop: the error message (step, quantity, threshold, count).
        public var stopMessage: String?

        public var isBad: Bool { !anomalies.isEmpty }
        public var stop: Bool { stopMessage != nil }
    }

    /// CE above this many times ln V is a `ce-limit` step.
    public static let ceLimitFactor = 2.0
    /// The z-score's standard deviation is at least this fraction of |mean|.
    public static let minRelativeStd = 0.01

    public let maxBadSteps: Int
    public let window: Int
    public let spikeZ: Double
    public let vocabularySize: Int
    /// Good steps needed before the z-score is computed: 8, or the whole window if smaller.
    public var minHistory: Int { min(8, window) }
    /// `ceLimitFactor`·ln V.
    public var ceLimit: Double { Self.ceLimitFactor * log(Double(vocabularySize)) }

    /// The CE of the last `window` good steps, oldest first.
    public private(set) var history: [Double] = []
    public private(set) var consecutiveBad = 0

    public init(maxBadSteps: Int, window: Int, spikeZ: Double, vocabularySize: Int) {
        precondition(window >= 2 && spikeZ > 0 && maxBadSteps >= 0 && vocabularySize >= 2,
                     "DivergenceDetector settings out of range")
        self.maxBadSteps = maxBadSteps
        self.window = window
        self.spikeZ = spikeZ
        self.vocabularySize = vocabularySize
    }

    /// Mean and (population) standard deviation of the window, the latter floored at
    /// `minRelativeStd`·|mean|; nil before `minHistory` good steps.
    public var baseline: (mean: Double, std: Double)? {
        guard history.count >= minHistory, !history.isEmpty else { return nil }
        let n = Double(history.count)
        let mean = history.reduce(0, +) / n
        let variance = history.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        return (mean, max(variance.squareRoot(), Self.minRelativeStd * abs(mean)))
    }

    /// (x − mean) / std against the window; nil before `minHistory` good steps, 0 when the
    /// window is all zeros.
    public func zScore(_ x: Double) -> Double? {
        guard let b = baseline else { return nil }
        return b.std > 0 ? (x - b.mean) / b.std : 0
    }

    /// Judges one step and updates the window and the count of bad steps in a row.
    public mutating func observe(_ o: Observation) -> Verdict {
        var v = Verdict()
        func flag(_ a: Anomaly, _ reason: String) {
            v.anomalies.append(a)
            v.reasons.append(reason)
        }
        if let ce = o.ce, !ce.isFinite { flag(.nonFinite, "the CE is \(ce)") }
        if !o.loss.isFinite { flag(.nonFinite, "the loss is \(o.loss)") }
        if !o.gradNorm.isFinite { flag(.nonFinite, "the gradient norm is \(o.gradNorm); the update was skipped") }
        if let ce = o.ce, ce.isFinite {
            if ce > ceLimit {
                flag(.ceLimit, "CE \(Self.g(ce)) exceeds \(Self.g(ceLimit)) "
                     + "(\(Self.g(Self.ceLimitFactor))·ln V, V = \(vocabularySize))")
            }
            if let b = baseline {
                let z = b.std > 0 ? (ce - b.mean) / b.std : 0
                v.z = z
                if z > spikeZ {
                    flag(.lossSpike, "CE \(Self.g(ce)) is \(Self.g(z)) standard deviations above the mean "
                         + "\(Self.g(b.mean)) of the last \(history.count) good steps (spike-z = \(Self.g(spikeZ)))")
                }
            }
        }
        if o.gradNorm == 0 && o.expectsGradient {
            flag(.deadGradient, "the gradient norm is exactly 0 although the loss has a gradient (collapsed weights)")
        }
        if v.isBad {
            consecutiveBad += 1
        } else {
            consecutiveBad = 0
            if let ce = o.ce { push(ce) }
        }
        v.consecutiveBad = consecutiveBad
        let what = v.reasons.joined(separator: "; ")
        if v.anomalies.contains(.nonFinite) {
            v.stopMessage = "step \(o.step): \(what) (a non-finite step always stops the run)"
        } else if maxBadSteps > 0 && consecutiveBad >= maxBadSteps {
            let first = o.step - consecutiveBad + 1
            let steps = consecutiveBad == 1 ? "step \(o.step)" : "steps \(first)–\(o.step)"
            v.stopMessage = "step \(o.step): \(what); \(consecutiveBad) bad step\(consecutiveBad == 1 ? "" : "s") "
                + "in a row (\(steps)) reached max-bad-steps = \(maxBadSteps) (0 = report bad steps, never stop)"
        }
        return v
    }

    /// Rebuilds the state from a resumed run's earlier steps, in order: each step's CE (nil if
    /// none) and whether it was bad.
    public mutating func replay(ce: Double?, bad: Bool) {
        if bad {
            consecutiveBad += 1
        } else {
            consecutiveBad = 0
            if let ce, ce.isFinite { push(ce) }
        }
    }

    mutating func push(_ x: Double) {
        history.append(x)
        if history.count > window { history.removeFirst(history.count - window) }
    }

    static func g(_ x: Double) -> String { String(format: "%.4g", x) }
}

extension Trainer {
    /// Rank 0 judges the step just done (`record`, its metrics) and adds `bad_step`,
    /// `bad_steps` (in a row), `loss_z` (null before enough history) and, on a bad step,
    /// `anomaly` (the kinds, comma-separated) to it; then every rank learns the verdict from
    /// rank 0, so all stop at the same step. Returns the error message when the run must stop.
    func watchDivergence(_ record: inout MetricsRecord?) throws -> String? {
        var stop = 0
        var message = "rank 0 found the training diverged (its message says why)"
        if rank == 0, var r = record {
            let c = context.config
            let advantages = (r["advantage_abs_mean"] ?? 0) > 0
            let ceTerm = c.method == "sft" || (c.method == "ebft" && c.ceCoef > 0)
            let o = DivergenceDetector.Observation(
                step: stepsDone, ce: r["ce"], loss: r["loss"] ?? .nan, gradNorm: r["grad_norm"] ?? .nan,
                expectsGradient: (r["sequences"] ?? 0) > 0 && (ceTerm || advantages))
            let v = divergence.observe(o)
            r["bad_step"] = v.isBad ? 1 : 0
            r["bad_steps"] = Double(v.consecutiveBad)
            r["loss_z"] = v.z ?? .nan
            if v.isBad {
                r.set("anomaly", v.anomalies.map(\.rawValue).joined(separator: ","))
                // The progress line shows the kind; without one the reason goes to the log.
                if progress == nil { log("warning: step \(stepsDone): \(v.reasons.joined(separator: "; "))") }
            }
            record = r
            if let m = v.stopMessage {
                stop = 1
                message = m + "; learning-rate is \(TrainConfig.yamlNumber(c.learningRate))"
            }
        }
        watchdog?.enter("divergence verdict", step: stepsDone, waitingOn: rank == 0 ? [] : [0])
        stop = try comm.broadcast(stop, root: 0)
        watchdog?.leave()
        return stop == 0 ? nil : message
    }

    /// A resumed run's detector continues from the train records already in metrics.jsonl
    /// (after the checkpoint's step; later ones were dropped by the restore).
    func replayDivergence(metricsFile path: String) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        for line in text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  obj["kind"] as? String == "train" else { continue }
            divergence.replay(ce: (obj["ce"] as? NSNumber)?.doubleValue, bad: (obj["bad_step"] as? Int) == 1)
        }
    }
}
