import Foundation

/// Stateless random numbers keyed by identity (a counter-based generator).
///
/// Algorithm: a hash chain of SplitMix64 finalisers (Stafford's "Mix13" variant, the output
/// function of SplitMix64). The seed and each key word are absorbed one after another:
///
///     h = mix(seed + γ)
///     h = mix(h ⊕ mix(w + γ·(i+2)))      for each key word w_i, i = 0, 1, 2, 3
///
/// with γ = 0x9E3779B97F4A7C15 (the golden-ratio increment of SplitMix64). Each key word is
/// pre-mixed with a word-specific offset, so (a, b) and (b, a) give unrelated outputs, and
/// the chain is finalised once more by the last `mix`. `uniform` uses the top 53 bits.
///
/// EBFT key conventions:
/// * strided sampling (training and online eval): `uniform(seed: runSeed, chunk, sample, block, token)`
///   (`samplingUniform`), so a token's draw depends only on its identity — not on the batch
///   layout, the rank count or the order in which work is done. Online-eval chunks use
///   `derive(runSeed, .validationSampling)` as the seed so they never share draws with training
///   chunks of the same index.
/// * every other use draws from its own derived seed `derive(runSeed, stream)`: whitening
///   jitter, shuffles, initialisation, downstream-eval sampling.
public enum CounterRNG {
    @usableFromInline static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The uses that get their own derived seed. The values have the top bit set, so the
    /// derivation key `(seed, stream, 0, 0, 0)` never equals a sampling key (chunk ids < 2⁶³).
    public enum Stream: UInt64, Sendable, CaseIterable {
        case validationSampling = 0x8000_0000_0000_0001
        case downstreamSampling = 0x8000_0000_0000_0002
        case whiteningJitter = 0x8000_0000_0000_0003
        case shuffle = 0x8000_0000_0000_0004
        case initialisation = 0x8000_0000_0000_0005
        case rlvrSampling = 0x8000_0000_0000_0006
    }

    /// The seed of `stream` derived from the run seed.
    public static func derive(_ seed: UInt64, _ stream: Stream) -> UInt64 {
        bits(seed: seed, stream.rawValue, 0, 0, 0)
    }

    /// The uniform for generated token `token` of block `block` of sample `sample` of chunk
    /// `chunk` (spec §4.6 sampling, keyed by identity).
    @inlinable
    public static func samplingUniform(seed: UInt64, chunk: Int, sample: Int, block: Int, token: Int) -> Double {
        precondition(chunk >= 0 && sample >= 0 && block >= 0 && token >= 0, "sampling key words must be non-negative")
        return uniform(seed: seed, UInt64(chunk), UInt64(sample), UInt64(block), UInt64(token))
    }

    /// SplitMix64's output function (variant 13 of Stafford's mixers): a bijection on UInt64.
    @inlinable @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 64 random bits for the key (seed, a, b, c, d).
    @inlinable
    public static func bits(seed: UInt64, _ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) -> UInt64 {
        var h = mix(seed &+ gamma)
        h = mix(h ^ mix(a &+ gamma &* 2))
        h = mix(h ^ mix(b &+ gamma &* 3))
        h = mix(h ^ mix(c &+ gamma &* 4))
        h = mix(h ^ mix(d &+ gamma &* 5))
        return h
    }

    /// A uniform double in [0, 1) for the key (seed, a, b, c, d) (53 random bits).
    @inlinable
    public static func uniform(seed: UInt64, _ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) -> Double {
        Double(bits(seed: seed, a, b, c, d) >> 11) * 0x1.0p-53
    }

    /// A standard normal double for the key (seed, a, b, c, d), by Box–Muller from two
    /// independent uniforms derived from the key (the second one re-mixes the first hash).
    @inlinable
    public static func normal(seed: UInt64, _ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) -> Double {
        let h = bits(seed: seed, a, b, c, d)
        let u1 = 1.0 - Double(h >> 11) * 0x1.0p-53                 // (0, 1]: log is finite
        let u2 = Double(mix(h ^ gamma) >> 11) * 0x1.0p-53
        return (-2.0 * Foundation.log(u1)).squareRoot() * Foundation.cos(2.0 * Double.pi * u2)
    }
}

/// A small seeded sequential generator (SplitMix64, Steele/Lea/Flood 2014) for shuffles and
/// parameter initialisation. Its output sequence is fixed by the seed on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return CounterRNG.mix(state)
    }

    /// A uniform double in [0, 1).
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A standard normal double (Box–Muller, one value per call, two draws).
    public mutating func nextNormal() -> Double {
        let u1 = 1.0 - nextUniform()
        let u2 = nextUniform()
        return (-2.0 * log(u1)).squareRoot() * cos(2.0 * Double.pi * u2)
    }

    /// A uniform integer in [0, n) without modulo bias (Lemire's multiply-and-reject), using
    /// only this generator's own draws — independent of the standard library's algorithms.
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0, "nextInt(below:) needs n > 0, got \(n)")
        let bound = UInt64(n)
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold {
                product = next().multipliedFullWidth(by: bound)
            }
        }
        return Int(product.high)
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates, fixed by the seed).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = nextInt(below: i + 1)
            if i != j { p.swapAt(i, j) }
        }
        return p
    }
}
