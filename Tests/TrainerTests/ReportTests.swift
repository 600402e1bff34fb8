import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Trainer

/// Collects the drawn elements of an SVG (and fails on malformed XML).
private final class SVGCollector: NSObject, XMLParserDelegate {
    var polylines: [(cls: String, run: String, points: Int)] = []
    var baselines: [(run: String, dashed: Bool)] = []
    var texts: [String] = []
    private var inText = false
    private var text = ""

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes a: [String: String] = [:]) {
        if name == "polyline" {
            let n = (a["points"] ?? "").split(separator: " ").count
            polylines.append((a["class"] ?? "", a["data-run"] ?? "", n))
        } else if name == "line", a["class"] == "baseline" {
            baselines.append((a["data-run"] ?? "", a["stroke-dasharray"] != nil))
        } else if name == "text" {
            inText = true
            text = ""
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { if inText { text += string } }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" { texts.append(text); inText = false }
    }

    func series(_ cls: String = "series") -> [String: Int] {
        var d: [String: Int] = [:]
        for p in polylines where p.cls == cls { d[p.run] = p.points }
        return d
    }
}

final class ReportTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID())").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    // MARK: synthetic runs

    /// One metrics line; nil values are written as null, keys sorted.
    private func rec(_ step: Int, _ kind: String, _ fields: [String: Double?] = [:], strings: [String: String] = [:]) -> String {
        var parts = ["\"step\":\(step)", "\"kind\":\"\(kind)\""]
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { parts.append("\"\(k)\":" + (v.map { "\($0)" } ?? "null")) }
        for (k, v) in strings.sorted(by: { $0.key < $1.key }) { parts.append("\"\(k)\":\"\(v)\"") }
        return "{" + parts.joined(separator: ",") + "}"
    }

    private func eval(_ step: Int, ce: Double, fm: Double?, time: Double) -> String {
        rec(step, "eval", ["eval_ce": ce, "eval_perplexity": exp(ce), "eval_feature_matching_loss": fm, "time_eval": time])
    }

    private func humaneval(_ step: Int, pass1: Double, passk: Double, time: Double) -> String {
        rec(step, "downstream", ["problems": 164, "samples": 4, "pass1": pass1, "passk": passk, "k": 4, "time_downstream": time],
            strings: ["task": "qa-code", "benchmark": "humaneval"])
    }

    private func bleu(_ step: Int, _ b: Double, time: Double) -> String {
        rec(step, "downstream", ["pairs": 200, "bleu": b, "time_downstream": time],
            strings: ["task": "translation", "benchmark": "de-en"])
    }

    private func train(_ steps: ClosedRange<Int>, method: String, time: (Int) -> Double, reward: Bool,
                       nullCE: Int? = nil) -> [String] {
        steps.map { s in
            var f: [String: Double?] = ["ce": s == nullCE ? nil : 1.3 - 0.01 * Double(s), "loss": 1.0,
                                        "grad_norm": 0.5, "time_step": time(s), "generated_tokens": 64]
            if reward { f["reward"] = 0.1 * Double(s) }
            return rec(s, "train", f, strings: ["method": method])
        }
    }

    @discardableResult
    private func makeRun(_ name: String, task: String, method: String, steps: Int, lines: [String],
                         seed: Int? = nil, learningRate: String = "1.0e-06") throws -> String {
        let dir = root + "/runs/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var config = "model: null\ntask: \(task)\nmethod: \(method)\nsteps: \(steps)\nlearning-rate: \(learningRate)\n"
        if let seed { config += "seed: \(seed)\nrun-dir: \(dir)\n" }
        try config.write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        return dir
    }

    /// Two tasks: qa-code (base, sft, rlvr, ebft) and translation (base, sft, two ebft runs).
    private func makeRuns() throws -> [String] {
        var dirs: [String] = []
        // qa-code. Listed out of order on purpose: the report orders base, sft, rlvr, ebft.
        dirs.append(try makeRun("qa-ebft", task: "qa-code", method: "ebft", steps: 12, lines:
            [eval(0, ce: 1.25, fm: 0.5, time: 5), humaneval(0, pass1: 0.04, passk: 0.09, time: 50)]
            + train(1...12, method: "ebft", time: { _ in 3 }, reward: true)
            + [eval(12, ce: 1.23456, fm: 0.333333, time: 5), humaneval(12, pass1: 0.07, passk: 0.15, time: 50)]))
        dirs.append(try makeRun("qa-base", task: "qa-code", method: "ebft", steps: 0, lines:
            [eval(0, ce: 1.25, fm: 0.5, time: 10), humaneval(0, pass1: 0.04, passk: 0.09, time: 300)]))
        dirs.append(try makeRun("qa-rlvr", task: "qa-code", method: "rlvr", steps: 6, lines:
            [eval(0, ce: 1.25, fm: 0.5, time: 2)]
            + train(1...6, method: "rlvr", time: { _ in 1 }, reward: true)
            + [eval(6, ce: 1.3, fm: nil, time: 2)]))
        dirs.append(try makeRun("qa-sft", task: "qa-code", method: "sft", steps: 12, lines:
            [eval(0, ce: 1.25, fm: 0.5, time: 10)]
            + train(1...6, method: "sft", time: { Double($0) }, reward: false, nullCE: 5)
            + [eval(6, ce: 1.2, fm: 0.45, time: 10)]
            + train(7...12, method: "sft", time: { Double($0) }, reward: false)
            + [eval(12, ce: 1.125, fm: 0.41, time: 10.5), humaneval(12, pass1: 0.0625, passk: 0.125, time: 100)]))
        // translation
        dirs.append(try makeRun("tr-base", task: "translation", method: "ebft", steps: 0, lines:
            [eval(0, ce: 2.0, fm: 0.7, time: 4), bleu(0, 1.234, time: 90)]))
        dirs.append(try makeRun("tr-ebft-b", task: "translation", method: "ebft", steps: 3, lines:
            [eval(0, ce: 2.0, fm: 0.7, time: 4)] + train(1...3, method: "ebft", time: { _ in 20 }, reward: true)
            + [eval(3, ce: 1.95, fm: 0.65, time: 4), bleu(3, 2.5, time: 60)]))
        dirs.append(try makeRun("tr-ebft-a", task: "translation", method: "ebft", steps: 4, lines:
            [eval(0, ce: 2.0, fm: 0.7, time: 4)] + train(1...4, method: "ebft", time: { _ in 10 }, reward: true)
            + [eval(4, ce: 1.9, fm: 0.6, time: 4), bleu(4, 3.456, time: 90)]))
        dirs.append(try makeRun("tr-sft", task: "translation", method: "sft", steps: 2, lines:
            [eval(0, ce: 2.0, fm: 0.7, time: 4)] + train(1...2, method: "sft", time: { _ in 7 }, reward: false)
            + [eval(2, ce: 1.98, fm: 0.69, time: 4)]))
        return dirs
    }

    private func loadRuns(_ dirs: [String], overrides: [String: String] = [:]) throws -> [RunLog] {
        var runs = try dirs.map { try RunLog.load(dir: $0) }
        Report.assignLabels(&runs, overrides: overrides)
        return runs
    }

    private func svg(_ out: String, _ name: String) throws -> SVGCollector {
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))
        let parser = XMLParser(data: data)
        let c = SVGCollector()
        parser.delegate = c
        XCTAssertTrue(parser.parse(), "\(name) is not well-formed XML: \(String(describing: parser.parserError))")
        return c
    }

    /// The table rows (lines starting with "| ") of one task's section.
    private func tableRows(_ md: String, task: String) -> [String] {
        let sections = ("\n" + md).components(separatedBy: "\n## Task ")
        guard let s = sections.first(where: { $0.hasPrefix("`\(task)`") }) else { return [] }
        return s.split(separator: "\n").map(String.init).filter { $0.hasPrefix("| ") }
    }

    // MARK: tests

    func testLoadParsesKindsLabelsAndNulls() throws {
        let dirs = try makeRuns()
        let runs = try loadRuns(dirs)
        let sft = try XCTUnwrap(runs.first { $0.dirName == "qa-sft" })
        XCTAssertEqual(sft.task, "qa-code")
        XCTAssertEqual(sft.method, "sft")
        XCTAssertEqual(sft.train.map(\.step), Array(1...12))
        XCTAssertEqual(sft.eval.map(\.step), [0, 6, 12])
        XCTAssertEqual(sft.downstream.map(\.step), [12])
        XCTAssertNil(sft.train[4]["ce"], "null is not a value")
        XCTAssertTrue(sft.train[4].numbers["ce"]!.isNaN)
        XCTAssertNil(sft.train[0]["reward"])
        XCTAssertEqual(sft.downstream[0].strings["benchmark"], "humaneval")

        XCTAssertEqual(runs.map(\.label), ["ebft", "base", "rlvr", "sft", "base", "ebft (tr-ebft-b)", "ebft (tr-ebft-a)", "sft"])
        XCTAssertTrue(runs[1].isBase)
        XCTAssertFalse(runs[0].isBase)
    }

    func testLabelOverrides() throws {
        let dirs = try makeRuns()
        let o = try Report.labelOverrides([dirs[0] + "=EBFT lr=1e-6", dirs[5] + "/=ebft"], dirs: dirs)
        XCTAssertEqual(o, [dirs[0]: "EBFT lr=1e-6", dirs[5]: "ebft"])
        let runs = try loadRuns(dirs, overrides: o)
        XCTAssertEqual(runs[0].label, "EBFT lr=1e-6")
        // Overriding one translation run to "ebft" still clashes with the other: both get the suffix.
        XCTAssertEqual(runs[5].label, "ebft (tr-ebft-b)")
        XCTAssertEqual(runs[6].label, "ebft (tr-ebft-a)")
        // Markup in a label is escaped in the SVG and the Markdown table.
        let odd = try loadRuns(dirs, overrides: [dirs[3]: "sft <a|b> & co"])
        let md = try Report.write(runs: odd, to: root + "/odd")
        XCTAssertEqual(try svg(root + "/odd", "qa-code-val-ce.svg").series()["sft <a|b> & co"], 3)
        XCTAssertTrue(md.contains("| sft <a\\|b> & co | sft |"), md)
        XCTAssertThrowsError(try Report.labelOverrides([root + "/elsewhere=x"], dirs: dirs))
        XCTAssertThrowsError(try Report.labelOverrides(["noequals"], dirs: dirs))
    }

    func testFilesPlotsAndTables() throws {
        let runs = try loadRuns(try makeRuns())
        let out = root + "/out/nested"
        let md = try Report.write(runs: runs, to: out)

        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        XCTAssertEqual(files, ["README.md",
                               "qa-code-pass1.svg", "qa-code-passk.svg", "qa-code-reward.svg", "qa-code-train-ce.svg", "qa-code-val-ce.svg",
                               "translation-bleu.svg", "translation-reward.svg", "translation-train-ce.svg", "translation-val-ce.svg"])
        XCTAssertEqual(try String(contentsOfFile: out + "/README.md", encoding: .utf8), md)

        // Reward: only the methods that have one; sft and base have none. 12 points > 10: smoothed.
        var s = try svg(out, "qa-code-reward.svg")
        XCTAssertEqual(s.series(), ["rlvr": 6, "ebft": 12])
        XCTAssertEqual(s.series("smoothed"), ["ebft": 12])
        XCTAssertTrue(s.baselines.isEmpty)
        XCTAssertTrue(s.texts.contains("training reward (each method's own)"))

        // Train CE: sft's null at step 5 is skipped.
        s = try svg(out, "qa-code-train-ce.svg")
        XCTAssertEqual(s.series(), ["sft": 11, "rlvr": 6, "ebft": 12])
        XCTAssertEqual(s.series("smoothed"), ["sft": 11, "ebft": 12])

        // Validation CE: the base run (step 0 only) is a dashed line.
        s = try svg(out, "qa-code-val-ce.svg")
        XCTAssertEqual(s.series(), ["sft": 3, "rlvr": 2, "ebft": 2])
        XCTAssertEqual(s.baselines.map(\.run), ["base"])
        XCTAssertEqual(s.baselines.map(\.dashed), [true])
        XCTAssertTrue(s.texts.contains("base"))
        XCTAssertTrue(s.texts.contains("validation CE (nats/token)"))

        s = try svg(out, "qa-code-pass1.svg")
        XCTAssertEqual(s.series(), ["sft": 1, "ebft": 2])
        XCTAssertEqual(s.baselines.map(\.run), ["base"])
        s = try svg(out, "qa-code-passk.svg")
        XCTAssertTrue(s.texts.contains("pass@4"))

        s = try svg(out, "translation-bleu.svg")
        XCTAssertEqual(s.series(), ["ebft (tr-ebft-a)": 1, "ebft (tr-ebft-b)": 1])
        XCTAssertEqual(s.baselines.map(\.run), ["base"])
        s = try svg(out, "translation-val-ce.svg")
        XCTAssertEqual(s.series(), ["sft": 2, "ebft (tr-ebft-a)": 2, "ebft (tr-ebft-b)": 2])
        for f in files where f.hasSuffix(".svg") { _ = try svg(out, f) }

        XCTAssertEqual(tableRows(md, task: "qa-code"), [
            "| run | method | optimizer steps | final val CE | final feature-matching loss | pass@1 | pass@4 | mean step time (s) | total wall time (s) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            "| base | — (base model) | 0 | 1.2500 | 0.5000 | 0.0400 | 0.0900 | — | 310.0 |",
            "| sft | sft | 12 | 1.1250 | 0.4100 | 0.0625 | 0.1250 | 6.5 | 208.5 |",
            "| rlvr | rlvr | 6 | 1.3000 | — | — | — | 1.0 | 10.0 |",
            "| ebft | ebft | 12 | 1.2346 | 0.3333 | 0.0700 | 0.1500 | 3.0 | 146.0 |",
        ])
        XCTAssertEqual(tableRows(md, task: "translation"), [
            "| run | method | optimizer steps | final val CE | final feature-matching loss | BLEU | mean step time (s) | total wall time (s) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            "| base | — (base model) | 0 | 2.0000 | 0.7000 | 1.23 | — | 94.0 |",
            "| sft | sft | 2 | 1.9800 | 0.6900 | — | 7.0 | 22.0 |",
            "| ebft (tr-ebft-a) | ebft | 4 | 1.9000 | 0.6000 | 3.46 | 10.0 | 138.0 |",
            "| ebft (tr-ebft-b) | ebft | 3 | 1.9500 | 0.6500 | 2.50 | 20.0 | 128.0 |",
        ])
        // Tasks in order, plots embedded below their table, the printed tables are the same.
        let qa = try XCTUnwrap(md.range(of: "## Task `qa-code`")), tr = try XCTUnwrap(md.range(of: "## Task `translation`"))
        XCTAssertLessThan(qa.lowerBound, tr.lowerBound)
        let embed = try XCTUnwrap(md.range(of: "](qa-code-val-ce.svg)"))
        XCTAssertTrue(qa.upperBound < embed.lowerBound && embed.lowerBound < tr.lowerBound)
        XCTAssertTrue(md.contains("](translation-bleu.svg)"))
        XCTAssertFalse(md.contains("translation-pass1"))
        let printed = Report.tables(runs: runs)
        XCTAssertEqual(tableRows(printed, task: "qa-code"), tableRows(md, task: "qa-code"))
    }

    func testDeterministicOutput() throws {
        let dirs = try makeRuns()
        try Report.write(runs: try loadRuns(dirs), to: root + "/a", tableName: "runs.md")
        try Report.write(runs: try loadRuns(dirs), to: root + "/b", tableName: "runs.md")
        let fm = FileManager.default
        let a = try fm.contentsOfDirectory(atPath: root + "/a").sorted()
        XCTAssertEqual(a, try fm.contentsOfDirectory(atPath: root + "/b").sorted())
        XCTAssertTrue(a.contains("runs.md"))
        XCTAssertFalse(a.contains("README.md"))
        for f in a {
            XCTAssertEqual(fm.contents(atPath: root + "/a/" + f), fm.contents(atPath: root + "/b/" + f), f)
        }
    }

    func testMalformedMetricsLineIsNamed() throws {
        let dir = try makeRun("bad", task: "code", method: "ebft", steps: 2,
                              lines: [eval(0, ce: 1, fm: 1, time: 1), "", "{\"step\":1,\"kind\":\"train\",", "{}"])
        XCTAssertThrowsError(try RunLog.load(dir: dir)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains(dir + "/metrics.jsonl"), m)
            XCTAssertTrue(m.contains("line 3"), m)
        }
        let dir2 = try makeRun("nokind", task: "code", method: "ebft", steps: 2, lines: [eval(0, ce: 1, fm: 1, time: 1), "{\"step\":1}"])
        XCTAssertThrowsError(try RunLog.load(dir: dir2)) { e in XCTAssertTrue("\(e)".contains("line 2"), "\(e)") }
        let dir3 = try makeRun("nostep", task: "code", method: "ebft", steps: 2, lines: ["{\"kind\":\"eval\",\"eval_ce\":1}"])
        XCTAssertThrowsError(try RunLog.load(dir: dir3)) { e in XCTAssertTrue("\(e)".contains("line 1"), "\(e)") }
    }

    func testMissingConfigNamesDirectory() throws {
        let dir = root + "/runs/noconfig"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "".write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try RunLog.load(dir: dir)) { e in
            XCTAssertTrue("\(e)".contains(dir), "\(e)")
            XCTAssertTrue("\(e)".contains("config.yaml"), "\(e)")
        }
        XCTAssertThrowsError(try RunLog.load(dir: root + "/runs/absent"))
        XCTAssertThrowsError(try Report.write(runs: [], to: root + "/empty"))
    }

    /// The change from the first evaluation is paired seed by seed: a shift common to every
    /// seed has no paired error, while the unpaired error sees the seeds' spread.
    func testPairedChangesOverSamplingSeeds() throws {
        func rec(_ step: Int, _ seeds: [Double], key: String = "eval_objective_raw") -> RunRecord {
            var n: [String: Double] = [key: seeds.reduce(0, +) / Double(seeds.count)]
            for (e, v) in seeds.enumerated() { n[Report.seedKey(key, e)] = v }
            return RunRecord(step: step, line: step + 1, numbers: n)
        }
        let base = [0.80, 0.90, 0.85, 0.75]
        let eval = [RunRecord(step: 0, line: 1, numbers: ["eval_ce": 3]),  // no per-seed values
                    rec(0, base),
                    rec(10, base.map { $0 + 0.01 }),
                    rec(20, zip(base, [0.02, 0.04, 0.0, 0.02]).map { $0 + $1 })]
        let c = Report.pairedChanges(eval, key: "eval_objective_raw")
        XCTAssertEqual(c.map(\.step), [10, 20])
        XCTAssertEqual(c[0].change, 0.01, accuracy: 1e-12)
        XCTAssertEqual(c[0].se, 0, accuracy: 1e-12)
        // Unpaired: both evaluations have the seeds' spread, sd(base)/2 = 0.0645/2 each.
        let sd = (base.map { ($0 - 0.825) * ($0 - 0.825) }.reduce(0, +) / 3).squareRoot()
        XCTAssertEqual(c[0].unpairedSE, (2 * (sd / 2) * (sd / 2)).squareRoot(), accuracy: 1e-12)
        // Differences 0.02, 0.04, 0, 0.02: mean 0.02, sd √(0.0008/3), se = sd/2.
        XCTAssertEqual(c[1].change, 0.02, accuracy: 1e-12)
        XCTAssertEqual(c[1].se, (0.0008 / 3).squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(c[1].seeds, 4)
        XCTAssertTrue(Report.pairedChanges(eval, key: "eval_feature_matching_raw_pass1").isEmpty)

        let run = RunLog(dir: "/tmp/x", task: "code", method: "ebft", train: [RunRecord(step: 1, line: 1)], eval: eval)
        let table = Report.pairedChangeTable(runs: [run])
        XCTAssertTrue(table.contains("| 20 | 0.8450 | +0.0200 ± 0.0082 | 2.4 |"), table)
        XCTAssertTrue(Report.tables(runs: [run]).contains("change from first eval ± paired SE"))
    }

    /// Runs that count their FLOPs (`flops_total`) and score chrF get those columns: the last
    /// train record's count, mean ± SE over seeds, 0 for a base row; chrF beside BLEU.
    func testFLOPAndChrFColumns() throws {
        var dirs: [String] = []
        for (i, seed) in [1, 2].enumerated() {
            let train = (1...2).map { s in
                rec(s, "train", ["ce": 1.3, "loss": 1, "grad_norm": 0.5, "time_step": 10, "flops": 1e12 + 2e11 * Double(i),
                                 "flops_total": Double(s) * (1e12 + 2e11 * Double(i))], strings: ["method": "sft"])
            }
            dirs.append(try makeRun("sft-s\(seed)", task: "translation", method: "sft", steps: 2, lines:
                [eval(0, ce: 2.0, fm: 0.7, time: 4)] + train + [eval(2, ce: 1.9, fm: 0.6, time: 4),
                rec(2, "downstream", ["pairs": 200, "bleu": 4.0 + Double(i), "chrf": 30.0 + 2 * Double(i), "time_downstream": 6],
                    strings: ["task": "translation", "benchmark": "de-en"])], seed: seed))
        }
        dirs.append(try makeRun("base", task: "translation", method: "ebft", steps: 0, lines:
            [eval(0, ce: 2.0, fm: 0.7, time: 4), rec(0, "downstream", ["pairs": 200, "bleu": 3, "chrf": 28, "time_downstream": 6],
                                                     strings: ["task": "translation", "benchmark": "de-en"])]))
        let md = try Report.write(runs: try loadRuns(dirs), to: root + "/flops")
        let rows = tableRows(md, task: "translation")
        XCTAssertTrue(rows[0].contains("| BLEU | chrF | training model FLOPs |"), rows[0])
        // Totals 2.0e12 and 2.4e12: mean 2.2e12, SE 0.2e12; chrF 30, 32: 31 ± 1.
        XCTAssertTrue(rows.contains { $0.contains("| 4.50 ± 0.50 | 31.00 ± 1.00 | 2.200e+12 ± 2.000e+11 |") },
                      rows.joined(separator: "\n"))
        XCTAssertTrue(rows.contains { $0.contains("| 3.00 | 28.00 | 0.000e+00 |") }, rows.joined(separator: "\n"))
        XCTAssertTrue(md.contains("training model FLOPs is the last train record's flops_total"))
    }

    /// With the held-out feature matching on raw features (`eval_feature_matching_raw_pass1`),
    /// its final value and each run's change since its first evaluation, mean ± SE over seeds.
    func testRawFeatureMatchingColumns() throws {
        var dirs: [String] = []
        for (seed, start, end) in [(1, 0.50, 0.53), (2, 0.52, 0.53), (3, 0.51, 0.50)] {
            let evals = [(0, start), (2, end)].map { step, v in
                rec(step, "eval", ["eval_ce": 2.0, "eval_feature_matching_loss": -0.6, "eval_feature_matching_raw_pass1": v,
                                   "time_eval": 4])
            }
            dirs.append(try makeRun("ebft-s\(seed)", task: "code", method: "ebft", steps: 2, lines:
                [evals[0]] + train(1...2, method: "ebft", time: { _ in 10 }, reward: true) + [evals[1]], seed: seed))
        }
        let rows = tableRows(try Report.write(runs: try loadRuns(dirs), to: root + "/raw"), task: "code")
        XCTAssertTrue(rows[0].contains("| final feature-matching loss | final raw ‖φ_gt‖² − L_CFM | its change since the first eval |"),
                      rows[0])
        // Finals 0.53, 0.53, 0.50: 0.52 ± 0.01. Changes +0.03, +0.01, −0.01: +0.01 ± 0.0115 (sd 0.02 / √3).
        XCTAssertTrue(rows.contains { $0.contains("| -0.6000 ± 0.0000 | 0.5200 ± 0.0100 | +0.0100 ± 0.0115 |") },
                      rows.joined(separator: "\n"))
        // Its plot: the 3 seeds' mean at steps 0 and 2 with a band (at step 2: 0.52 ± 0.01).
        let c = try svg(root + "/raw", "code-held-out-fm.svg")
        XCTAssertEqual(c.series(), ["ebft (3 seeds)": 2])
        XCTAssertTrue(c.texts.contains("bands: ± 1 standard error over seeds"))
        let curve = Report.meanCurve(Report.groups(try loadRuns(dirs))[0], { $0.eval }, "eval_feature_matching_raw_pass1")
        XCTAssertEqual(curve[1].y, 0.52, accuracy: 1e-12)
        XCTAssertEqual(curve[1].se!, 0.01, accuracy: 1e-12)
    }

    /// Several seeds of one configuration are one row (mean ± SE, a seeds column) and one
    /// line with a band; another learning rate stays a separate, single-seed row.
    func testSeedsOfOneConfigurationAreOneRowWithErrorBands() throws {
        var dirs: [String] = []
        let ces = [1.20, 1.26, 1.23], bleus = [3.0, 5.0, 4.0]
        for (i, seed) in [1, 2, 3].enumerated() {
            dirs.append(try makeRun("ebft-s\(seed)", task: "translation", method: "ebft", steps: 2, lines:
                [eval(0, ce: 2.0, fm: 0.7, time: 4)] + train(1...2, method: "ebft", time: { _ in 10 }, reward: true)
                + [eval(2, ce: ces[i], fm: 0.6 + 0.01 * Double(i), time: 4), bleu(2, bleus[i], time: 60)], seed: seed))
        }
        dirs.append(try makeRun("ebft-lr", task: "translation", method: "ebft", steps: 2, lines:
            [eval(0, ce: 2.0, fm: 0.7, time: 4)] + train(1...2, method: "ebft", time: { _ in 10 }, reward: true)
            + [eval(2, ce: 1.5, fm: 0.5, time: 4)], seed: 1, learningRate: "1.0e-05"))
        let runs = try loadRuns(dirs)
        XCTAssertEqual(runs.map(\.label), ["ebft (ebft-s1)", "ebft (ebft-s1)", "ebft (ebft-s1)", "ebft (ebft-lr)"])
        XCTAssertEqual(Report.groups(runs).map(\.count), [3, 1])

        let out = root + "/seeds"
        let md = try Report.write(runs: runs, to: out)
        let rows = tableRows(md, task: "translation")
        XCTAssertTrue(rows[0].contains("| seeds |"), rows[0])
        // CE 1.20, 1.26, 1.23: mean 1.23, sd 0.03, SE 0.03/√3 = 0.0173; BLEU 4 ± 0.58.
        XCTAssertTrue(rows.contains { $0.hasPrefix("| ebft (ebft-s1) | ebft | 3 | 2 | 1.2300 ± 0.0173 | 0.6100 ± 0.0058 |")
            && $0.contains("| 4.00 ± 0.58 |") }, rows.joined(separator: "\n"))
        XCTAssertTrue(rows.contains { $0.hasPrefix("| ebft (ebft-lr) | ebft | 1 | 2 | 1.5000 | 0.5000 |") }, rows.joined(separator: "\n"))

        // The validation-CE plot: the group's mean at steps 0 and 2 with a band; the other run
        // as a plain line.
        let data = try String(contentsOfFile: out + "/translation-val-ce.svg", encoding: .utf8)
        let c = try svg(out, "translation-val-ce.svg")
        XCTAssertEqual(c.series(), ["ebft (ebft-s1) (3 seeds)": 2, "ebft (ebft-lr)": 2])
        XCTAssertEqual(data.components(separatedBy: "<polygon class=\"band\"").count - 1, 1)
        XCTAssertTrue(c.texts.contains("bands: ± 1 standard error over seeds"))
        // A band spans the mean ± SE: at step 2 the CE band is 1.23 ± 0.0173 (y grows down).
        let plot = try XCTUnwrap(Report.plot(task: "translation", quantity: .valCE, runs: Report.ordered(runs)))
        XCTAssertEqual(plot, data)
        let curve = Report.meanCurve(Report.groups(runs)[0], { $0.eval }, "eval_ce")
        XCTAssertEqual(curve.map(\.x), [0, 2])
        XCTAssertEqual(curve[1].y, 1.23, accuracy: 1e-12)
        XCTAssertEqual(curve[1].se!, 0.03 / 3.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(curve[0].se!, 0, accuracy: 1e-12)

        // Labels given by --label group runs whatever their settings.
        let o = [dirs[0]: "EBFT", dirs[3]: "EBFT"]
        let given = try loadRuns(dirs, overrides: o)
        XCTAssertEqual(given.map(\.label), ["EBFT", "ebft", "ebft", "EBFT"])
        XCTAssertEqual(Report.groups(given).map(\.count), [2, 2])
    }

    /// Seeds stopped by a FLOP budget end at different steps (RLVR: 26, 25, 26). Their final
    /// evaluations share no step, yet the group is still a curve with a band ending in their
    /// final values (at the mean last step), not a dashed line at its step-0 value, and the
    /// table gives the range of steps.
    func testSeedsEndingAtDifferentStepsKeepTheirFinalPoint() throws {
        var dirs: [String] = []
        let finals = [(26, 1.31), (25, 1.27), (26, 1.35)]
        for (i, (last, ce)) in finals.enumerated() {
            dirs.append(try makeRun("rlvr-s\(i + 1)", task: "code", method: "rlvr", steps: 1000, lines:
                [eval(0, ce: 1.25, fm: 0.5, time: 2)] + train(1...last, method: "rlvr", time: { _ in 1 }, reward: true)
                + [eval(last, ce: ce, fm: 0.5, time: 2)], seed: i + 1))
        }
        let runs = try loadRuns(dirs)
        XCTAssertEqual(Report.groups(runs).map(\.count), [3])
        let g = Report.groups(runs)[0]
        // Validation CE: step 0 (1.25 ± 0), then the finals 1.31, 1.27, 1.35 — mean 1.31,
        // sd 0.04, SE 0.04/√3 — at the mean last step 77/3.
        let ce = Report.meanCurve(g, { $0.eval }, "eval_ce")
        guard ce.count == 2 else { return XCTFail("\(ce)") }
        XCTAssertEqual(ce[1].x, 77.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(ce[1].y, 1.31, accuracy: 1e-12)
        XCTAssertEqual(ce[1].se!, 0.04 / 3.0.squareRoot(), accuracy: 1e-12)
        // Training curves keep the common steps 1…25: seed 2 has nothing after step 25, so no
        // extra point (the other seeds' step 26 is left out).
        XCTAssertEqual(Report.meanCurve(g, { $0.train }, "reward").map(\.x), (1...25).map(Double.init))

        let out = root + "/budget"
        let md = try Report.write(runs: runs, to: out)
        let c = try svg(out, "code-val-ce.svg")
        XCTAssertEqual(c.series(), ["rlvr (3 seeds)": 2])
        XCTAssertTrue(c.baselines.isEmpty, "\(c.baselines)")
        let rows = tableRows(md, task: "code")
        XCTAssertTrue(rows.contains { $0.hasPrefix("| rlvr | rlvr | 3 | 25–26 | 1.3100 ± 0.0231 |") },
                      rows.joined(separator: "\n"))
    }

    func testNiceTicks() {
        XCTAssertEqual(SVGPlot.niceStep(0.23), 0.25)
        XCTAssertEqual(SVGPlot.niceStep(3), 5)
        XCTAssertEqual(SVGPlot.niceStep(120), 200)
        let s = SVGPlot.niceScale(lo: 0.13, hi: 0.87, count: 5)
        XCTAssertEqual(s.step, 0.2, accuracy: 1e-12)
        XCTAssertEqual(s.lo, 0, accuracy: 1e-12)
        XCTAssertEqual(s.hi, 1.0, accuracy: 1e-12)
        XCTAssertEqual(SVGPlot.ticks(lo: -0.5, hi: 0.5, step: 0.25).map { SVGPlot.label($0, decimals: SVGPlot.decimals(for: 0.25)) },
                       ["-0.50", "-0.25", "0.00", "0.25", "0.50"])
        XCTAssertEqual(SVGPlot.escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;")
        XCTAssertEqual(SVGPlot.movingAverage([1, 2, 3, 4, 5, 6], window: 5), [2, 2.5, 3, 4, 4.5, 5])
    }
}
