import Foundation

/// A resumed run's metrics: the records carried over from the checkpoint's run, and the FLOP
/// count they end at.
extension Trainer {
    /// Writes this run's metrics.jsonl as the records of `source`'s (this run's own when
    /// `source` is nil or the same directory) up to `step`: train records ≤ step, evaluations
    /// < step. Nothing in `source` is modified when it is another directory.
    func carryMetrics(from source: String?, after step: Int) throws {
        let runDir = context.config.runDir
        let path = runDir + "/metrics.jsonl"
        var from = path
        if let s = source, !Self.sameDirectory(s, runDir) { from = s + "/metrics.jsonl" }
        let text = (try? String(contentsOfFile: from, encoding: .utf8)) ?? ""
        if text.isEmpty && from == path { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = obj["step"] as? Int else { return false }
            return (obj["kind"] as? String) == "train" ? s <= step : s < step
        }
        try (kept.map { $0 + "\n" }.joined()).write(toFile: path, atomically: true, encoding: .utf8)
        if from != path { log("metrics.jsonl: \(kept.count) records up to step \(step) from \(from)") }
    }

    /// Whether two paths name the same directory (same device and inode).
    static func sameDirectory(_ a: String, _ b: String) -> Bool {
        let fm = FileManager.default
        guard let x = try? fm.attributesOfItem(atPath: a), let y = try? fm.attributesOfItem(atPath: b),
              let dx = x[.systemNumber] as? NSNumber, let ix = x[.systemFileNumber] as? NSNumber,
              let dy = y[.systemNumber] as? NSNumber, let iy = y[.systemFileNumber] as? NSNumber else { return false }
        return dx == dy && ix == iy
    }

    /// `flops_total` of the carried-over train record of `step` (rank 0, after `carryMetrics`).
    /// A run from before FLOPs were counted: `step` steps of the method's fixed cost, or 0 for
    /// RLVR (logged, since a `flop-budget` then counts from the resume).
    func carriedFLOPs(after step: Int) -> Double {
        let text = (try? String(contentsOfFile: context.config.runDir + "/metrics.jsonl", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n").reversed() {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  (obj["kind"] as? String) == "train", (obj["step"] as? Int) == step else { continue }
            if let f = obj["flops_total"] as? Double { return f }
            break
        }
        guard step > 0 else { return 0 }
        if let f = context.stepFLOPs(chunks: context.config.chunksPerStep) { return Double(step) * f }
        log("warning: the checkpoint's metrics have no flops_total; this run's FLOPs count from the resume")
        return 0
    }
}
