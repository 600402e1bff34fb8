import Foundation

// `ebft-dist report`: held-out changes paired over sampling seeds (issue 11).

extension Report {
    /// The key under which evaluation logs sampling seed `seed`'s value of `key`.
    public static func seedKey(_ key: String, _ seed: Int) -> String { "\(key)_seed\(seed)" }

    /// The change of an evaluated quantity from a run's first evaluation that has per-seed
    /// values, at one later evaluation.
    public struct PairedChange: Sendable, Equatable {
        public var step: Int
        public var value: Double
        /// Mean over seeds of (value at `step` − value at the first evaluation), seed by seed.
        public var change: Double
        /// Standard error of `change`: the spread of the per-seed differences / √seeds.
        public var se: Double
        /// The standard error the two evaluations' own standard errors give when treated as
        /// independent, √(se₀² + se²), for comparison.
        public var unpairedSE: Double
        public var seeds: Int
    }

    /// Evaluation e uses the same sampling seed at every step, so with common random numbers
    /// the per-seed values of two evaluations are correlated and their difference is measured
    /// more precisely than the two standard errors suggest. Uses the seeds both records have
    /// (at least 2); empty when no record has per-seed values of `key`.
    public static func pairedChanges(_ eval: [RunRecord], key: String) -> [PairedChange] {
        func seeds(_ r: RunRecord) -> [Double] {
            var out: [Double] = []
            while let v = r[seedKey(key, out.count)] { out.append(v) }
            return out
        }
        guard let i0 = eval.firstIndex(where: { seeds($0).count >= 2 }) else { return [] }
        let first = seeds(eval[i0])
        let se0 = standardError(first)
        var out: [PairedChange] = []
        for r in eval[(i0 + 1)...] {
            let s = seeds(r)
            let n = min(s.count, first.count)
            guard n >= 2 else { continue }
            let d = (0..<n).map { s[$0] - first[$0] }
            let change = d.reduce(0, +) / Double(n)
            let value = s[..<n].reduce(0, +) / Double(n)
            let unpaired = (se0 * se0 + standardError(s) * standardError(s)).squareRoot()
            out.append(PairedChange(step: r.step, value: value, change: change, se: standardError(d),
                                    unpairedSE: unpaired, seeds: n))
        }
        return out
    }

    /// Standard error of the mean of `x` (sample standard deviation / √n); NaN for n < 2.
    static func standardError(_ x: [Double]) -> Double {
        let n = Double(x.count)
        guard x.count >= 2 else { return .nan }
        let m = x.reduce(0, +) / n
        let v = x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)
        return (v / n).squareRoot()
    }

    /// The keys whose per-seed values are reported as paired changes, with their names.
    static let pairedKeys = [("eval_objective_raw", "raw objective J"),
                             ("eval_feature_matching_raw_pass1", "raw ‖φ_gt‖² − L_CFM")]

    /// A Markdown table of every run's paired changes (empty when no run logged per-seed values).
    public static func pairedChangeTable(runs: [RunLog]) -> String {
        var rows: [String] = []
        let counts = Dictionary(runs.map { ($0.label, 1) }, uniquingKeysWith: +)
        for r in runs {
            let label = counts[r.label]! > 1 ? "\(r.label) [\(r.dirName)]" : r.label
            for (key, name) in pairedKeys {
                for c in pairedChanges(r.eval, key: key) {
                    let t = c.se > 0 ? c.change / c.se : .nan
                    rows.append("| \(cell(label)) | \(name) | \(c.step) | \(fixed(c.value, 4)) | "
                                + String(format: "%+.4f ± %.4f", c.change, c.se) + " | \(fixed(t, 1)) | "
                                + "\(fixed(c.unpairedSE, 4)) | \(c.seeds) |")
                }
            }
        }
        guard !rows.isEmpty else { return "" }
        return "| run | quantity | step | value | change from first eval ± paired SE | t | unpaired SE | seeds |\n"
            + "|---|---|---:|---:|---:|---:|---:|---:|\n" + rows.joined(separator: "\n") + "\n"
    }
}
