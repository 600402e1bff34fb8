import ArgumentParser
import Foundation
import Trainer

/// `ebft-dist report`: SVG plots and a Markdown comparison table of training runs.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Plots (SVG) and a Markdown table comparing training runs per task.",
        discussion: """
        Each RUN_DIR is a training run directory (config.yaml and metrics.jsonl). A run without \
        optimizer steps (train --steps 0) is the base model, labelled "base" and drawn as a dashed \
        line; other runs are labelled by method, with " (dirname)" added where two runs of a task \
        would share a label. Runs of a task whose config.yaml differs only in `seed` (or that \
        --label names alike) are seeds of one configuration: one table row of means ± standard \
        errors and one line with a ± 1 SE band. With eval-seeds > 1, a table gives each held-out \
        change from the first evaluation paired over the sampling seeds. Writes TASK-QUANTITY.svg for each quantity some run has data for \
        (reward, train-ce, val-ce, pass1, passk, bleu) and a Markdown document into --out, and \
        prints the tables.
        """)

    @Argument(help: ArgumentHelp("Training run directories.", valueName: "run-dir")) var runs: [String] = []
    @Option(help: "Output directory (created if missing).") var out: String
    @Option(help: ArgumentHelp("Label a run: DIR=NAME (repeatable).", valueName: "dir=name")) var label: [String] = []
    @Option(help: "File name of the Markdown document inside --out.") var tableName = "README.md"

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("give at least one run directory") }
        guard !out.isEmpty else { throw ValidationError("--out: an output directory") }
        guard !tableName.isEmpty, !tableName.contains("/") else { throw ValidationError("--table-name: a file name without '/'") }
        do { _ = try Report.labelOverrides(label, dirs: runs) } catch let e as ReportError {
            throw ValidationError(e.message)
        }
        let dups = Dictionary(grouping: runs, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        guard dups.isEmpty else { throw ValidationError("run directory given twice: \(dups.joined(separator: ", "))") }
    }

    func run() throws {
        var logs = try runs.map { try RunLog.load(dir: $0) }
        Report.assignLabels(&logs, overrides: try Report.labelOverrides(label, dirs: runs))
        try Report.write(runs: logs, to: out, tableName: tableName)
        print(Report.tables(runs: logs))
        print("wrote \((out as NSString).appendingPathComponent(tableName)) and the plots in \(out)")
    }
}
