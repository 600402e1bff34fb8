/// Gradient signal-to-noise from the optimizer's own running average (issue 11).
///
/// Model: the step-t gradient is `g_t = μ + ξ_t` with independent noise, `E‖ξ‖² = σ²`. Adam's
/// bias-corrected first moment `m̂_t = Σ_i w_i g_i` (weights `w_i = (1−β)β^{t−i}/(1−β^t)`, summing
/// to 1) then has `E‖m̂‖² = ‖μ‖² + c_t·σ²` with `c_t = Σ w_i² = (1−β)(1+β^t)/((1+β)(1−β^t))`, while
/// the same average of the squared norms, `S_t = Σ w_i ‖g_i‖²`, has `E S_t = ‖μ‖² + σ²`. So
///
///     ‖μ‖² ≈ (‖m̂‖² − c_t·S_t)/(1 − c_t),   σ² ≈ S_t − ‖μ‖².
///
/// Reported: the signal fraction `‖μ‖²/S` (1 = every step points the same way, ≈ 0 = the steps
/// are noise around a small mean) and the gradient noise scale `B·σ²/‖μ‖²`, the batch size (in
/// the step's own units, e.g. sequences) at which the noise of one batch gradient would equal
/// its signal. The mean drifts as the weights move, which reads as extra noise: the figures
/// are a lower bound on the signal over the averaging window (≈ 1/(1−β) steps). The first step
/// (`c_1 = 1`) has no estimate. `S` only needs weights that sum to 1, so after a resume (the
/// tracker starts again while Adam's moment keeps its history) the estimate stays valid.
public struct GradientNoise: Equatable, Sendable {
    public let beta: Double
    /// Steps averaged so far (since the tracker started; a resumed run starts again).
    public private(set) var steps = 0
    /// Uncorrected running average of ‖g‖².
    var sumSquares = 0.0

    public init(beta: Double) {
        precondition(beta > 0 && beta < 1, "beta must be in (0, 1)")
        self.beta = beta
    }

    public struct Estimate: Equatable, Sendable {
        /// ‖μ‖² / S, clamped to [0, 1].
        public var signalFraction: Double
        /// `batch · σ² / ‖μ‖²` (infinite when no signal is detectable).
        public var noiseScale: Double
    }

    /// Adds a step's squared gradient norm (of the gradient the optimizer averaged, i.e. after
    /// clipping) and, given ‖m̂‖² (the bias-corrected first moment after the update, which has
    /// averaged `momentSteps` gradients with this tracker's β), returns the estimate; nil when
    /// there is none yet (the moment holds one gradient, or nothing was averaged).
    public mutating func update(gradNorm2: Double, momentNorm2: Double, momentSteps: Int, batch: Double) -> Estimate? {
        steps += 1
        sumSquares = beta * sumSquares + (1 - beta) * gradNorm2
        let S = sumSquares / (1 - Foundation.pow(beta, Double(steps)))
        let bt = Foundation.pow(beta, Double(momentSteps))
        let c = (1 - beta) * (1 + bt) / ((1 + beta) * (1 - bt))
        guard momentSteps > 1, S > 0, c < 1 else { return nil }
        let signal = max(0, (momentNorm2 - c * S) / (1 - c))
        let noise = max(0, S - signal)
        return Estimate(signalFraction: min(1, signal / S), noiseScale: signal > 0 ? batch * noise / signal : .infinity)
    }
}

import Foundation
