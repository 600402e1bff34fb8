import Model

/// Clip → AdamW → schedule, over the flat parameter and gradient buffers. Every learner replica
/// runs it on identical (all-reduced) gradients and so stays identical.
///
/// Two passes over memory, both spread over `threads` cores: the gradient's norm (read g), then
/// one fused pass that clips, updates and zeroes (read p, g, m, v; write p, m, v, g) and sums the
/// new first moment's squares on the way (for the gradient-noise estimate). Both sums are
/// blocked (`GradClip`), so results are bit-identical for any thread count.
public struct PolicyOptimizer: Sendable {
    public var adam: AdamW
    public var schedule: LRSchedule
    public var maxGradNorm: Double
    /// Threads of the optimizer passes; nil: as many as OpenBLAS uses (this rank's cores).
    public var threads: Int?

    public init(parameterCount: Int, adam: AdamWConfig, schedule: LRSchedule, maxGradNorm: Double,
                threads: Int? = nil) {
        self.adam = AdamW(count: parameterCount, config: adam)
        self.schedule = schedule
        self.maxGradNorm = maxGradNorm
        self.threads = threads
    }

    /// Optimizer steps taken so far (the next step's index).
    public var stepsTaken: Int { adam.step }

    public struct Result: Equatable, Sendable {
        /// Global L2 norm of the gradient before clipping.
        public var gradNorm: Double
        public var learningRate: Double
        /// False when the gradient was not finite and the update was skipped.
        public var applied: Bool
        /// The L2 norm of Adam's first moment after the update (nil when it was skipped).
        public var momentNorm: Double?
    }

    /// Clips `grads` (by scaling inside the update), applies one AdamW update to `params`, then
    /// zeroes `grads`. A non-finite gradient skips the update (and still counts as a step of
    /// the schedule).
    public mutating func step(params: ParameterStore, grads: ParameterStore) -> Result {
        precondition(params.count == grads.count && params.count == adam.count, "buffer sizes differ")
        return step(params: params.pointer, grads: grads.pointer)
    }

    /// The same on raw buffers of `adam.count` elements.
    public mutating func step(params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>) -> Result {
        precondition(maxGradNorm > 0, "maxGradNorm must be positive, got \(maxGradNorm)")
        let n = adam.count, th = max(1, threads ?? BLAS.threads)
        let lr = schedule.lr(step: adam.step)
        let norm = GradClip.globalNorm(grads, count: n, threads: th)
        guard norm.isFinite else {
            adam.step += 1
            grads.update(repeating: 0, count: n)
            return Result(gradNorm: norm, learningRate: lr, applied: false, momentNorm: nil)
        }
        let m2 = adam.fusedUpdate(params: params, grads: grads, lr: Float(lr),
                                  gradScale: GradClip.scale(norm: norm, maxNorm: maxGradNorm), threads: th)
        return Result(gradNorm: norm, learningRate: lr, applied: true, momentNorm: m2.squareRoot())
    }
}
