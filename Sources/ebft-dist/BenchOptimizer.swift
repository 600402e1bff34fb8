import ArgumentParser
import Foundation
import Learner
import Model

/// `ebft-dist bench optimizer`: the optimizer phase (gradient norm, clipping, AdamW, zeroing the
/// gradient) on flat buffers of the SmolLM2-135M size, against memcpy measured in the same run.
struct BenchOptimizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimizer",
        abstract: "The optimizer phase (norm, clip, AdamW, zeroing) against the memcpy bandwidth, fused and unfused.",
        discussion: """
            Buffers: parameters, gradient, Adam's m and v (Float32, --parameters elements; default \
            the SmolLM2-135M count). memcpy copies one such buffer; its bandwidth counts the bytes \
            read plus the bytes written. The optimizer's own bytes are those the update cannot avoid: \
            read p, g, m, v and write p, m, v (7 × 4 bytes per parameter); the fused step also reads \
            g for the norm and writes the zeroed g (9 × 4 in all). "× memcpy" is the step's time over \
            the time memcpy's bandwidth needs for the 7 × 4 bytes. "fused" is the trainer's step \
            (a norm pass, then one clip+AdamW+zero pass, on --threads); "unfused" is the sequence \
            the trainer ran before: norm, clip, AdamW, zeroing and the first moment's norm for the \
            gradient-noise estimate, each a pass of its own on one thread. Times: best and median \
            of --repeats, the gradient restored (untimed) before each step.
            """)

    @Option(help: "Parameters (default: SmolLM2-135M's count).") var parameters: Int?
    @Option(help: "Threads of the fused step (default: OpenBLAS's threads).") var threads: Int?
    @Option(help: "Timed repeats of each measurement.") var repeats = 5
    @Flag(help: "Skip the unfused sequence.") var fusedOnly = false

    func validate() throws {
        if let p = parameters { guard p > 0 else { throw ValidationError("--parameters must be positive, got \(p)") } }
        if let t = threads { guard t > 0 else { throw ValidationError("--threads must be positive, got \(t)") } }
        guard repeats > 0 else { throw ValidationError("--repeats must be positive, got \(repeats)") }
    }

    func run() throws {
        let n = parameters ?? ParameterLayout(config: .smolLM2_135M).count
        let th = threads ?? BLAS.threads
        let bytes = Double(n * 4)
        func buffer() -> UnsafeMutablePointer<Float> {
            UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n)
        }
        let p = buffer(), g = buffer(), saved = buffer()
        defer { p.deallocate(); g.deallocate(); saved.deallocate() }
        for i in 0 ..< n {
            p[i] = Float(i % 1009) * 1e-4 - 0.05
            saved[i] = Float(i % 997) * 1e-6 - 5e-4
        }
        memcpy(g, saved, n * 4)
        print("bench optimizer: \(n) parameters (\(fixed(bytes / 1e6, 1)) MB per buffer), fused step on \(th) thread(s)")
        fflush(nil)

        func time(_ body: () -> Void) -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        func stats(_ xs: [Double]) -> (best: Double, median: Double) {
            let s = xs.sorted()
            return (s[0], s[s.count / 2])
        }
        let copy = stats((0 ..< repeats).map { _ in time { memcpy(g, saved, n * 4) } })
        let bandwidth = 2 * bytes / copy.best
        let floor = 7 * bytes / bandwidth

        print("\(padRight("measurement", 30)) \(pad("best s", 9)) \(pad("median s", 9)) \(pad("GB/s", 7)) "
              + pad("× memcpy", 9))
        func row(_ name: String, _ t: (best: Double, median: Double), moved: Double) {
            print("\(padRight(name, 30)) \(pad(fixed(t.best, 4), 9)) \(pad(fixed(t.median, 4), 9)) "
                  + "\(pad(fixed(moved / t.best / 1e9, 1), 7)) \(pad(fixed(t.best / floor, 2) + "×", 9))")
            fflush(nil)
        }
        print("\(padRight("memcpy (read + write)", 30)) \(pad(fixed(copy.best, 4), 9)) \(pad(fixed(copy.median, 4), 9)) "
              + "\(pad(fixed(bandwidth / 1e9, 1), 7))")
        print("\(padRight("memcpy time of 7 × 4 B/param", 30)) \(pad(fixed(floor, 4), 9))")
        fflush(nil)

        let config = AdamWConfig(weightDecay: 0.01)
        var fused = PolicyOptimizer(parameterCount: n, adam: config, schedule: .constant(peak: 1e-5), maxGradNorm: 1,
                                    threads: th)
        var fusedTimes: [Double] = []
        for _ in 0 ... repeats {   // the first step touches the moments' pages: not timed
            memcpy(g, saved, n * 4)
            fusedTimes.append(time { _ = fused.step(params: p, grads: g) })
        }
        row("fused (\(th) thread\(th == 1 ? "" : "s"))", stats(Array(fusedTimes.dropFirst())), moved: 9 * bytes)
        if !fusedOnly {
            var adam = AdamW(count: n, config: config)
            var times: [Double] = []
            for _ in 0 ... repeats {
                memcpy(g, saved, n * 4)
                times.append(time {
                    GradClip.clip(g, count: n, maxNorm: 1)
                    adam.update(params: p, grads: g, lr: 1e-5)
                    g.update(repeating: 0, count: n)
                    _ = adam.m.withUnsafeBufferPointer { GradClip.globalNorm($0.baseAddress!, count: n) }
                })
            }
            // norm (r g), clip (r+w g), AdamW (7), zero (w g), moment norm (r m): 12 × 4 bytes.
            row("unfused (1 thread)", stats(Array(times.dropFirst())), moved: 12 * bytes)
        }
    }
}
