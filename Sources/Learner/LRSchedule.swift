#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The learning rate per optimizer step (spec §7.3).
public enum LRSchedule: Codable, Equatable, Sendable {
    /// The same rate at every step.
    case constant(peak: Double)
    /// HuggingFace `get_constant_schedule_with_warmup`: the factor is `s / max(1, warmup)` for
    /// `s < warmup` and 1 afterwards, where `s` counts scheduler steps taken *before* the
    /// optimizer step. The scheduler is stepped after each optimizer step, so optimizer step
    /// `t` (0-based) runs with `peak · t / warmup` — the very first step has learning rate 0.
    case constantWithWarmup(peak: Double, warmupSteps: Int)

    /// The learning rate of optimizer step `t` (0-based).
    public func lr(step t: Int) -> Double {
        precondition(t >= 0, "optimizer step must be non-negative, got \(t)")
        switch self {
        case .constant(let peak):
            return peak
        case let .constantWithWarmup(peak, warmup):
            return t < warmup ? peak * Double(t) / Double(max(1, warmup)) : peak
        }
    }

    /// `ceil(ratio · maxSteps)` in double arithmetic, as OpenRLHF computes it
    /// (`math.ceil(max_steps * lr_warmup_ratio)`, ratio 0.03).
    public static func warmupSteps(maxSteps: Int, ratio: Double = 0.03) -> Int {
        precondition(maxSteps >= 0 && ratio >= 0, "maxSteps and ratio must be non-negative")
        return Int(ceil(Double(maxSteps) * ratio))
    }
}
