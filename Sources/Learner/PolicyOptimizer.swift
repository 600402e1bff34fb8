import Model

/// Clip → AdamW → schedule, over the flat parameter and gradient buffers. Every learner replica
/// runs it on identical (all-reduced) gradients and so stays identical.
public struct PolicyOptimizer: Sendable {
    public var adam: AdamW
    public var schedule: LRSchedule
    public var maxGradNorm: Double

    public init(parameterCount: Int, adam: AdamWConfig, schedule: LRSchedule, maxGradNorm: Double) {
        self.adam = AdamW(count: parameterCount, config: adam)
        self.schedule = schedule
        self.maxGradNorm = maxGradNorm
    }

    /// Optimizer steps taken so far (the next step's index).
    public var stepsTaken: Int { adam.step }

    public struct Result: Equatable, Sendable {
        /// Global L2 norm of the gradient before clipping.
        public var gradNorm: Double
        public var learningRate: Double
        /// False when the gradient was not finite and the update was skipped.
        public var applied: Bool
    }

    /// Clips `grads` in place, applies one AdamW update to `params`, then zeroes `grads`.
    /// A non-finite gradient skips the update (and still counts as a step of the schedule).
    public mutating func step(params: ParameterStore, grads: ParameterStore) -> Result {
        precondition(params.count == grads.count && params.count == adam.count, "buffer sizes differ")
        let lr = schedule.lr(step: adam.step)
        let norm = GradClip.clip(grads.pointer, count: grads.count, maxNorm: maxGradNorm)
        let ok = norm.isFinite
        if ok {
            adam.update(params: params.pointer, grads: grads.pointer, lr: Float(lr))
        } else {
            adam.step += 1
        }
        grads.zero()
        return Result(gradNorm: norm, learningRate: lr, applied: ok)
    }
}
