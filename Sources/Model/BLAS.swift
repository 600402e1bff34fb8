import COpenBLAS

/// The one matrix-product entry point (row-major sgemm) and OpenBLAS thread control.
///
/// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, row-major, where `op(X)` is `X` or
/// `Xᵀ`. `lda`, `ldb`, `ldc` are row strides of the matrices as stored.
public enum BLAS {
    @inlinable
    public static func sgemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if m == 1 {
            // A single row: OpenBLAS's sgemv is several times faster than its sgemm here
            // (batch-1 decoding). c[1×n] = alpha · a[1×k] · op(B) + beta · c.
            //   transB: c = B[n×k] · aᵀ  → sgemv NoTrans on B;   else c = B[k×n]ᵀ · aᵀ → sgemv Trans.
            let incA = transA ? lda : 1
            cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans,
                        Int32(transB ? n : k), Int32(transB ? k : n), alpha, b, Int32(ldb),
                        a, Int32(incA), beta, c, 1)
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// OpenBLAS worker threads for this process.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// OpenBLAS build configuration and the core kernel it selected, e.g. "OpenBLAS 0.3.21 ... Haswell".
    public static var configuration: String {
        let cfg = openblas_get_config().map { String(cString: $0) } ?? "?"
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"
        return "\(cfg) (core \(core))"
    }
}
