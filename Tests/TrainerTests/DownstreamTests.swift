import XCTest
@testable import Model
@testable import Trainer

final class DownstreamTests: XCTestCase {
    /// Completions do not depend on how prompts are batched, and stop at stop tokens.
    func testBatchedSamplingMatchesOneStreamAtATime() {
        let p = ParameterStore(config: .tiny(vocabSize: 29))
        p.randomize(seed: 5, std: 0.3)
        let m = Transformer(parameters: p)
        let prompts: [[Int32]] = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], [3, 3]]
        let batched = Downstream.sample(model: m, prompts: prompts, samples: 3, maxNewTokens: 6, temperature: 1,
                                        topP: 1, seed: 9, stop: [])
        let single = Downstream.sample(model: m, prompts: prompts, samples: 3, maxNewTokens: 6, temperature: 1,
                                       topP: 1, seed: 9, stop: [], maxStreams: 1)
        XCTAssertEqual(batched, single)
        XCTAssertEqual(batched.map(\.count), [3, 3, 3, 3])
        XCTAssertTrue(batched.allSatisfy { $0.allSatisfy { $0.count == 6 } })
        XCTAssertNotEqual(batched[0][0], batched[0][1], "samples of one prompt differ")
        // With a stop token, each completion is its prefix up to (not including) that token.
        let stop = batched[0][0][2]
        let stopped = Downstream.sample(model: m, prompts: prompts, samples: 3, maxNewTokens: 6, temperature: 1,
                                        topP: 1, seed: 9, stop: [stop])
        for (a, b) in zip(batched.joined(), stopped.joined()) {
            XCTAssertEqual(b, Array(a.prefix { $0 != stop }))
        }
    }
}
