import ArgumentParser
import Foundation
import Model

/// `ebft-dist bench model`: transformer throughput and MFU against the sgemm peak measured in
/// the same process.
struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Forward, forward+backward and KV-cached decode throughput of the SmolLM2-135M shape, with MFU.",
        discussion: """
            Uses the SmolLM2-135M shape with random weights (speed does not depend on the values). \
            MFU = model FLOPs / (time × sgemm peak), the peak being a 1024³ sgemm measured in the same \
            run; "by CPU time" divides by CPU-seconds instead of wall time, which is steadier on a \
            shared machine. Training FLOPs = 3 × forward.
            """)

    @Option(help: "Tokens per training/forward sequence.") var sequenceLength = 512
    @Option(help: "Decode batch sizes (comma-separated).") var decodeBatches = "1,16,64"
    @Option(help: "Prefix length before decoding.") var decodePrefix = 512
    @Option(help: "Repeats per measurement (best is reported).") var repeats = 3
    @Flag(help: "Also time the EBFT strided layout (P=1024, c=s=G=8).") var strided = false

    func run() throws {
        let batches = decodeBatches.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !batches.isEmpty, batches.allSatisfy({ $0 > 0 }) else { throw ValidationError("--decode-batches: positive integers") }
        print("bench model: SmolLM2-135M shape, BLAS threads \(BLAS.threads), \(BLAS.configuration)")
        fflush(nil)
        let rows = ModelBench.run(config: .smolLM2_135M, sequenceLength: sequenceLength, decodeBatches: batches,
                                  decodePrefix: decodePrefix, strided: strided ? (P: 1024, c: 8, s: 8, G: 8) : nil,
                                  repeats: repeats, log: { print($0); fflush(nil) })
        print("")
        for r in rows { print(r) }
    }
}
