import XCTest
import Foundation
import Model

/// `ModelBench` on a tiny model (always), and on SmolLM2-135M shapes when EBFT_BENCH=1
/// (use a release build: `swift test -c release -Xswiftc -enable-testing --filter TransformerBenchTests`).
final class TransformerBenchTests: XCTestCase {
    func testTinyBenchRuns() {
        let rows = ModelBench.run(config: .tiny(), sequenceLength: 16, decodeBatches: [1, 3], decodePrefix: 8,
                                  decodeSteps: 2, strided: (P: 12, c: 2, s: 2, G: 2), repeats: 1)
        XCTAssertEqual(rows.count, 8)
        for r in rows { XCTAssertGreaterThan(r.tokensPerSecond, 0, r.name); XCTAssertGreaterThan(r.flops, 0) }
    }

    func testSmolLM2Speed() throws {
        guard ProcessInfo.processInfo.environment["EBFT_BENCH"] == "1" else {
            throw XCTSkip("set EBFT_BENCH=1 to run the SmolLM2-size benchmark")
        }
        let S = Int(ProcessInfo.processInfo.environment["EBFT_BENCH_S"] ?? "") ?? 512
        let strided = ProcessInfo.processInfo.environment["EBFT_BENCH_STRIDED"] == "1"
        _ = ModelBench.run(config: .smolLM2_135M, sequenceLength: S,
                           strided: strided ? (P: 1024, c: 8, s: 8, G: 8) : nil,
                           logitChunkRows: Int(ProcessInfo.processInfo.environment["EBFT_BENCH_CHUNK"] ?? ""),
                           log: { print($0) })
    }
}
