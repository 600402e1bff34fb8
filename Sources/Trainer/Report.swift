import Foundation
import Yams

/// An error of `ebft-dist report`, with a message that names the file (and line) at fault.
public struct ReportError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// One line of metrics.jsonl: its step, numbers (`null` → NaN) and strings.
public struct RunRecord: Sendable, Equatable {
    public var step: Int
    /// 1-based line number in metrics.jsonl.
    public var line: Int
    public var numbers: [String: Double]
    public var strings: [String: String]

    public init(step: Int, line: Int, numbers: [String: Double] = [:], strings: [String: String] = [:]) {
        self.step = step
        self.line = line
        self.numbers = numbers
        self.strings = strings
    }

    /// The finite value of `key`, or nil when absent or null.
    public subscript(key: String) -> Double? {
        guard let v = numbers[key], v.isFinite else { return nil }
        return v
    }
}

/// A training run directory read back: its configuration's task and method and its metrics.
public struct RunLog: Sendable {
    /// The directory as given.
    public var dir: String
    /// The name in tables and legends: "base" for a run without optimizer steps, otherwise the
    /// method; made unique per task by `Report.assignLabels`.
    public var label: String
    public var task: String
    public var method: String
    public var train: [RunRecord]
    public var eval: [RunRecord]
    public var downstream: [RunRecord]
    /// config.yaml's settings other than `seed` and `run-dir`, as text: runs of one task whose
    /// settings are equal are seeds of one configuration, reported as one group.
    public var settings: [String: String]
    /// The label came from a `--label` override (runs sharing one are grouped as seeds).
    public var labelGiven = false

    public init(dir: String, label: String? = nil, task: String, method: String,
                train: [RunRecord] = [], eval: [RunRecord] = [], downstream: [RunRecord] = [],
                settings: [String: String] = [:]) {
        self.dir = dir
        self.task = task
        self.method = method
        self.train = train
        self.eval = eval
        self.downstream = downstream
        self.settings = settings
        self.label = label ?? (train.isEmpty ? "base" : method)
    }

    /// The settings other than the seed, in one comparable string.
    var settingsKey: String {
        settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
    }

    /// No optimizer steps: the starting model, evaluated only.
    public var isBase: Bool { train.isEmpty }

    /// The directory's last path component.
    public var dirName: String { URL(fileURLWithPath: dir).standardizedFileURL.lastPathComponent }

    /// Reads `dir/config.yaml` (task, method) and `dir/metrics.jsonl`.
    public static func load(dir: String) throws -> RunLog {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ReportError("\(dir): not a directory")
        }
        let configPath = (dir as NSString).appendingPathComponent("config.yaml")
        guard let configText = try? String(contentsOfFile: configPath, encoding: .utf8) else {
            throw ReportError("\(dir): no readable config.yaml (is this a training run directory?)")
        }
        let node: Any?
        do { node = try Yams.load(yaml: configText) } catch {
            throw ReportError("\(configPath): not valid YAML: \(error)")
        }
        guard let map = node as? [String: Any] else { throw ReportError("\(configPath): expected `key: value` lines") }
        guard let task = map["task"].map({ "\($0)" }), !task.isEmpty else { throw ReportError("\(configPath): no `task:` key") }
        guard let method = map["method"].map({ "\($0)" }), !method.isEmpty else { throw ReportError("\(configPath): no `method:` key") }

        let metricsPath = (dir as NSString).appendingPathComponent("metrics.jsonl")
        guard let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) else {
            throw ReportError("\(dir): no readable metrics.jsonl")
        }
        let records = try parseMetrics(text, source: metricsPath)
        var settings: [String: String] = [:]
        for (k, v) in map where k != "seed" && k != "run-dir" { settings[k] = v is NSNull ? "null" : "\(v)" }
        return RunLog(dir: dir, task: task, method: method,
                      train: records.train, eval: records.eval, downstream: records.downstream, settings: settings)
    }

    /// Parses metrics.jsonl text into train, eval and downstream records, each sorted by step
    /// (a later line for the same step replaces an earlier one). Other kinds are ignored; blank
    /// lines are skipped; anything else that is not a JSON object with a numeric `step` and a
    /// string `kind` is an error naming `source` and the line.
    public static func parseMetrics(_ text: String, source: String) throws
        -> (train: [RunRecord], eval: [RunRecord], downstream: [RunRecord]) {
        var byKind: [String: [Int: RunRecord]] = ["train": [:], "eval": [:], "downstream": [:]]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNo = i + 1
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let obj: Any
            do { obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) } catch {
                throw ReportError("\(source):\(lineNo): line \(lineNo) is not valid JSON")
            }
            guard let dict = obj as? [String: Any] else {
                throw ReportError("\(source):\(lineNo): line \(lineNo) is not a JSON object")
            }
            var numbers: [String: Double] = [:]
            var strings: [String: String] = [:]
            for (k, v) in dict {
                if let s = v as? String { strings[k] = s }
                else if v is NSNull { numbers[k] = .nan }
                else if let n = v as? NSNumber { numbers[k] = n.doubleValue }
            }
            guard let kind = strings["kind"] else {
                throw ReportError("\(source):\(lineNo): line \(lineNo) has no string \"kind\"")
            }
            guard byKind[kind] != nil else { continue }
            guard let s = numbers["step"], s.isFinite, s >= 0, s == s.rounded(), s < 1e15 else {
                throw ReportError("\(source):\(lineNo): line \(lineNo) has no non-negative integer \"step\"")
            }
            byKind[kind]![Int(s)] = RunRecord(step: Int(s), line: lineNo, numbers: numbers, strings: strings)
        }
        let sorted = { (k: String) -> [RunRecord] in byKind[k]!.values.sorted { $0.step < $1.step } }
        return (sorted("train"), sorted("eval"), sorted("downstream"))
    }

    /// The (step, value) points of `key` in `records`, null values included as NaN.
    func points(_ records: [RunRecord], _ key: String) -> [(x: Double, y: Double)] {
        records.compactMap { r in r.numbers[key].map { (x: Double(r.step), y: $0) } }
    }

    /// The value of `key` in the latest record that has it (nil when none does or it is null).
    func final(_ records: [RunRecord], _ key: String) -> (value: Double, record: RunRecord)? {
        guard let r = records.last(where: { $0.numbers[key] != nil }), let v = r[key] else { return nil }
        return (v, r)
    }
}

/// `ebft-dist report`: plots and a Markdown comparison of training runs.
public enum Report {
    /// A plotted quantity and where it comes from.
    public enum Quantity: String, CaseIterable, Sendable {
        case reward
        case trainCE = "train-ce"
        case valCE = "val-ce"
        /// The held-out feature matching on raw features (‖φ_gt‖² − L_CFM, higher is better).
        case heldOutFM = "held-out-fm"
        case pass1
        case passk
        case bleu

        var kind: String {
            switch self {
            case .reward, .trainCE: return "train"
            case .valCE, .heldOutFM: return "eval"
            case .pass1, .passk, .bleu: return "downstream"
            }
        }

        var key: String {
            switch self {
            case .reward: return "reward"
            case .trainCE: return "ce"
            case .valCE: return "eval_ce"
            case .heldOutFM: return "eval_feature_matching_raw_pass1"
            case .pass1: return "pass1"
            case .passk: return "passk"
            case .bleu: return "bleu"
            }
        }

        var title: String {
            switch self {
            case .reward: return "training reward"
            case .trainCE: return "training cross-entropy"
            case .valCE: return "validation cross-entropy"
            case .heldOutFM: return "held-out feature matching (raw features)"
            case .pass1: return "downstream pass@1"
            case .passk: return "downstream pass@k"
            case .bleu: return "downstream BLEU"
            }
        }

        var yLabel: String {
            switch self {
            case .reward: return "training reward (each method's own)"
            case .trainCE: return "training CE (nats/token)"
            case .valCE: return "validation CE (nats/token)"
            case .heldOutFM: return "‖φ_gt‖² − L_CFM (higher = better match)"
            case .pass1: return "pass@1"
            case .passk: return "pass@k"
            case .bleu: return "BLEU (0–100)"
            }
        }

        /// Noisy per-step curves get a moving average.
        var smooth: Bool { kind == "train" }
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    static let baseColor = "#555555"
    static let dash = "—"

    // MARK: labels and order

    /// Parses `DIR=NAME` label overrides against the run directories given (a DIR may itself
    /// contain `=`: the longest matching directory wins). Keys are the directories as given.
    public static func labelOverrides(_ specs: [String], dirs: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        for spec in specs {
            // Each directory may be spelled as given, without or with a trailing slash.
            var best: (dir: String, prefix: String)?
            for d in dirs {
                let t = Self.trimSlash(d)
                for form in [d, t, t + "/"] where spec.hasPrefix(form + "=") {
                    if best == nil || form.count > best!.prefix.count { best = (d, form) }
                }
            }
            guard let best else {
                throw ReportError("--label \(spec): expected DIR=NAME with DIR one of the run directories given")
            }
            let name = String(spec.dropFirst(best.prefix.count + 1))
            guard !name.isEmpty else { throw ReportError("--label \(spec): empty NAME") }
            out[best.dir] = name
        }
        return out
    }

    static func trimSlash(_ s: String) -> String {
        var t = s
        while t.count > 1 && t.hasSuffix("/") { t.removeLast() }
        return t
    }

    /// Applies overrides (keyed by directory as given), then makes labels unique within each
    /// task by appending " (dirname)" to every label that two runs of the task share — except
    /// that runs which are seeds of one configuration keep one label and form a group (see
    /// `groups`): runs of a task with the same settings but for `seed` and `run-dir`, or runs
    /// given the same label by overrides. A group's suffix is its first directory's name.
    public static func assignLabels(_ runs: inout [RunLog], overrides: [String: String] = [:]) {
        for i in runs.indices {
            runs[i].labelGiven = overrides[runs[i].dir] != nil
            runs[i].label = overrides[runs[i].dir] ?? (runs[i].isBase ? "base" : runs[i].method)
        }
        // The seed group a run belongs to: by label when given, otherwise by its settings.
        func cluster(_ r: RunLog) -> String {
            r.task + "\u{0}" + r.label + "\u{0}" + (r.labelGiven ? "given" : r.settingsKey)
        }
        for _ in 0..<2 {  // a second pass catches clashes the first created
            var clusters: [String: Set<String>] = [:]
            var firstDir: [String: String] = [:]
            for r in runs {
                clusters[r.task + "\u{0}" + r.label, default: []].insert(cluster(r))
                let c = cluster(r)
                if firstDir[c] == nil || r.dir < firstDir[c]! { firstDir[c] = r.dir }
            }
            var changed = false
            for i in runs.indices where clusters[runs[i].task + "\u{0}" + runs[i].label]!.count > 1 {
                let first = firstDir[cluster(runs[i])]!
                runs[i].label += " (\(URL(fileURLWithPath: first).standardizedFileURL.lastPathComponent))"
                changed = true
            }
            if !changed { break }
        }
    }

    /// The runs grouped by (task, label), in the order of each group's first run: after
    /// `assignLabels`, a group of several runs is several seeds of one configuration.
    public static func groups(_ runs: [RunLog]) -> [[RunLog]] {
        var order: [String] = []
        var byKey: [String: [RunLog]] = [:]
        for r in runs {
            let k = r.task + "\u{0}" + r.label
            if byKey[k] == nil { order.append(k) }
            byKey[k, default: []].append(r)
        }
        return order.map { byKey[$0]! }
    }

    /// Tasks in the order code, qa-code, translation, then any others alphabetically.
    public static func tasks(_ runs: [RunLog]) -> [String] {
        let known = ["code", "qa-code", "translation"]
        let all = Set(runs.map(\.task))
        return known.filter(all.contains) + all.subtracting(known).sorted()
    }

    static func methodRank(_ r: RunLog) -> Int {
        if r.isBase { return 0 }
        switch r.method {
        case "sft": return 1
        case "rlvr": return 2
        case "ebft": return 3
        default: return 4
        }
    }

    /// Base first, then sft, rlvr, ebft, then others; ties by method, label, directory.
    public static func ordered(_ runs: [RunLog]) -> [RunLog] {
        runs.sorted { a, b in
            let ka = (methodRank(a), a.method, a.label, a.dir), kb = (methodRank(b), b.method, b.label, b.dir)
            return ka < kb
        }
    }

    // MARK: formatting

    static func fixed(_ v: Double?, _ decimals: Int) -> String {
        guard let v, v.isFinite else { return dash }
        let s = String(format: "%.\(decimals)f", v)
        return s.hasPrefix("-") && Double(s) == 0 ? String(s.dropFirst()) : s
    }

    static func cell(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    static func sum(_ records: [RunRecord], _ key: String) -> Double? {
        let v = records.compactMap { $0[key] }
        return v.isEmpty ? nil : v.reduce(0, +)
    }

    // MARK: tables

    /// One Markdown section per task: a heading and the comparison table.
    public static func tables(runs: [RunLog]) -> String {
        tasks(runs).map { task in
            let rs = ordered(runs.filter { $0.task == task })
            let paired = pairedChangeTable(runs: rs)
            return "## Task `\(task)`\n\n" + table(task: task, runs: rs) + (paired.isEmpty ? "" : "\n" + paired)
        }.joined(separator: "\n")
    }

    /// The comparison table of one task's runs (already ordered). Several seeds of one
    /// configuration (a group, see `groups`) make one row: each value is the mean over the
    /// seeds ± its standard error (sample standard deviation / √seeds), with a `seeds` column.
    public static func table(task: String, runs: [RunLog]) -> String {
        let hasPass = runs.contains { r in r.downstream.contains { $0.numbers["pass1"] != nil || $0.numbers["passk"] != nil } }
        let hasBLEU = runs.contains { r in r.downstream.contains { $0.numbers["bleu"] != nil } }
        let showPass = hasPass || (!hasBLEU && task != "translation")
        let showBLEU = hasBLEU || (!hasPass && task == "translation")
        let showChrF = runs.contains { r in r.downstream.contains { $0.numbers["chrf"] != nil } }
        let showFLOPs = runs.contains { r in r.train.contains { $0.numbers["flops_total"] != nil } }
        let raw = "eval_feature_matching_raw_pass1"
        let showRaw = runs.contains { r in r.eval.contains { $0.numbers[raw] != nil } }
        // k of pass@k: in the header when every run agrees, otherwise in each cell.
        let ks = Set(runs.compactMap { r in r.final(r.downstream, "passk")?.record["k"] }.map { Int($0) })
        let commonK = ks.count == 1 ? ks.first : nil
        let grouped = groups(runs)
        let showSeeds = grouped.contains { $0.count > 1 }

        var header = ["run", "method"] + (showSeeds ? ["seeds"] : [])
        header += ["optimizer steps", "final val CE", "final feature-matching loss"]
        if showRaw { header += ["final raw ‖φ_gt‖² − L_CFM", "its change since the first eval"] }
        if showPass { header += ["pass@1", commonK.map { "pass@\($0)" } ?? "pass@k"] }
        if showBLEU { header += ["BLEU"] }
        if showChrF { header += ["chrF"] }
        if showFLOPs { header += ["training model FLOPs"] }
        header += ["mean step time (s)", "total wall time (s)"]
        var align = ["---", "---"] + (showSeeds ? ["---:"] : []) + ["---:", "---:", "---:"]
        if showRaw { align += ["---:", "---:"] }
        if showPass { align += ["---:", "---:"] }
        if showBLEU { align += ["---:"] }
        if showChrF { align += ["---:"] }
        if showFLOPs { align += ["---:"] }
        align += ["---:", "---:"]

        var rows: [[String]] = []
        for g in grouped {
            let r = g[0]
            func finalCell(_ records: (RunLog) -> [RunRecord], _ key: String, _ d: Int) -> String {
                meanSECell(g.map { m in m.final(records(m), key)?.value }, d)
            }
            var row = [cell(r.label), r.isBase ? "\(dash) (base model)" : cell(r.method)]
            if showSeeds { row.append("\(g.count)") }
            // Seeds stopped by a FLOP budget may differ: "25–26".
            let stepCounts = g.map { $0.train.map(\.step).max() ?? 0 }
            let (lo, hi) = (stepCounts.min() ?? 0, stepCounts.max() ?? 0)
            row += [lo == hi ? "\(hi)" : "\(lo)–\(hi)",
                    finalCell(\.eval, "eval_ce", 4), finalCell(\.eval, "eval_feature_matching_loss", 4)]
            if showRaw {
                row.append(finalCell(\.eval, raw, 4))
                // Each run's last value minus its first: the run's own start, evaluated with the
                // same sampling seeds, so the evaluation's sampling noise largely cancels.
                row.append(meanSECell(g.map { m -> Double? in
                    let v = m.eval.compactMap { $0[raw] }
                    return v.count >= 2 ? v.last! - v.first! : nil
                }, 4, signed: true))
            }
            if showPass {
                row.append(finalCell(\.downstream, "pass1", 4))
                let pks = g.compactMap { $0.final($0.downstream, "passk") }
                if pks.isEmpty {
                    row.append(dash)
                } else {
                    let kSet = Set(pks.compactMap { $0.record["k"] }.map { Int($0) })
                    let k = commonK == nil && kSet.count == 1 ? " (k=\(kSet.first!))" : ""
                    row.append(finalCell(\.downstream, "passk", 4) + k)
                }
            }
            if showBLEU { row.append(finalCell(\.downstream, "bleu", 2)) }
            if showChrF { row.append(finalCell(\.downstream, "chrf", 2)) }
            if showFLOPs {
                // A base row (no training step) spent none.
                let totals = g.map { m in m.train.isEmpty ? 0 : m.final(m.train, "flops_total")?.value }
                row.append(meanSECell(totals, 0) { String(format: "%.3e", $0) })
            }
            let stepTimes = g.flatMap { $0.train.compactMap { $0["time_step"] } }
            row.append(stepTimes.isEmpty ? dash : fixed(stepTimes.reduce(0, +) / Double(stepTimes.count), 1))
            let walls: [Double?] = g.map { m in
                let parts = [sum(m.train, "time_step"), sum(m.eval, "time_eval"), sum(m.downstream, "time_downstream")]
                    .compactMap { $0 }
                return parts.isEmpty ? nil : parts.reduce(0, +)
            }
            row.append(meanSECell(walls, 1))
            rows.append(row)
        }
        return ([header, align] + rows).map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") + "\n"
    }

    /// A table cell for one value per seed: the value for one seed; "mean ± SE" for several;
    /// "(m of n)" after it when only m of the n seeds have the value; a dash when none has.
    static func meanSECell(_ values: [Double?], _ decimals: Int, format: ((Double) -> String)? = nil,
                           signed: Bool = false) -> String {
        let v = values.compactMap { $0 }
        guard !v.isEmpty else { return dash }
        let show = format ?? { fixed($0, decimals) }
        let mean = v.reduce(0, +) / Double(v.count)
        var out = (signed && mean >= 0 ? "+" : "") + show(mean)
        if v.count >= 2 { out += " ± " + show(standardError(v)) }
        if v.count < values.count { out += " (\(v.count) of \(values.count))" }
        return out
    }

    /// A group's mean curve of `key` at the steps where every run has a value, with the
    /// standard error over the runs at each step (nil for a single run). Runs that stop at
    /// different steps (a FLOP budget: RLVR's step count depends on its completions) share no
    /// final step; when every run has a value after the last common step, their last values
    /// are one more point, at the runs' mean last step — the table's "final" value.
    static func meanCurve(_ g: [RunLog], _ records: (RunLog) -> [RunRecord], _ key: String)
        -> [(x: Double, y: Double, se: Double?)] {
        let perRun: [[Int: Double]] = g.map { r in
            Dictionary(records(r).compactMap { rec in rec[key].map { (rec.step, $0) } }, uniquingKeysWith: { $1 })
        }
        if g.count == 1 {
            // As before grouping: null values stay in as gaps (NaN).
            return records(g[0]).compactMap { r in r.numbers[key].map { (x: Double(r.step), y: $0, se: nil) } }
        }
        let steps = perRun.dropFirst().reduce(Set(perRun[0].keys)) { $0.intersection($1.keys) }.sorted()
        var curve = steps.map { s in
            let v = perRun.map { $0[s]! }
            return (x: Double(s), y: v.reduce(0, +) / Double(v.count), se: standardError(v) as Double?)
        }
        let lastSteps = perRun.compactMap { $0.keys.max() }
        if lastSteps.count == perRun.count, lastSteps.allSatisfy({ $0 > steps.last ?? Int.min }) {
            let v = zip(perRun, lastSteps).map { $0[$1]! }
            curve.append((x: Double(lastSteps.reduce(0, +)) / Double(lastSteps.count),
                          y: v.reduce(0, +) / Double(v.count), se: standardError(v)))
        }
        return curve
    }

    // MARK: plots

    /// File-name-safe form of a task name.
    static func slug(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }

    /// The file name of a plot.
    public static func plotName(task: String, quantity: Quantity) -> String {
        "\(slug(task))-\(quantity.rawValue).svg"
    }

    /// The plot of one quantity over one task's (ordered) runs; nil when no run has data for it.
    /// A group of several seeds is drawn as its mean with a band of ± one standard error.
    public static func plot(task: String, quantity q: Quantity, runs: [RunLog]) -> String? {
        var series: [SVGPlot.Series] = []
        var ks = Set<Int>()
        var benchmarks = Set<String>()
        var colorIndex = 0
        for g in groups(runs) {
            let r = g[0]
            let records: (RunLog) -> [RunRecord] = { m in q.kind == "train" ? m.train : q.kind == "eval" ? m.eval : m.downstream }
            let curve = meanCurve(g, records, q.key)
            let color: String
            if r.isBase { color = baseColor } else { color = palette[colorIndex % palette.count]; colorIndex += 1 }
            guard curve.contains(where: { $0.y.isFinite }) else { continue }
            for m in g {
                for rec in records(m) where rec.numbers[q.key] != nil {
                    if let k = rec["k"] { ks.insert(Int(k)) }
                    if let b = rec.strings["benchmark"] { benchmarks.insert(b) }
                }
            }
            var s = SVGPlot.Series(name: g.count > 1 ? "\(r.label) (\(g.count) seeds)" : r.label,
                                   points: curve.map { (x: $0.x, y: $0.y) }, color: color, smooth: q.smooth)
            if g.count > 1 {
                s.band = curve.compactMap { p in p.se.map { (x: p.x, lo: p.y - $0, hi: p.y + $0) } }
            }
            series.append(s)
        }
        guard !series.isEmpty else { return nil }
        var what = q.title
        var yLabel = q.yLabel
        if q == .passk, ks.count == 1, let k = ks.first {
            what = "downstream pass@\(k)"
            yLabel = "pass@\(k)"
        }
        if !benchmarks.isEmpty { what += " (\(benchmarks.sorted().joined(separator: ", ")))" }
        var plot = SVGPlot(title: "\(task): \(what)", xLabel: "optimizer step", yLabel: yLabel, series: series)
        if series.contains(where: { !$0.band.isEmpty }) { plot.note = "bands: ± 1 standard error over seeds" }
        return plot.render()
    }

    // MARK: the report

    /// Writes one SVG per (task, quantity) that has data and the Markdown document
    /// `tableName` into `out` (created if missing); returns the Markdown.
    @discardableResult
    public static func write(runs: [RunLog], to out: String, tableName: String = "README.md") throws -> String {
        guard !runs.isEmpty else { throw ReportError("no runs to report") }
        do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            throw ReportError("cannot create \(out): \(error.localizedDescription)")
        }
        var md = "# Training runs\n\n"
        md += "Generated by `ebft-dist report` from \(runs.count) run director\(runs.count == 1 ? "y" : "ies"). "
        md += "\"final\" is the record with the largest step; \(dash) means the run has no such value. "
        md += "Total wall time sums time_step, time_eval and time_downstream"
        if runs.contains(where: { r in r.train.contains { $0.numbers["flops_total"] != nil } }) {
            md += "; training model FLOPs is the last train record's flops_total (sampling, features and forward + "
                + "backward as `StepCost` counts them; evaluations not counted)"
        }
        md += ".\n"
        for task in tasks(runs) {
            let rs = ordered(runs.filter { $0.task == task })
            md += "\n## Task `\(task)`\n\n" + table(task: task, runs: rs) + "\n"
            md += "Runs: " + groups(rs).map { g in
                "`\(cell(g[0].label))` = " + g.map { "`\(cell($0.dir))`" }.joined(separator: " + ")
            }.joined(separator: ", ") + ".\n"
            let paired = pairedChangeTable(runs: rs)
            if !paired.isEmpty {
                md += "\nHeld-out change from the first evaluation, paired over sampling seeds "
                md += "(evaluation e samples with the same seed at every step):\n\n" + paired
            }
            for q in Quantity.allCases {
                guard let svg = plot(task: task, quantity: q, runs: rs) else { continue }
                let name = plotName(task: task, quantity: q)
                try writeFile(svg, (out as NSString).appendingPathComponent(name))
                md += "\n![\(task): \(q.title)](\(name))\n"
            }
        }
        try writeFile(md, (out as NSString).appendingPathComponent(tableName))
        return md
    }

    static func writeFile(_ text: String, _ path: String) throws {
        do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw ReportError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
