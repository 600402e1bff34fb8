import XCTest
@testable import Learner
@testable import Model

/// The signal-to-noise estimate from Adam's first moment, on synthetic gradients g = μ + ξ with
/// known ‖μ‖² and σ² in a dimension where squared norms concentrate (relative sd √(2/d) ≈ 1.4 %).
final class GradientNoiseTests: XCTestCase {
    func run(signal: Double, noise: Double, steps: Int = 300) -> (fraction: Double, scale: Double) {
        let d = 10_000, beta = 0.9, batch = 8.0
        var rng = SplitMix64(seed: 11)
        var mu = (0..<d).map { _ in rng.nextNormal() }
        let n = mu.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for i in 0..<d { mu[i] *= signal.squareRoot() / n }
        let sd = (noise / Double(d)).squareRoot()
        var m = [Double](repeating: 0, count: d)
        var tracker = GradientNoise(beta: beta)
        var fractions = [Double](), scales = [Double]()
        for t in 1...steps {
            var g2 = 0.0
            for i in 0..<d {
                let g = mu[i] + sd * rng.nextNormal()
                g2 += g * g
                m[i] = beta * m[i] + (1 - beta) * g
            }
            let bc = 1 - pow(beta, Double(t))
            let m2 = m.reduce(0) { $0 + ($1 / bc) * ($1 / bc) }
            let e = tracker.update(gradNorm2: g2, momentNorm2: m2, momentSteps: t, batch: batch)
            if t == 1 { XCTAssertNil(e) }
            if t > steps / 3, let e { fractions.append(e.signalFraction); scales.append(e.noiseScale) }
        }
        return (fractions.reduce(0, +) / Double(fractions.count), scales.reduce(0, +) / Double(scales.count))
    }

    func testRecoversKnownSignalFraction() {
        for (s, n) in [(1.0, 1.0), (1.0, 9.0), (1.0, 0.25)] {
            let r = run(signal: s, noise: n)
            let want = s / (s + n)
            // The estimate is a difference of two noisy averages; over 200 steps its mean is
            // within a few per cent of the truth.
            XCTAssertEqual(r.fraction, want, accuracy: 0.05 * max(want, 0.1), "signal \(s), noise \(n)")
            XCTAssertEqual(r.scale, 8 * n / s, accuracy: 0.2 * 8 * n / s, "noise scale")
        }
    }

    func testPureNoiseHasLittleSignal() {
        let r = run(signal: 1e-6, noise: 1)
        XCTAssertLessThan(r.fraction, 0.03)
    }
}
