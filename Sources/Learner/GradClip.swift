import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Global-norm gradient clipping over a flat gradient (as `torch.nn.utils.clip_grad_norm_`).
///
/// Sums of squares are deterministic and independent of the number of threads: the buffer is cut
/// into fixed blocks of `blockSize` elements from its start, each block is summed by the same
/// code (in Double), and the blocks' sums are added in block order. Threads only decide who
/// computes which block.
public enum GradClip {
    /// Elements per block of the deterministic sums (64 KiB of Float: a block of each of the
    /// optimizer's four buffers stays in the L2 cache while the fused update works on it).
    public static let blockSize = 16_384

    /// Σ x² over `count` elements, in Double: two 4-wide accumulators over 8-element steps, then
    /// a scalar tail; the same for a block wherever it sits in the buffer.
    @inline(__always)
    static func blockSumOfSquares(_ p: UnsafePointer<Float>, count: Int) -> Double {
        typealias D4 = SIMD4<Double>
        var a0 = D4(), a1 = D4()
        var i = 0
        while i + 8 <= count {
            let x = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            let lo = D4(Double(x[0]), Double(x[1]), Double(x[2]), Double(x[3]))
            let hi = D4(Double(x[4]), Double(x[5]), Double(x[6]), Double(x[7]))
            a0 += lo * lo
            a1 += hi * hi
            i += 8
        }
        let s = a0 + a1
        var sum = (s[0] + s[1]) + (s[2] + s[3])
        while i < count { let a = Double(p[i]); sum += a * a; i += 1 }
        return sum
    }

    /// Blocks per piece of work handed to a thread (256 Ki elements: 1 MB of each buffer).
    static let piece = 16

    /// Runs `body(blocks)` on contiguous runs of whole blocks that together cover `count`
    /// elements (the last block may be partial), on up to `threads` threads that take the next
    /// run as they finish one: a thread slowed by other work on its core takes fewer runs
    /// instead of holding up the rest.
    public static func forEachBlockRun(count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
        let blocks = (count + blockSize - 1) / blockSize
        let pieces = (blocks + piece - 1) / piece
        let workers = max(1, min(threads, pieces))
        if workers == 1 { body(0 ..< blocks); return }
        let next = PieceCounter(count: pieces)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let i = next.take() { body(i * piece ..< min(blocks, (i + 1) * piece)) }
        }
    }

    /// Σ x² of `count` elements, blocked (see the type's documentation) and spread over `threads`.
    public static func sumOfSquares(_ g: UnsafePointer<Float>, count: Int, threads: Int = 1) -> Double {
        let blocks = (count + blockSize - 1) / blockSize
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { out in
            let out = out
            forEachBlockRun(count: count, threads: threads) { run in
                for b in run {
                    let start = b * blockSize
                    out[b] = blockSumOfSquares(g + start, count: min(blockSize, count - start))
                }
            }
        }
        var sum = 0.0
        for s in partial { sum += s }
        return sum
    }

    /// The L2 norm of `g`, accumulated in Double.
    public static func globalNorm(_ g: UnsafePointer<Float>, count: Int, threads: Int = 1) -> Double {
        sumOfSquares(g, count: count, threads: threads).squareRoot()
    }

    /// The factor that clips a gradient of norm `norm` to `maxNorm`: `maxNorm / (norm + 1e-6)`
    /// when that is below 1, else 1 (multiplying by 1 leaves a Float as it is).
    public static func scale(norm: Double, maxNorm: Double) -> Float {
        let coef = maxNorm / (norm + 1e-6)
        return coef < 1 ? Float(coef) : 1
    }

    /// Multiplies `g` by `maxNorm / (norm + 1e-6)` when its norm exceeds `maxNorm`; returns the
    /// norm before clipping. A non-finite norm is returned as is and `g` is left untouched (the
    /// caller should skip the step and report it).
    @discardableResult
    public static func clip(_ g: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double, threads: Int = 1) -> Double {
        precondition(maxNorm > 0, "maxNorm must be positive, got \(maxNorm)")
        let norm = globalNorm(g, count: count, threads: threads)
        guard norm.isFinite else { return norm }
        let s = scale(norm: norm, maxNorm: maxNorm)
        if s < 1 {
            for i in 0 ..< count { g[i] *= s }
        }
        return norm
    }

    /// Array convenience.
    @discardableResult
    public static func clip(_ g: inout [Float], maxNorm: Double) -> Double {
        g.withUnsafeMutableBufferPointer { clip($0.baseAddress!, count: $0.count, maxNorm: maxNorm) }
    }
}

/// Hands out 0, 1, …, count − 1 once each to concurrent callers.
final class PieceCounter: @unchecked Sendable {
    private var next = 0
    private let count: Int
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init(count: Int) {
        self.count = count
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    func take() -> Int? {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard next < count else { return nil }
        next += 1
        return next - 1
    }
}
