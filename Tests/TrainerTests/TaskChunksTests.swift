import XCTest
@testable import Model
@testable import Rollout
@testable import Trainer

/// The three tasks pack into full chunks of P tokens, documents joined by EOS (spec §3).
final class TaskChunksTests: XCTestCase {
    func testEveryTaskPacksFullChunks() throws {
        let tok = try BPETokenizer(gguf: GGUFFile(path: try ModelLocator.defaultGGUF()))
        for task in ["code", "qa-code", "translation"] {
            var c = try TrainConfig.preset("small")
            c.task = task
            c.chunkLength = 64
            let (train, validation, _) = try RunContext.chunks(config: c, tokenizer: tok)
            XCTAssertGreaterThan(train.count, 100, task)
            XCTAssertGreaterThan(validation.count, 5, task)
            for ch in train.prefix(50) + validation.prefix(10) {
                XCTAssertEqual(ch.tokens.count, 64, task)
                XCTAssertEqual(ch.docIds.count, 64, task)
                XCTAssertEqual(ch.docIds, ch.docIds.sorted(), "\(task): document ids run in stream order")
            }
            XCTAssertTrue(train.prefix(50).contains { $0.tokens.contains(tok.eos) }, "\(task): documents are joined by EOS")
            XCTAssertFalse(train.contains { $0.tokens.contains(tok.bos ?? -1) }, "\(task): no BOS")
        }
    }
}
