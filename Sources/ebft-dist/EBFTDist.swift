import ArgumentParser

@main
struct EBFTDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ebft-dist",
        abstract: "Energy-based fine-tuning (EBFT) of language models across MPI ranks, on CPUs.",
        subcommands: [Train.self, Eval.self, Generate.self, Score.self, Export.self, Info.self, SelfTest.self, Bench.self, Plan.self, Diagnose.self, ReportCommand.self])
}
