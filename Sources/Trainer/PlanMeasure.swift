import Foundation
import Learner
import Model
import Rollout

/// A planner calibration measured inside a run (`train --learners auto` without a calibration
/// file): one chunk of step 0 sampled, featurised and rewarded, its n experiences run through a
/// fresh learner's backward (gradient discarded), and the run's optimizer timed on a scratch
/// slice of at most 2²² parameters (a copy: the run's weights are not touched). One chunk
/// instead of the step and no warm-up step, so first-touch costs are included: the rates are
/// lower (and the predicted compute longer) than a `bench step` calibration's. Costs about
/// 1/chunks-per-step of a step's rollout and backward on this rank, plus the gradient buffer
/// (4 bytes per trained parameter) while it runs.
public enum PlanMeasure {
    /// memcpy bandwidth (bytes read + written per second), best of 5 copies of `floats` Float32.
    public static func memcpyBandwidth(floats n: Int) -> Double {
        let a = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
        let b = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
        defer { a.deallocate(); b.deallocate() }
        memset(a, 1, n * 4)
        memset(b, 2, n * 4)
        var best = Double.infinity
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            memcpy(b, a, n * 4)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(n * 4) / best
    }

    static func seconds<R>(_ body: () throws -> R) rethrows -> (R, Double) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        return (r, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }

    /// The calibration of `context`'s run from one chunk (needs the feature network).
    public static func oneChunk(context: RunContext) throws -> PlanCalibration {
        guard let critic = context.critic else { throw PlanError.calibration("measuring needs the feature network loaded") }
        let c = context.config
        guard let chunk = context.chunks(step: 0).first else { throw PlanError.calibration("the run has no training chunk") }
        let out = RolloutWorker(policy: context.policy, critic: critic, settings: context.rolloutSettings)
            .run(chunks: [chunk], policyVersion: 0)
        let model = context.policy.parameters.config
        let run = try Planner.Run(config: c, model: model)
        let cost = StepCost(model: model, geometry: context.geometry, samples: c.samplesPerChunk, chunks: 1,
                            criticLayers: run.criticLayers, trainedParameters: context.trainable.count)
        let learner = PolicyLearner(model: context.policy, geometry: context.geometry,
                                    temperature: Float(c.temperature), ceCoef: Float(c.ceCoef))
        learner.sharedPrefix = c.sharedPrefix
        learner.maxTokensPerBatch = c.microBatchTokens
        let (_, backward) = seconds { learner.accumulate(out.experiences, totalSequences: c.samplesPerChunk) }
        // The optimizer on a scratch slice: a copy of the first m trained values and their gradient.
        let m = min(context.trainable.count, 1 << 22)
        let params = UnsafeMutablePointer<Float>.allocate(capacity: m)
        let grads = UnsafeMutablePointer<Float>.allocate(capacity: m)
        defer { params.deallocate(); grads.deallocate() }
        params.update(from: context.trainable.pointer, count: m)
        var optimizer = context.makeOptimizer(count: m)
        var best = Double.infinity
        for _ in 0..<3 {
            grads.update(from: learner.gradient.pointer, count: m)
            let (_, t) = seconds { optimizer.step(params: params, grads: grads) }
            best = min(best, t)
        }
        let times = out.times.seconds
        return PlanCalibration(
            threads: BLAS.threads, cores: ProcessInfo.processInfo.activeProcessorCount, model: model,
            trainedParameters: context.trainable.count, geometry: context.geometry, samples: c.samplesPerChunk, chunks: 1,
            criticLayers: run.criticLayers,
            sample: .init(seconds: times["sample"] ?? 0, flops: cost.sampling),
            features: .init(seconds: times["features"] ?? 0, flops: cost.features),
            reward: .init(seconds: times["reward"] ?? 0),
            backward: .init(seconds: backward, flops: cost.learner),
            optimizer: .init(seconds: best, bytes: 28 * Double(m)),
            other: 0, step: (times["sample"] ?? 0) + (times["features"] ?? 0) + (times["reward"] ?? 0) + backward,
            memcpyBandwidth: memcpyBandwidth(floats: m),
            note: "measured in-process on one chunk of step 0 (train --learners auto)")
    }
}
