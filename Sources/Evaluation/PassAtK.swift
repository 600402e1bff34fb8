// pass@k for code generation.
//
// Unbiased estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"):
// with n samples of which c are correct,
//     pass@k = 1 − C(n−c, k) / C(n, k) = 1 − Π_{i = n−c+1}^{n} (1 − k / i),
// the product form avoids huge binomials. When n − c < k every k-subset holds a correct sample
// and pass@k = 1. The spec's trainer (§10.2) also logs the empirical variants: pass@1 = mean
// correctness over all samples, pass@k = fraction of problems with at least one correct sample.
import Foundation

public enum PassAtKError: Error, LocalizedError, Equatable {
    case invalidCounts(n: Int, c: Int, k: Int, reason: String)
    case noProblems

    public var errorDescription: String? {
        switch self {
        case .invalidCounts(let n, let c, let k, let reason):
            return "pass@k with n=\(n) samples, c=\(c) correct, k=\(k): \(reason)"
        case .noProblems:
            return "pass@k over an empty list of problems is undefined"
        }
    }
}

public enum PassAtK {
    /// Unbiased pass@k for one problem with `n` samples of which `c` passed.
    public static func estimate(n: Int, c: Int, k: Int) throws -> Double {
        guard n >= 1 else { throw PassAtKError.invalidCounts(n: n, c: c, k: k, reason: "need at least one sample") }
        guard k >= 1 else { throw PassAtKError.invalidCounts(n: n, c: c, k: k, reason: "k must be ≥ 1") }
        guard k <= n else {
            throw PassAtKError.invalidCounts(n: n, c: c, k: k, reason: "k exceeds the number of samples; draw at least k samples per problem")
        }
        guard c >= 0, c <= n else {
            throw PassAtKError.invalidCounts(n: n, c: c, k: k, reason: "the correct count must lie in 0...n")
        }
        if n - c < k { return 1.0 }
        var allFail = 1.0
        var i = n - c + 1
        while i <= n {
            allFail *= 1.0 - Double(k) / Double(i)
            i += 1
        }
        return 1.0 - allFail
    }

    /// Mean unbiased pass@k over problems, each given as (samples, correct).
    public static func mean(_ counts: [(n: Int, c: Int)], k: Int) throws -> Double {
        guard !counts.isEmpty else { throw PassAtKError.noProblems }
        var sum = 0.0
        for p in counts { sum += try estimate(n: p.n, c: p.c, k: k) }
        return sum / Double(counts.count)
    }

    /// Mean unbiased pass@k from per-problem sample outcomes (true = passed).
    public static func mean(outcomes: [[Bool]], k: Int) throws -> Double {
        try mean(outcomes.map { (n: $0.count, c: $0.filter { $0 }.count) }, k: k)
    }

    /// Spec §10.2 pass@1: mean correctness over every sample of every problem.
    public static func meanCorrectness(_ outcomes: [[Bool]]) throws -> Double {
        let all = outcomes.flatMap { $0 }
        guard !all.isEmpty else { throw PassAtKError.noProblems }
        return Double(all.filter { $0 }.count) / Double(all.count)
    }

    /// Spec §10.2 pass@k: fraction of problems with at least one correct sample (empirical max).
    public static func anyCorrect(_ outcomes: [[Bool]]) throws -> Double {
        guard !outcomes.isEmpty else { throw PassAtKError.noProblems }
        return Double(outcomes.filter { $0.contains(true) }.count) / Double(outcomes.count)
    }
}
