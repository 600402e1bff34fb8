import ArgumentParser
import Foundation
import Model

/// `ebft-dist bench blas`: sgemm throughput for square and transformer-shaped products.
struct BenchBLAS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blas",
        abstract: "sgemm GFLOP/s for square and transformer-shaped products, at 1 thread and at all BLAS threads.",
        discussion: """
            Shapes are row-major C[m×n] = op(A)·op(B) with inner dimension k; "T·" and "·T" mark
            the transposed operand used by backward passes (dX = dY·Wᵀ, dW = Xᵀ·dY). FLOPs = 2mnk.
            Runs in this process only (no MPI); "all threads" is OpenBLAS's count at start
            (OPENBLAS_NUM_THREADS, else the cores).
            """)

    @Option(help: "Approximate seconds of timed calls per shape and thread count.")
    var seconds = 0.3

    @Option(help: "Rows (tokens) of the transformer-shaped products.")
    var tokens = 512

    struct Shape {
        var name: String
        var m: Int, n: Int, k: Int
        var transA = false, transB = false
    }

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard tokens > 0 else { throw ValidationError("--tokens must be positive") }
    }

    func run() throws {
        let t = tokens
        let shapes: [Shape] = [
            Shape(name: "square 512", m: 512, n: 512, k: 512),
            Shape(name: "square 1024", m: 1024, n: 1024, k: 1024),
            Shape(name: "square 2048", m: 2048, n: 2048, k: 2048),
            Shape(name: "mlp up   x·W", m: t, n: 1536, k: 576),
            Shape(name: "mlp down h·W", m: t, n: 576, k: 1536),
            Shape(name: "lm head  x·E", m: t, n: 49152, k: 576),
            Shape(name: "up dX    dY·Wᵀ", m: t, n: 576, k: 1536, transB: true),
            Shape(name: "up dW    Xᵀ·dY", m: 576, n: 1536, k: t, transA: true),
            Shape(name: "down dX  dY·Wᵀ", m: t, n: 1536, k: 576, transB: true),
            Shape(name: "down dW  Hᵀ·dY", m: 1536, n: 576, k: t, transA: true),
            Shape(name: "head dX  dY·Eᵀ", m: t, n: 576, k: 49152, transB: true),
            Shape(name: "head dE  Xᵀ·dY", m: 576, n: 49152, k: t, transA: true),
        ]
        let allThreads = BLAS.threads
        let threadCounts = allThreads > 1 ? [1, allThreads] : [1]
        print("bench blas: \(BLAS.configuration)")
        var header = "\(padRight("product", 16)) \(pad("m", 6)) \(pad("n", 6)) \(pad("k", 6))"
        for th in threadCounts { header += " \(pad("GFLOP/s@\(th)", 12))" }
        if threadCounts.count > 1 { header += " \(pad("speedup", 8))" }
        print(header)
        fflush(nil)
        for s in shapes {
            var line = "\(padRight(s.name, 16)) \(pad("\(s.m)", 6)) \(pad("\(s.n)", 6)) \(pad("\(s.k)", 6))"
            var rates: [Double] = []
            for th in threadCounts {
                BLAS.threads = th
                rates.append(measure(s))
                line += " \(pad(fixed(rates.last!, 1), 12))"
            }
            if rates.count > 1 { line += " \(pad(fixed(rates[1] / rates[0], 2) + "×", 8))" }
            print(line)
            fflush(nil)
        }
        BLAS.threads = allThreads
    }

    /// GFLOP/s of repeated sgemm calls of `s` for about `seconds`.
    private func measure(_ s: Shape) -> Double {
        // Stored shapes: A is [m×k] (or [k×m] when transposed), B is [k×n] (or [n×k]).
        let aRows = s.transA ? s.k : s.m, aCols = s.transA ? s.m : s.k
        let bRows = s.transB ? s.n : s.k, bCols = s.transB ? s.k : s.n
        var a = [Float](repeating: 0, count: aRows * aCols)
        var b = [Float](repeating: 0, count: bRows * bCols)
        for i in a.indices { a[i] = Float(i % 17) * 0.01 - 0.08 }
        for i in b.indices { b[i] = Float(i % 13) * 0.01 - 0.06 }
        var c = [Float](repeating: 0, count: s.m * s.n)
        let flops = 2.0 * Double(s.m) * Double(s.n) * Double(s.k)
        let pa = UnsafeMutablePointer<Float>.allocate(capacity: a.count)
        let pb = UnsafeMutablePointer<Float>.allocate(capacity: b.count)
        let pc = UnsafeMutablePointer<Float>.allocate(capacity: c.count)
        defer { pa.deallocate(); pb.deallocate(); pc.deallocate() }
        pa.initialize(from: a, count: a.count)
        pb.initialize(from: b, count: b.count)
        pc.initialize(from: c, count: c.count)
        a = []; b = []; c = []
        func call() {
            BLAS.sgemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k,
                       a: pa, lda: aCols, b: pb, ldb: bCols, c: pc, ldc: s.n)
        }
        call()  // warm-up: thread start, page faults
        var calls = 0
        let start = now()
        var elapsed = 0.0
        repeat {
            call()
            calls += 1
            elapsed = now() - start
        } while elapsed < seconds
        return flops * Double(calls) / elapsed / 1e9
    }
}
