import Foundation
import XCTest
@testable import Model

/// Tokenizer construction errors and merge semantics on a tiny synthetic byte-level vocabulary
/// (no model file needed).
final class TokenizerErrorTests: XCTestCase {
    /// The 256 byte tokens, then extra tokens.
    static func byteVocab(_ extra: [String] = []) -> [String] {
        (0..<256).map { String(Unicode.Scalar(ByteLevel.byteToScalar[$0])!) } + extra
    }

    static func make(_ extra: [String], _ merges: [String], special: [String] = []) throws -> BPETokenizer {
        let tokens = special + byteVocab(extra)
        let types = special.map { _ in 3 } + Array(repeating: 1, count: tokens.count - special.count)
        return try BPETokenizer(tokens: tokens, merges: merges, tokenTypes: types, bos: nil, eos: 0)
    }

    func assertInitError(_ expected: TokenizerError, _ body: () throws -> BPETokenizer,
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? TokenizerError, expected, file: file, line: line)
            XCTAssertTrue("\(error)".hasPrefix("tokenizer: "), file: file, line: line)
            XCTAssertEqual(error.localizedDescription, "\(error)", file: file, line: line)
        }
    }

    func testByteTable() {
        // GPT-2's table: printable bytes stand for themselves, space -> Ġ, newline -> Ċ, 0xAD -> Ń.
        XCTAssertEqual(ByteLevel.byteToScalar[Int(UInt8(ascii: "a"))], UInt32(UInt8(ascii: "a")))
        XCTAssertEqual(ByteLevel.byteToScalar[0x20], 0x120)
        XCTAssertEqual(ByteLevel.byteToScalar[0x0A], 0x10A)
        XCTAssertEqual(ByteLevel.byteToScalar[0x00], 0x100)
        XCTAssertEqual(ByteLevel.byteToScalar[0x7F], 0x121)
        XCTAssertEqual(ByteLevel.byteToScalar[0xAD], 0x143)
        XCTAssertEqual(Set(ByteLevel.byteToScalar).count, 256)
        XCTAssertEqual(ByteLevel.decode("Ġhello"), Array(" hello".utf8))
        XCTAssertNil(ByteLevel.decode("€"))
    }

    func testScalarClasses() {
        XCTAssertEqual(PreTokenizer.classify(0x20), .space)
        for v: UInt32 in [0x09, 0x0A, 0x0D, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028, 0x202F, 0x3000] {
            XCTAssertEqual(PreTokenizer.classify(v), .whitespace, String(v, radix: 16))
        }
        for v: UInt32 in [0x1C, 0x1F, 0x180E, 0x200B, 0xFEFF, 0x301, 0x21, 0xD7FF, 0xE000] {
            XCTAssertEqual(PreTokenizer.classify(v), .other, String(v, radix: 16))
        }
        for v: UInt32 in [0x41, 0x7A, 0xDF, 0x3A9, 0x4E2D, 0x2B5, 0x20000] {
            XCTAssertEqual(PreTokenizer.classify(v), .letter, String(v, radix: 16))
        }
        for v: UInt32 in [0x30, 0x39, 0x663, 0x2167, 0xBD, 0xB2, 0x1D7CE] {
            XCTAssertEqual(PreTokenizer.classify(v), .number, String(v, radix: 16))
        }
        // Letters new in Unicode 17 (U+A7CE, U+10940) count as unassigned, as in the reference.
        XCTAssertEqual(PreTokenizer.classify(0xA7CE), .other)
        XCTAssertEqual(PreTokenizer.classify(0x10940), .other)
        // The BMP table and the direct computation agree.
        for v in stride(from: UInt32(0), to: 0x10000, by: 7) {
            XCTAssertEqual(PreTokenizer.bmpClasses[Int(v)], PreTokenizer.computeClass(v))
        }
    }

    func testMalformedMerges() {
        for bad in ["ab", "a  b", "a b c", "", " a", "a ", " "] {
            let idx = 1
            assertInitError(.malformedMerge(index: idx, merge: bad)) { try Self.make(["ab"], ["a b", bad]) }
        }
    }

    func testUnknownMergeTokens() {
        assertInitError(.mergeTokenNotInVocabulary(index: 0, merge: "xy z", token: "xy")) {
            try Self.make(["xyz"], ["xy z"])
        }
        assertInitError(.mergeTokenNotInVocabulary(index: 1, merge: "a €", token: "€")) {
            try Self.make(["ab"], ["a b", "a €"])
        }
        assertInitError(.mergeResultNotInVocabulary(index: 0, merge: "a b", result: "ab")) {
            try Self.make([], ["a b"])
        }
    }

    func testOtherInitErrors() {
        let tokens = Self.byteVocab()
        assertInitError(.emptyVocabulary) { try BPETokenizer(tokens: [], merges: [], tokenTypes: [], bos: nil, eos: 0) }
        assertInitError(.tokenTypeCountMismatch(tokens: 256, tokenTypes: 3)) {
            try BPETokenizer(tokens: tokens, merges: [], tokenTypes: [1, 1, 1], bos: nil, eos: 0)
        }
        let types = Array(repeating: 1, count: 256)
        assertInitError(.specialTokenOutOfRange(name: "eos", id: 256, vocabSize: 256)) {
            try BPETokenizer(tokens: tokens, merges: [], tokenTypes: types, bos: nil, eos: 256)
        }
        assertInitError(.specialTokenOutOfRange(name: "bos", id: -1, vocabSize: 256)) {
            try BPETokenizer(tokens: tokens, merges: [], tokenTypes: types, bos: -1, eos: 0)
        }
        assertInitError(.duplicateToken(token: "a", firstID: 97, secondID: 256)) {
            try BPETokenizer(tokens: tokens + ["a"], merges: [], tokenTypes: types + [1], bos: nil, eos: 0)
        }
    }

    func testInvalidIDsThrowOnDecode() throws {
        let tok = try Self.make(["ab"], ["a b"])
        XCTAssertThrowsError(try tok.decode([Int32(0), 9999])) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidTokenID(id: 9999, vocabSize: 257))
        }
        XCTAssertThrowsError(try tok.decodeBytes([-1])) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidTokenID(id: -1, vocabSize: 257))
        }
        XCTAssertEqual(try tok.decode([Int]()), "")
    }

    func testMergeOrderAndTies() throws {
        // Ranks decide, not position: "b c" (rank 0) beats "a b" (rank 1) in "abc".
        let tok = try Self.make(["bc", "ab", "abc", "aa", "aaa"], ["b c", "a b", "a bc", "a a"])
        func ids(_ s: String) -> [String] { tok.encode(s).map { tok.token($0)! } }
        XCTAssertEqual(ids("abc"), ["abc"])
        XCTAssertEqual(ids("ab"), ["ab"])
        // Equal rank: leftmost first, non-overlapping.
        XCTAssertEqual(ids("aaa"), ["aa", "a"])
        XCTAssertEqual(ids("aaaaa"), ["aa", "aa", "a"])
        // The heap path agrees on a long run.
        let long = Array(repeating: UInt8(ascii: "a"), count: 301)
        XCTAssertEqual(tok.mergeForTesting(long, heap: true), tok.mergeForTesting(long, heap: false))
        XCTAssertEqual(tok.mergeForTesting(long, heap: true).count, 151)
    }

    func testSpecialMatchingIsLeftmostLongest() throws {
        let tok = try Self.make([], [], special: ["<a>", "<a>b", "<x"])
        XCTAssertEqual(tok.encode("<a>b<a><x", allowSpecial: true), [1, 0, 2])
        XCTAssertEqual(tok.encode("<a", allowSpecial: true).count, 2)
        XCTAssertEqual(try tok.decode(tok.encode("q<a>bz", allowSpecial: true)), "q<a>bz")
        XCTAssertEqual(tok.encode("<a>", allowSpecial: false).count, 3)
    }

    func testBytesWithoutTokenAreDropped() throws {
        // No token for space or 'x': they are left out, and their neighbours merge across them
        // (as HF BPE without an unknown token does).
        var tokens = Self.byteVocab(["ab"])
        tokens[0x20] = "<no space>"
        tokens[Int(UInt8(ascii: "x"))] = "<no x>"
        let tok = try BPETokenizer(tokens: tokens, merges: ["a b"], tokenTypes: Array(repeating: 1, count: tokens.count),
                                   bos: nil, eos: 0)
        XCTAssertEqual(tok.unrepresentableBytes, [0x20, UInt8(ascii: "x")])
        XCTAssertEqual(tok.encode("axb").map { tok.token($0)! }, ["ab"])
        XCTAssertEqual(tok.encode("a b").map { tok.token($0)! }, ["a", "b"])  // " b" is one piece: "b"
        XCTAssertEqual(tok.encode("x"), [])
        XCTAssertEqual(tok.encode(String(repeating: "ax", count: 200) + "b").count, 200)
    }
}
