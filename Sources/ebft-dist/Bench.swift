import ArgumentParser

/// `ebft-dist bench …`: performance tables (not tests). Add new benchmarks as subcommands here.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: communication, BLAS, model and sampler throughput, the optimizer against memcpy, one EBFT step by phase, memory per rank.",
        subcommands: [BenchComm.self, BenchBLAS.self, BenchModel.self, BenchSampler.self, BenchOptimizer.self,
                      BenchStep.self, BenchMemory.self])
}
