import Foundation
import XCTest
@testable import Model

/// The SmolLM2 tokenizer against an independent reference (HF `tokenizers` built from the same
/// GGUF vocabulary and merges, run through python3), plus round trips, special tokens and ChatML.
final class TokenizerTests: XCTestCase {
    func tokenizer() throws -> BPETokenizer { try TokenizerFixture.tokenizer.get() }

    /// Removes the extracted vocabulary and scripts (only this class uses the fixture).
    override class func tearDown() {
        try? FileManager.default.removeItem(at: TokenizerFixture.workDir)
        super.tearDown()
    }

    static let trickyStrings: [String] = [
        "", " ", "  ", "Hello world", "Hello, world!", " leading space", "trailing space ",
        "multiple   spaces   between", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "a\n\nb", "a \n b",
        "tabs\tand\t\tmore\ttabs", "line1\nline2\r\nline3\rline4", "x  \n  y", "end with newlines\n\n\n",
        "2024-11-24 12:34:56.789", "1234567890", "3.14159 and 2.71828", "v1.2.3", "x=1+2*3/4-5",
        " 1 22 333", "a1b2c3", "١٢٣ Arabic-Indic digits ٤٥٦", "Ⅻ roman numeral, ½ vulgar fraction, ² superscript",
        "don't", "I'm", "you're", "we've", "she'll", "he'd", "it's", "DON'T", "I'M", "'s", "''s'", "' s",
        "rock 'n' roll", "o'clock", "'re're", "'ll", "'lll", "'ve'", "'d'", "'t't",
        "naïve café résumé", "Straße", "Ελληνικά κείμενα", "Русский текст", "עברית", "العربية",
        "中文文本，标点。", "日本語のテキスト、カタカナ", "한국어 텍스트", "ไทย", "हिन्दी",
        "emoji 😀👍🏽🇫🇷 👨‍👩‍👧‍👦 family", "e\u{301} combining acute", "zero\u{200B}width", "nbsp\u{00A0}here",
        "ideographic\u{3000}space", "en\u{2002}space", "line\u{2028}sep", "nel\u{85}char", "\u{0}null\u{1}ctrl\u{7F}",
        "vertical\u{0B}tab\u{0C}feed", "BOM\u{FEFF}inside",
        // Bytes SmolLM2 has no token for (dropped by both sides): controls, U+40000...U+BFFFF.
        "\u{4}\u{6}\u{13}\u{14}\u{16}\u{1D}", "!!\u{4}!!", "a\u{13}b", "x\u{50000}y", "\u{8FFFD}\u{10FFFD}",
        "def f(x):\n    return x ** 2  # square\n", "if (a && b) { return c; }\n\tfoo();",
        "#include <stdio.h>\nint main() { printf(\"%d\\n\", 42); }", "<html><body class=\"x\">&amp;</body></html>",
        "$ ls -la | grep '^d' > out.txt 2>&1", "!!!???...,,,;;;", "----------", "==========", "    indented",
        "\t\t\tdeep tabs", "a<|im_start|>b", "<|endoftext|>", "<|im_end|>\n", "<|im_start|", "<repo_name>x",
        "@decorator\nclass A(B, metaclass=M):\n    pass", "λx.x", "∀x∈ℝ: x²≥0", "~`^_|\\", "http://example.com/a?b=c&d=e#f",
    ]

    // MARK: (a) agreement with the reference

    func testTrickyStringsMatchReference() throws {
        let tok = try tokenizer()
        let expected = try TokenizerFixture.referenceEncode(Self.trickyStrings)
        for (text, ref) in zip(Self.trickyStrings, expected) {
            let got = tok.encode(text)
            XCTAssertEqual(got, ref, "encode(\(String(reflecting: text))): \(firstDifference(got, ref))")
        }
    }

    func testPreTokenizerMatchesReference() throws {
        let tok = try tokenizer()
        let expected = try TokenizerFixture.referencePreTokenize(Self.trickyStrings)
        for (text, ref) in zip(Self.trickyStrings, expected) {
            let got = tok.preTokenize(text).map { ByteLevel.encode(Array($0.utf8)) }
            XCTAssertEqual(got, ref, "preTokenize(\(String(reflecting: text)))")
        }
    }

    func testStdlibFilesMatchReference() throws {
        let tok = try tokenizer()
        var names = ["fractions.py", "functools.py", "shlex.py", "statistics.py", "heapq.py",
                     "string.py", "textwrap.py", "typing.py"]
        // EBFT_TOKENIZER_ALL_STDLIB=1: every stdlib .py file (4.7 MB; slow in debug builds).
        if ProcessInfo.processInfo.environment["EBFT_TOKENIZER_ALL_STDLIB"] == "1" {
            names = try TokenizerFixture.stdlibFiles().map { $0.lastPathComponent }
        }
        let texts = try names.map { try TokenizerFixture.readText(URL(fileURLWithPath: "/usr/lib/python3.11/\($0)")) }
        let expected = try TokenizerFixture.referenceEncode(texts)
        for (name, (text, ref)) in zip(names, zip(texts, expected)) {
            let got = tok.encode(text)
            XCTAssertTrue(got == ref, "\(name): \(firstDifference(got, ref))")
        }
    }

    /// German-English dictionary text (apt `trans-de-en`, installed by `make deps`): umlauts,
    /// ß, punctuation and abbreviations. First 200 KB, or EBFT_TOKENIZER_DEEN_BYTES.
    func testGermanEnglishDictionaryMatchesReference() throws {
        let tok = try tokenizer()
        let path = "/usr/share/trans/de-en"
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw XCTSkip("\(path) is missing (apt package trans-de-en; make deps installs it)")
        }
        defer { try? handle.close() }
        let limit = Int(ProcessInfo.processInfo.environment["EBFT_TOKENIZER_DEEN_BYTES"] ?? "") ?? 200_000
        var data = handle.readData(ofLength: limit)
        if let lastNewline = data.lastIndex(of: 0x0A) { data = data[..<(lastNewline + 1)] }
        let text = String(decoding: data, as: UTF8.self)
        // In chunks of lines, so that a failure points near its place.
        var chunks: [String] = []
        var current = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            current += line + "\n"
            if current.utf8.count > 20_000 { chunks.append(current); current = "" }
        }
        if !current.isEmpty { chunks.append(current) }
        let expected = try TokenizerFixture.referenceEncode(chunks)
        for (k, (chunk, ref)) in zip(chunks, expected).enumerated() {
            let got = tok.encode(chunk)
            XCTAssertTrue(got == ref, "de-en chunk \(k): \(firstDifference(got, ref))")
        }
    }

    /// The character classes (letter / number / whitespace / other) of every 13th scalar, or of
    /// all of them with EBFT_TOKENIZER_EXHAUSTIVE=1 (about 10 s of Python), agree with the
    /// reference's splitting.
    func testScalarClassesMatchReference() throws {
        let step: UInt32 = ProcessInfo.processInfo.environment["EBFT_TOKENIZER_EXHAUSTIVE"] == "1" ? 1 : 13
        let scalars = stride(from: UInt32(0), to: 0x110000, by: Int(step)).filter {
            $0 != 0x20 && Unicode.Scalar($0) != nil
        } + [0x85, 0xA0, 0x1680, 0x180E, 0x2028, 0x202F, 0x205F, 0x3000, 0x1C, 0x1F, 0xFEFF, 0x200B]
        let ref = try TokenizerFixture.referenceClasses(scalars)
        var mismatches: [String] = []
        for (v, r) in zip(scalars, ref) {
            let mine = PreTokenizer.classify(v)
            // .space never occurs here (U+0020 is left out); .whitespace is 3 on both sides.
            if mine.rawValue != r { mismatches.append("U+\(String(v, radix: 16, uppercase: true)): \(mine) vs \(r)") }
        }
        XCTAssertTrue(mismatches.isEmpty, "\(mismatches.count) of \(scalars.count) scalars differ: \(mismatches.prefix(20))")
    }

    /// Random strings drawn from pools that stress the pre-tokeniser (spaces before letters,
    /// digits, punctuation, contractions, other whitespace, combining marks, many scripts).
    static func randomTexts(count: Int, seed: UInt64) -> [String] {
        var rng = SplitMix64(seed: seed)
        let pools: [[Unicode.Scalar]] = [
            Array("abcXYZ".unicodeScalars), Array("0123456789".unicodeScalars),
            Array(" ".unicodeScalars), Array(" \t\n\r".unicodeScalars), Array("'srtvemld".unicodeScalars),
            Array(".,;:!?()[]{}<>-_=+*/\\\"#@$%^&|~`".unicodeScalars),
            Array("éßçøåñüΩλЖжשعअ中文日本한".unicodeScalars),
            Array("\u{A0}\u{2003}\u{3000}\u{85}\u{2028}\u{200B}\u{301}\u{308}\u{FEFF}".unicodeScalars),
            Array("٣۴߅६৭Ⅷ½²³①".unicodeScalars), Array("😀👍🏽🇫🇷\u{200D}♥".unicodeScalars),
        ]
        return (0..<count).map { _ in
            let len = Int.random(in: 0...40, using: &rng)
            var s = String.UnicodeScalarView()
            for _ in 0..<len {
                let pool = pools[Int.random(in: 0..<pools.count, using: &rng)]
                s.append(pool[Int.random(in: 0..<pool.count, using: &rng)])
            }
            return String(s)
        }
    }

    func testRandomStringsMatchReference() throws {
        let tok = try tokenizer()
        let texts = Self.randomTexts(count: 400, seed: 42)
        let expected = try TokenizerFixture.referenceEncode(texts)
        var failures = 0
        for (text, ref) in zip(texts, expected) {
            let got = tok.encode(text)
            if got != ref {
                failures += 1
                if failures <= 10 { XCTFail("encode(\(String(reflecting: text))): \(firstDifference(got, ref))") }
            }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(texts.count) random strings differ from the reference")
    }

    /// Random scalars from the whole Unicode range (letters, numbers, spaces of every script),
    /// leaving out scalars assigned after Unicode 16 (the reference's tables predate them; see
    /// `PreTokenizer.computeClass`).
    static func randomScalarTexts(count: Int, seed: UInt64) -> [String] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let len = Int.random(in: 1...60, using: &rng)
            var s = String.UnicodeScalarView()
            while s.count < len {
                let v: UInt32
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: v = UInt32.random(in: 0x20...0x7E, using: &rng)
                case 1: v = UInt32.random(in: 0...0x2FFF, using: &rng)
                case 2: v = UInt32.random(in: 0...0xFFFF, using: &rng)
                default: v = UInt32.random(in: 0...0x10FFFF, using: &rng)
                }
                guard let sc = Unicode.Scalar(v) else { continue }  // surrogates
                if let age = sc.properties.age, age.major > 16 { continue }
                s.append(sc)
            }
            return String(s)
        }
    }

    func testRandomScalarsMatchReference() throws {
        let tok = try tokenizer()
        let texts = Self.randomScalarTexts(count: 300, seed: 7)
        let expected = try TokenizerFixture.referenceEncode(texts)
        var failures = 0
        for (text, ref) in zip(texts, expected) {
            let got = tok.encode(text)
            if got != ref {
                failures += 1
                if failures <= 10 {
                    let scalars = text.unicodeScalars.map { String($0.value, radix: 16) }.joined(separator: " ")
                    XCTFail("encode([\(scalars)]): \(firstDifference(got, ref))")
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(texts.count) random scalar strings differ from the reference")
    }

    /// Long pieces take the heap path of the merge loop.
    func testLongPiecesMatchReference() throws {
        let tok = try tokenizer()
        let texts = [
            String(repeating: " ", count: 3000), String(repeating: " ", count: 2999) + "x",
            String(repeating: "\n", count: 500) + "y", String(repeating: "=", count: 1000),
            String(repeating: "a", count: 1001), String(repeating: "ab", count: 700),
            String(repeating: "é", count: 300), String(repeating: "😀", count: 200),
            String(repeating: "-=", count: 333), "x" + String(repeating: "abracadabra", count: 50),
            String(repeating: "中文", count: 150), String(repeating: "\t ", count: 400) + "z",
        ]
        let expected = try TokenizerFixture.referenceEncode(texts)
        for (text, ref) in zip(texts, expected) {
            let got = tok.encode(text)
            XCTAssertTrue(got == ref, "encode(\(String(reflecting: text.prefix(12)))… × \(text.count)): \(firstDifference(got, ref))")
        }
    }

    /// The short (quadratic) and long (heap) merge loops agree on random byte strings.
    func testMergePathsAgree() throws {
        let tok = try tokenizer()
        var rng = SplitMix64(seed: 99)
        let alphabet = Array("aaabbeinst Ġ=-_".utf8) + [0xC3, 0xA9, 0xE4, 0xB8, 0xAD]
        for _ in 0..<300 {
            let len = Int.random(in: 1...200, using: &rng)
            let bytes = (0..<len).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
            let short = tok.mergeForTesting(bytes, heap: false)
            let heap = tok.mergeForTesting(bytes, heap: true)
            XCTAssertEqual(short, heap, "\(bytes): \(firstDifference(short, heap))")
            XCTAssertEqual(try tok.decodeBytes(heap), bytes)
        }
    }

    // MARK: (b) round trips

    func testRoundTripStdlibFiles() throws {
        let tok = try tokenizer()
        let files = try TokenizerFixture.stdlibFiles()
        let stride = max(1, files.count / 50)
        var checked = 0
        for (i, url) in files.enumerated() where i % stride == 0 && checked < 50 {
            let text = try TokenizerFixture.readText(url)
            let ids = tok.encode(text)
            let back = try tok.decodeBytes(ids), want = representable(text, tok)
            XCTAssertTrue(back == want, "round trip of \(url.lastPathComponent): \(firstDifference(back, want))")
            XCTAssertTrue(ids.allSatisfy { !tok.isSpecial($0) })
            checked += 1
        }
        XCTAssertEqual(checked, 50)
    }

    /// The UTF-8 of `text` without the bytes the vocabulary cannot represent (`encode` drops them).
    func representable(_ text: String, _ tok: BPETokenizer) -> [UInt8] {
        text.utf8.filter { tok.hasByteToken($0) }
    }

    /// Round trips are exact wherever the vocabulary covers the text's bytes, and drop exactly
    /// the uncovered bytes otherwise.
    func testRoundTripRandomScalars() throws {
        let tok = try tokenizer()
        var rng = SplitMix64(seed: 2026)
        var exact = 0
        defer { XCTAssertGreaterThan(exact, 100, "too few fully representable random strings") }
        for _ in 0..<300 {
            let len = Int.random(in: 0...80, using: &rng)
            // Two strings in three avoid scalars with unrepresentable bytes.
            let onlyRepresentable = Int.random(in: 0..<3, using: &rng) < 2
            var s = String.UnicodeScalarView()
            while s.count < len {
                let v = Bool.random(using: &rng) ? UInt32.random(in: 0...0x3000, using: &rng)
                                                 : UInt32.random(in: 0...0x10FFFF, using: &rng)
                guard let sc = Unicode.Scalar(v) else { continue }
                if onlyRepresentable && !String(sc).utf8.allSatisfy({ tok.hasByteToken($0) }) { continue }
                s.append(sc)
            }
            let text = String(s)
            let expected = representable(text, tok)
            if expected.count == text.utf8.count { exact += 1 }
            for special in [false, true] {
                let ids = tok.encode(text, allowSpecial: special)
                // Compare bytes, not Strings (String == is canonical equivalence).
                XCTAssertEqual(try tok.decodeBytes(ids), expected)
                if expected.count == text.utf8.count {
                    XCTAssertEqual(Array(try tok.decode(ids).utf8), expected)
                }
            }
        }
    }

    func testDecodeMatchesReference() throws {
        let tok = try tokenizer()
        let seqs: [[Int32]] = Self.trickyStrings.map { tok.encode($0, allowSpecial: true) } + [[1, 2, 0, 5], [28120, 905]]
        let expected = try TokenizerFixture.referenceDecode(seqs)
        for (ids, ref) in zip(seqs, expected) {
            XCTAssertEqual(Array(try tok.decode(ids).utf8), Array(ref.utf8), "decode(\(ids))")
        }
    }

    func testPartialUTF8Decoding() throws {
        let tok = try tokenizer()
        let ids = tok.encode("😀")  // 4 bytes; no single token
        XCTAssertGreaterThan(ids.count, 1)
        let first = try tok.decodeBytes(ids.prefix(1))
        XCTAssertEqual(first, Array(Array("😀".utf8).prefix(first.count)))
        XCTAssertEqual(try tok.decode(ids.prefix(1)), String(repeating: "\u{FFFD}", count: 1))
    }

    // MARK: (c) special tokens

    func testSpecialTokens() throws {
        let tok = try tokenizer()
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertEqual(tok.bos, 1)
        XCTAssertEqual(tok.eos, 2)
        XCTAssertEqual(tok.pad, 2)
        XCTAssertEqual(tok.id(of: "<|endoftext|>"), 0)
        XCTAssertEqual(tok.id(of: "<|im_start|>"), 1)
        XCTAssertEqual(tok.id(of: "<|im_end|>"), 2)
        XCTAssertEqual(tok.token(1), "<|im_start|>")
        XCTAssertNil(tok.token(-1))
        XCTAssertNil(tok.token(49152))
        XCTAssertNil(tok.id(of: "no such token"))
        XCTAssertTrue(tok.isSpecial(0) && tok.isSpecial(16))
        XCTAssertFalse(tok.isSpecial(17))

        XCTAssertEqual(tok.encode("<|im_start|>", allowSpecial: true), [1])
        XCTAssertEqual(tok.encode("<|im_start|><|im_end|><|endoftext|>", allowSpecial: true), [1, 2, 0])
        let asText = tok.encode("<|im_start|>", allowSpecial: false)
        XCTAssertGreaterThan(asText.count, 1)
        XCTAssertFalse(asText.contains { tok.isSpecial($0) })
        XCTAssertEqual(try tok.decode(asText), "<|im_start|>")
        XCTAssertEqual(try tok.decode([1, 2, 0]), "<|im_start|><|im_end|><|endoftext|>")
        // Text around special tokens is encoded as separate segments.
        let mixed = tok.encode("hi <|im_end|>\nthere", allowSpecial: true)
        XCTAssertEqual(mixed, tok.encode("hi ") + [2] + tok.encode("\nthere"))
        // An incomplete special token is plain text.
        XCTAssertFalse(tok.encode("<|im_start|", allowSpecial: true).contains(1))

        let texts = Self.trickyStrings + [
            "<|im_start|>user\nhi<|im_end|>\n", "a<|im_end|>b<|im_end|>", "<<|im_start|>>", "<|im_start|><|im_start|>",
            "<jupyter_code>print(1)<jupyter_output>1<empty_output>", "  <|endoftext|>  ", "<filename>x<file_sep>",
        ]
        for special in [false, true] {
            let expected = try TokenizerFixture.referenceEncode(texts, special: special)
            for (text, ref) in zip(texts, expected) {
                let got = tok.encode(text, allowSpecial: special)
                XCTAssertEqual(got, ref, "encode(\(String(reflecting: text)), allowSpecial: \(special)): \(firstDifference(got, ref))")
            }
        }
    }

    // MARK: (d) ChatML

    func testChatMLText() {
        let msgs: [(role: String, content: String)] = [("user", "What is 2+2?"), ("assistant", "4"), ("user", "Thanks!")]
        XCTAssertEqual(ChatML.prompt(messages: msgs, addGenerationPrompt: true),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                       + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
                       + "<|im_start|>user\nThanks!<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(ChatML.prompt(messages: [("system", "Be brief."), ("user", "Hi")], addGenerationPrompt: false),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
        XCTAssertEqual(ChatML.prompt(messages: [], addGenerationPrompt: true), "<|im_start|>assistant\n")
        XCTAssertEqual(ChatML.prompt(messages: [], addGenerationPrompt: false), "")
    }

    func testChatMLIDs() throws {
        let tok = try tokenizer()
        let convs: [[(role: String, content: String)]] = [
            [("user", "What is the capital of France?")],
            [("system", "You answer in French."), ("user", "Bonjour !\n\nÇa va ?"), ("assistant", "Oui, merci.")],
            [("user", "def f(x):\n    return x  # 42")],
        ]
        let prompts = convs.map { ChatML.prompt(messages: $0, addGenerationPrompt: true) }
        let expected = try TokenizerFixture.referenceEncode(prompts, special: true)
        for (conv, (prompt, ref)) in zip(convs, zip(prompts, expected)) {
            let ids = ChatML.encode(messages: conv, addGenerationPrompt: true, tokenizer: tok)
            XCTAssertEqual(ids, ref, "ChatML ids: \(firstDifference(ids, ref))")
            XCTAssertEqual(try tok.decode(ids), prompt)
            XCTAssertEqual(ids.first, 1)
            let tail = [1] + tok.encode("assistant\n")
            XCTAssertEqual(Array(ids.suffix(tail.count)), tail)
        }
        // The structure: <|im_start|> system \n ... <|im_end|> \n <|im_start|> user \n ...
        let ids = ChatML.encode(messages: convs[0], addGenerationPrompt: false, tokenizer: tok)
        XCTAssertEqual(ids.filter { $0 == 1 }.count, 2)
        XCTAssertEqual(ids.filter { $0 == 2 }.count, 2)
        XCTAssertEqual(Array(ids.prefix(3)), [1] + tok.encode("system\n"))
    }

    // MARK: Throughput (printed, not asserted)

    func testEncodeThroughput() throws {
        let v = try TokenizerFixture.vocab.get()
        let t00 = Date()
        let tok = try BPETokenizer(tokens: v.tokens, merges: v.merges, tokenTypes: v.token_type,
                                   bos: v.bos, eos: v.eos, pad: v.pad)
        print(String(format: "tokenizer init: %.3f s", Date().timeIntervalSince(t00)))
        let files = try TokenizerFixture.stdlibFiles()
        #if DEBUG
        let target = 256 * 1024  // debug builds are slow; the release figure is the one that matters
        #else
        let target = 1024 * 1024
        #endif
        var text = ""
        for url in files where text.utf8.count < target { text += try TokenizerFixture.readText(url) }
        let bytes = text.utf8.count
        let t0 = Date()
        let ids = tok.encode(text)
        let dt = Date().timeIntervalSince(t0)
        let t1 = Date()
        let back = try tok.decodeBytes(ids)
        let dt2 = Date().timeIntervalSince(t1)
        XCTAssertEqual(back.count, bytes)
        print(String(format: "tokenizer throughput: encode %.2f MB in %.3f s = %.2f MB/s (%d tokens, %.2f bytes/token); decode %.3f s",
                     Double(bytes) / 1e6, dt, Double(bytes) / 1e6 / dt, ids.count, Double(bytes) / Double(ids.count), dt2))

        // Harder inputs: long random multi-script words (few cache hits, long pieces) and one
        // piece of `target` bytes (the heap merge path).
        var rng = SplitMix64(seed: 5)
        let scripts: [ClosedRange<UInt32>] = [0x61...0x7A, 0x3B1...0x3C9, 0x430...0x44F, 0x4E00...0x9FFF, 0xAC00...0xD7A3]
        var words = String.UnicodeScalarView()
        var scalarCount = 0
        while scalarCount * 2 < target {
            let range = scripts[Int.random(in: 0..<scripts.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                words.append(Unicode.Scalar(UInt32.random(in: range, using: &rng))!)
                scalarCount += 1
            }
            words.append(" ")
            scalarCount += 1
        }
        for (name, hard) in [("random words", String(words)), ("one long piece", String(repeating: "=", count: target))] {
            let t = Date()
            let n = tok.encode(hard).count
            let d = Date().timeIntervalSince(t)
            let mb = Double(hard.utf8.count) / 1e6
            print(String(format: "tokenizer throughput (%@): %.2f MB in %.3f s = %.2f MB/s (%d tokens)", name, mb, d, mb / d, n))
        }
    }
}

extension TokenizerTests {
    func testStreamDecoderNeverSplitsCharacters() throws {
        let tok = try tokenizer()
        let text = "Grüße 😀👍🏽 中文文本 and ascii <|im_end|> ∀x∈ℝ 🇫🇷!"
        for special in [false, true] {
            var stream = TokenStreamDecoder(tokenizer: tok)
            var pieces: [String] = []
            for id in tok.encode(text, allowSpecial: special) { pieces.append(try stream.append(id)) }
            pieces.append(stream.finish())
            XCTAssertFalse(pieces.joined().unicodeScalars.contains("\u{FFFD}"))
            XCTAssertEqual(Array(pieces.joined().utf8), Array(text.utf8))
            XCTAssertTrue(pieces.contains(""), "some token should end inside a multi-byte character")
        }
        var stream = TokenStreamDecoder(tokenizer: tok)
        let emoji = tok.encode("😀")
        XCTAssertEqual(try stream.append(emoji[0]), "")
        XCTAssertEqual(stream.finish(), "\u{FFFD}")
        XCTAssertThrowsError(try stream.append(-5))
    }
}
