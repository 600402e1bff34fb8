import ArgumentParser
import Foundation
import Model

/// `ebft-dist bench model`: transformer throughput and MFU against the sgemm peak measured in
/// the same process.
struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Forward, forward+backward and KV-cached decode throughput of a model shape, with MFU.",
        discussion: """
            Uses the SmolLM2-135M shape with random weights (speed does not depend on the values), or each \
            --model given: a GGUF file, a Hugging Face directory, or a random model spec such as \
            random:shape=qwen2.5-0.5b (the Qwen2.5-0.5B shape) or random:shape=smollm2-135m; several --model \
            options are measured one after the other in the same run, with a summary at the end. \
            MFU = model FLOPs / (time × sgemm peak), the peak being a 1024³ sgemm measured in the same \
            run; "by CPU time" divides by CPU-seconds instead of wall time, which is steadier on a \
            shared machine. Training FLOPs = 3 × forward.
            """)

    @Option(help: "Tokens per training/forward sequence.") var sequenceLength = 512
    @Option(help: "Decode batch sizes (comma-separated).") var decodeBatches = "1,16,64"
    @Option(help: "Prefix length before decoding.") var decodePrefix = 512
    @Option(help: "Repeats per measurement (best is reported).") var repeats = 3
    @Flag(help: "Also time the EBFT strided layout (P=1024, c=s=G=8).") var strided = false
    @Option(name: .customLong("model"),
            help: "GGUF file, Hugging Face directory or random:… spec (repeatable); default: random SmolLM2-135M shape.")
    var models: [String] = []

    func run() throws {
        let batches = decodeBatches.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !batches.isEmpty, batches.allSatisfy({ $0 > 0 }) else { throw ValidationError("--decode-batches: positive integers") }
        var summary: [(String, [ModelBench.Row])] = []
        for spec in models.isEmpty ? ["random:shape=smollm2-135m"] : models {
            let params: ParameterStore
            do {
                if RandomModelSpec.matches(spec) {
                    params = try RandomModelSpec.make(spec, vocab: ModelConfig.smolLM2_135M.vocabSize)
                } else {
                    params = try ModelSource.load(try resolveModelPath(spec), log: { emitError("warning: " + $0) })
                }
            } catch {
                throw ValidationError("--model \(spec): \(error)")
            }
            let c = params.config
            print("bench model: \(spec): \(c.architecture.rawValue), d=\(c.dim), \(c.layers) layers, heads \(c.heads)/\(c.kvHeads), "
                  + "ffn \(c.ffnDim), vocab \(c.vocabSize), \(c.parameterCount) parameters; BLAS threads \(BLAS.threads), "
                  + "\(BLAS.configuration)")
            fflush(nil)
            let rows = ModelBench.run(sequenceLength: sequenceLength, decodeBatches: batches,
                                      decodePrefix: decodePrefix, strided: strided ? (P: 1024, c: 8, s: 8, G: 8) : nil,
                                      repeats: repeats, parameters: params, log: { print($0); fflush(nil) })
            print("")
            for r in rows { print(r) }
            print("")
            summary.append((spec, rows))
        }
        if summary.count > 1 {
            print("summary (forward+backward S=\(sequenceLength)):")
            for (spec, rows) in summary {
                if let r = rows.first(where: { $0.name == "forward+backward S=\(sequenceLength)" }) {
                    print("  \(spec): MFU \(String(format: "%.1f", 100 * r.mfu))% (by CPU time "
                          + "\(String(format: "%.1f", 100 * r.cpuMFU))%), \(String(format: "%.1f", r.tokensPerSecond)) tok/s")
                }
            }
        }
    }
}
