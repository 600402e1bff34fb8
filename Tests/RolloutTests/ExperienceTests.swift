import XCTest
@testable import Rollout

final class ExperienceTests: XCTestCase {
    func sample(_ id: Int64) -> Experience {
        Experience(chunkID: id, sample: 3, chunk: [1, 2, 3, 4], generated: [9, 8, 7, 6, 5, 4],
                   sampleLogProbs: [-0.5, -1, -2, -0.25, .infinity * -1, 0],
                   advantages: [0.5, -0.5, -0.0], alignment: [1, 2, 3], diversity: [0, 0, 0.25],
                   policyVersion: 17)
    }

    func testRoundTrip() throws {
        let batch = [sample(5), sample(-1), sample(1 << 40)]
        let back = try ExperienceWire.decode(ExperienceWire.encode(batch))
        XCTAssertEqual(back, batch)
        XCTAssertEqual(back[0].advantages[2].sign, .minus) // bit-exact, -0.0 kept
        XCTAssertEqual(try ExperienceWire.decode(ExperienceWire.encode([])), [])
    }

    func testTruncatedAndForeignMessagesAreErrors() throws {
        let bytes = ExperienceWire.encode([sample(5)])
        for cut in [0, 3, 8, 20, bytes.count / 2, bytes.count - 1] {
            XCTAssertThrowsError(try ExperienceWire.decode(Array(bytes[0..<cut])), "cut at \(cut)") { e in
                XCTAssertTrue(e is WireError, "\(e)")
            }
        }
        var foreign = bytes
        foreign[0] ^= 0xFF
        XCTAssertThrowsError(try ExperienceWire.decode(foreign)) { e in
            guard case WireError.badMagic = e else { return XCTFail("\(e)") }
        }
        // A length field claiming more elements than the message holds.
        var w = ByteWriter()
        w.put(UInt32(0x4542_4654)); w.put(UInt32(1)); w.put(Int64(0)); w.put(Int32(0)); w.put(Int64(0))
        w.put(UInt64.max)
        XCTAssertThrowsError(try ExperienceWire.decode(w.bytes))
    }
}
