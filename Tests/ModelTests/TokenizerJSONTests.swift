import Foundation
import XCTest
@testable import Model

/// `BPETokenizer(tokenizerJSON:)` against the `tokenizers` library on a Llama-3-style and a
/// Qwen2-style `tokenizer.json` (see `TokenizerFamilies`): ids on the Python stdlib sources, on
/// random valid UTF-8 and on strings with special and added tokens; decoding; the special ids
/// and chat formats from the config files; the fields that are refused.
final class TokenizerJSONTests: XCTestCase {
    typealias Family = TokenizerFamilies.Family

    override class func tearDown() {
        try? FileManager.default.removeItem(at: TokenizerFamilies.workDir)
        super.tearDown()
    }

    /// Compares our ids with the library's for every text; fails with the first differences.
    func assertMatchesLibrary(_ f: Family, _ texts: [String], special: Bool, what: String,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try TokenizerFamilies.tokenizer(f)
        let expected = try TokenizerFamilies.referenceEncode(f, texts, special: special)
        var failures = 0
        for (text, ref) in zip(texts, expected) {
            let got = tok.encode(text, allowSpecial: special)
            if got != ref {
                failures += 1
                if failures <= 5 {
                    let shown = text.count > 300 ? String(reflecting: String(text.prefix(300))) + "…"
                                                 : String(reflecting: text)
                    XCTFail("\(f) special=\(special) encode(\(shown)): \(firstDifference(got, ref))", file: file, line: line)
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(f): \(failures) of \(texts.count) \(what) differ from the library", file: file, line: line)
    }

    // MARK: Ids against the library

    /// Every .py file of the Python stdlib (4.7 MB), both families.
    func testStdlibSourcesMatchLibrary() throws {
        let texts = try TokenizerFixture.stdlibFiles().map(TokenizerFixture.readText)
        for f in Family.allCases {
            try assertMatchesLibrary(f, texts, special: false, what: "stdlib files")
        }
    }

    /// Random valid UTF-8 (`randomTexts`), with the special tokens read as tokens and as text.
    func testRandomTextMatchesLibrary() throws {
        let texts = Self.randomTexts(count: 500, seed: 12)
        for f in Family.allCases {
            for special in [false, true] {
                try assertMatchesLibrary(f, texts, special: special, what: "random texts")
            }
        }
    }

    /// The SmolLM2 tests' tricky strings and random scalar strings (whole Unicode range).
    func testTrickyAndRandomScalarStringsMatchLibrary() throws {
        let texts = TokenizerTests.trickyStrings + TokenizerTests.randomScalarTexts(count: 300, seed: 3)
        for f in Family.allCases {
            try assertMatchesLibrary(f, texts, special: true, what: "tricky / random scalar strings")
        }
    }

    static let specialStrings: [String] = [
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|><|endoftext|>", "a<|im_start|>b", "<|im_start|", "<|eot_id|><|eot_id", "x<|end_of_text|>y",
        "<tool_call>{\"name\": \"f\"}</tool_call>", "<tool_call><tool_call>", "a<tool_call>b",
        "Hi <mask> there", "Hi\t<mask>\t\tthere", "x<mask>y", "x <mask>", "<mask>", "  <mask>  ", "<mask><mask>",
        "é<mask>", "-<mask>-", "_<mask>", "<mask>\u{301}", "1<mask>", " <mask>\u{3000}end",
        "cafe\u{301}", "café", "un café noir", "cafe\u{301}<|im_end|>", "xcafe\u{301}y", "CAFE\u{301}",
        "<|im_start|><tool_call><|im_end|>", "<|im_start|>café<mask> <|eot_id|>",
    ]

    /// Added and special tokens with every flag (single_word, lstrip, rstrip, normalized).
    func testSpecialAndAddedTokensMatchLibrary() throws {
        for f in Family.allCases {
            for special in [false, true] {
                try assertMatchesLibrary(f, Self.specialStrings, special: special, what: "special-token strings")
            }
        }
    }

    /// Every assigned scalar up to Unicode 16 (private-use and unassigned ones sampled: one in
    /// 251) between letters, digits, spaces and newlines: our Llama-3 and Qwen2 pre-tokenisers
    /// (Qwen2's after our NFC) split as the library's.
    func testPreTokenizerMatchesLibraryOnEveryScalar() throws {
        var chunks: [String] = []
        var current = String.UnicodeScalarView()
        var n = 0
        for v in UInt32(0)...0x10FFFF {
            guard let c = Unicode.Scalar(v) else { continue }
            if let age = c.properties.age, age.major > 16 { continue }
            if (c.properties.age == nil || c.properties.generalCategory == .privateUse) && v % 251 != 0 { continue }
            // "x" c c "'" c "S 1" c "\n" c " " …: c in every role the patterns distinguish.
            for s in ["x", String(c), String(c), "'", String(c), "S 1", String(c), "\n", String(c), " "] {
                current.append(contentsOf: s.unicodeScalars)
            }
            n += 1
            if n % 8192 == 0 {
                chunks.append(String(current))
                current = String.UnicodeScalarView()
            }
        }
        chunks.append(String(current))
        for f in [Family.llama3, .qwen2] {
            let tok = try BPETokenizer(tokenizerJSON: try TokenizerFamilies.tokenizerJSON(f))
            // The library pre-tokenises the normalised text; compare on NFC text for Qwen2.
            let texts = f == .qwen2 ? chunks.map { TextNormalizer.nfc.apply($0) } : chunks
            let expected = try TokenizerFamilies.reference(try TokenizerFamilies.tokenizerJSON(f),
                                                           texts.map { .pretokenize($0) }, as: [String].self)
            for (k, (text, ref)) in zip(texts, expected).enumerated() {
                let got = tok.preTokenize(text).map { ByteLevel.encode(Array($0.utf8)) }
                XCTAssertEqual(got.count, ref.count, "\(f) chunk \(k): piece counts")
                if got != ref { XCTFail("\(f) chunk \(k): \(firstDifference(got, ref))") }
            }
        }
    }

    /// NFC as the reference: canonical order restored where the standard library's normaliser
    /// leaves it (U+0F73 decomposes into two combining marks of different classes).
    func testNFC() throws {
        let cases: [(String, [UInt32])] = [
            ("x\u{F73}\u{F73}'", [0x78, 0xF71, 0xF71, 0xF72, 0xF72, 0x27]),
            ("\u{F71}\u{F72}\u{F71}\u{F72}", [0xF71, 0xF71, 0xF72, 0xF72]),
            ("e\u{301}", [0xE9]), ("a\u{316}\u{301}", [0xE1, 0x316]), ("a\u{301}\u{316}", [0xE1, 0x316]),
            ("\u{1100}\u{1161}\u{11A8}", [0xAC01]), ("\u{212B}", [0xC5]), ("plain", Array("plain".unicodeScalars.map(\.value))),
        ]
        for (text, want) in cases {
            XCTAssertEqual(TextNormalizer.nfc.apply(text).unicodeScalars.map(\.value), want, String(reflecting: text))
        }
        try assertMatchesLibrary(.qwen2, cases.map(\.0) + ["x\u{F73}\u{F75}\u{F81}\u{344}\u{F73}y"], special: false,
                                 what: "NFC cases")
    }

    /// The pipeline options the two families do not use, against the library on edited copies
    /// of the Qwen2-style file: every Split behaviour and `invert` (regex and literal patterns),
    /// Digits in runs, ByteLevel with `add_prefix_space` and its GPT-2 regex.
    func testOtherPipelineOptionsMatchLibrary() throws {
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false]
        var variants: [(String, Any)] = []
        for behavior in ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"] {
            for invert in [false, true] {
                variants.append(("\(behavior)-\(invert)-regex", ["type": "Sequence", "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": SplitPattern.llama3Regex], "behavior": behavior, "invert": invert],
                    byteLevel]]))
                variants.append(("\(behavior)-\(invert)-string", ["type": "Sequence", "pretokenizers": [
                    ["type": "Split", "pattern": ["String": "e"], "behavior": behavior, "invert": invert], byteLevel]]))
            }
        }
        variants.append(("digits-runs-prefix", ["type": "Sequence", "pretokenizers": [
            ["type": "Digits", "individual_digits": false],
            ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]]]))
        variants.append(("bytelevel-prefix-noregex", ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": false]))
        variants.append(("gpt2", ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]))
        let texts = Self.randomTexts(count: 120, seed: 77) + ["e", "ee", "eXe", " e e ", "beekeeper", "12 345 6789"]
        for (name, pre) in variants {
            let path = try editedCopy("pipeline-\(name)") { $0["pre_tokenizer"] = pre }
            let tok = try BPETokenizer(tokenizerJSON: path)
            let expected = try TokenizerFamilies.reference(path, texts.map { .encode($0, special: true) }, as: [Int32].self)
            var failures = 0
            for (text, ref) in zip(texts, expected) where tok.encode(text, allowSpecial: true) != ref {
                failures += 1
                if failures <= 3 {
                    XCTFail("\(name): \(String(reflecting: String(text.prefix(80)))): "
                            + firstDifference(tok.encode(text, allowSpecial: true), ref))
                }
            }
        }
    }

    /// A byte without a token: dropped without `unk_token`, else the unknown token (once per
    /// run with `fuse_unk`), as the library does. (The copy respells the token of a control
    /// byte that no merge uses.)
    func testBytesWithoutTokenMatchLibrary() throws {
        let path = try TokenizerFamilies.tokenizerJSON(.qwen2)
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let merges = try XCTUnwrap((root["model"] as? [String: Any])?["merges"] as? [[String]])
        let used = Set(merges.flatMap { $0.flatMap { $0.unicodeScalars.map(\.value) } })
        let byte = try XCTUnwrap((UInt8(1)...0x1F).first { !used.contains(ByteLevel.byteToScalar[Int($0)]) })
        let spelling = String(Unicode.Scalar(ByteLevel.byteToScalar[Int(byte)])!)
        let control = String(UnicodeScalar(byte))
        let samples = ["a" + control + "b", control + control + "x", "x " + control + control + " y", "plain"]
        let cases: [(String, String?, Bool)] = [("drop", nil, false), ("unk", "<unk>", false), ("fused-unk", "<unk>", true)]
        for (name, unk, fuse) in cases {
            let p = try editedCopy("bytes-\(name)") { root in
                var m = root["model"] as! [String: Any]
                var vocab = m["vocab"] as! [String: Any]
                let id = vocab.removeValue(forKey: spelling)!
                vocab["<unk>"] = id
                m["vocab"] = vocab
                m["unk_token"] = unk ?? NSNull()
                m["fuse_unk"] = fuse
                root["model"] = m
            }
            let tok = try BPETokenizer(tokenizerJSON: p)
            XCTAssertFalse(tok.hasByteToken(byte))
            let expected = try TokenizerFamilies.reference(p, samples.map { .encode($0, special: false) }, as: [Int32].self)
            for (text, ref) in zip(samples, expected) {
                XCTAssertEqual(tok.encode(text), ref, "\(name): \(String(reflecting: text))")
            }
        }
    }

    // MARK: Decoding

    /// decode(encode(text)) is the text (NFC for Qwen2), and our decode equals the library's.
    /// (Not a round trip in the library either: text around `<mask>`, whose lstrip / rstrip
    /// swallow the spaces beside it, and the normalised added token `cafe\u{301}`, which the
    /// library keeps as NFC `café` and decodes byte-level, giving U+FFFD.)
    func testDecodeRoundTripsAndMatchesLibrary() throws {
        let texts = Self.randomTexts(count: 200, seed: 99) + Self.specialStrings
            + (try TokenizerFixture.stdlibFiles().prefix(20).map(TokenizerFixture.readText))
        for f in Family.allCases {
            let tok = try TokenizerFamilies.tokenizer(f)
            let ids = texts.map { tok.encode($0, allowSpecial: true) }
            let expected = try TokenizerFamilies.reference(try TokenizerFamilies.tokenizerJSON(f), ids.map { .decode($0) },
                                                           as: String.self)
            for (k, text) in texts.enumerated() {
                let back = try tok.decode(ids[k])
                let want = f == .qwen2 ? TextNormalizer.nfc.apply(text) : text
                // Compare scalars: Swift's String == is canonical equivalence, too lenient here.
                if !want.contains("<mask>") && !want.unicodeScalars.elementsEqual("cafe\u{301}".unicodeScalars)
                    && !want.contains("caf\u{E9}") && !text.contains("cafe\u{301}") {
                    XCTAssertEqual(Array(back.unicodeScalars), Array(want.unicodeScalars), "\(f) round trip of text \(k)")
                }
                XCTAssertEqual(Array(back.unicodeScalars), Array(expected[k].unicodeScalars), "\(f) decode of text \(k)")
            }
        }
    }

    // MARK: Model options

    /// Llama-3's ignore_merges: a pre-token in the vocabulary is one id (Qwen2 merges it).
    func testIgnoreMerges() throws {
        let llama = try TokenizerFamilies.tokenizer(.llama3)
        let qwen = try TokenizerFamilies.tokenizer(.qwen2)
        XCTAssertTrue(llama.ignoreMerges)
        XCTAssertFalse(qwen.ignoreMerges)
        let word = " qwertyuiop"
        XCTAssertEqual(llama.encode(word), [try XCTUnwrap(llama.id(of: "Ġqwertyuiop"))])
        XCTAssertGreaterThan(qwen.encode(word).count, 1)
        try assertMatchesLibrary(.llama3, [word, "x" + word, word + word], special: false, what: "ignore_merges words")
        try assertMatchesLibrary(.qwen2, [word, "x" + word, word + word], special: false, what: "ignore_merges words")
    }

    /// The `"a b"` string form of merges reads as the `[a, b]` pair form.
    func testMergeStringFormEqualsPairForm() throws {
        let path = try TokenizerFamilies.tokenizerJSON(.qwen2)
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var model = try XCTUnwrap(root["model"] as? [String: Any])
        let pairs = try XCTUnwrap(model["merges"] as? [[String]])
        model["merges"] = pairs.map { $0.joined(separator: " ") }
        root["model"] = model
        let copy = TokenizerFamilies.workDir.appendingPathComponent("qwen2-string-merges.json")
        try JSONSerialization.data(withJSONObject: root).write(to: copy)
        let a = try BPETokenizer(tokenizerJSON: path), b = try BPETokenizer(tokenizerJSON: copy.path)
        for text in Self.randomTexts(count: 100, seed: 5) {
            XCTAssertEqual(a.encode(text, allowSpecial: true), b.encode(text, allowSpecial: true))
        }
    }

    // MARK: GGUF files of the families

    /// A GGUF holding `f`'s tokenizer as `ggufMetadata` writes it, with `pre` as
    /// `tokenizer.ggml.pre` (none when nil) and `model` as `tokenizer.ggml.model`.
    func ggufCopy(_ f: Family, pre: String?, model: String = "gpt2") throws -> String {
        var g = TinyGGUF()
        g.metadata = [("general.architecture", .string("llama"))]
        for (key, value) in try TokenizerFamilies.tokenizer(f).ggufMetadata() {
            switch key {
            case "tokenizer.ggml.pre": if let pre { g.metadata.append((key, .string(pre))) }
            case "tokenizer.ggml.model": g.metadata.append((key, .string(model)))
            default: g.metadata.append((key, value))
            }
        }
        let path = TokenizerFamilies.workDir.appendingPathComponent("\(f)-\(pre ?? "none")-\(model).gguf").path
        try Data(g.bytes()).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// GGUF files of the families (`tokenizer.ggml.pre` llama-bpe / qwen2) tokenise as their
    /// tokenizer.json; the name is written back by `ggufPreTokenizer`; other models and
    /// pre-tokenisers are refused by name.
    func testGGUFPreTokenizersOfTheFamilies() throws {
        // GGUF has no added-token flags: compare on text without the non-special added tokens.
        let texts = (Self.randomTexts(count: 200, seed: 21) + TokenizerTests.trickyStrings).filter {
            !$0.contains("<tool_call>") && !$0.contains("<mask>") && !$0.contains("caf")
        } + (try TokenizerFixture.stdlibFiles().prefix(10).map(TokenizerFixture.readText))
        for (f, pre) in [(Family.llama3, "llama-bpe"), (.qwen2, "qwen2")] {
            let json = try TokenizerFamilies.tokenizer(f)
            XCTAssertEqual(json.ggufPreTokenizer, pre)
            let gguf = try BPETokenizer(ggufPath: try ggufCopy(f, pre: pre))
            XCTAssertEqual(gguf.ggufPreTokenizer, pre)
            XCTAssertEqual(gguf.addsBOS, f == .llama3)
            XCTAssertEqual([gguf.bos, gguf.eos, gguf.pad, gguf.unk], [json.bos, json.eos, json.pad, json.unk], "\(f)")
            XCTAssertEqual(gguf.stopTokens, json.stopTokens, "\(f)")
            XCTAssertEqual(gguf.chatFormat, json.chatFormat, "\(f)")
            for text in texts {
                XCTAssertEqual(gguf.encode(text), json.encode(text), "\(f): \(String(reflecting: String(text.prefix(80))))")
            }
        }
        XCTAssertEqual(try BPETokenizer(ggufPath: TokenizerFixture.modelPath).ggufPreTokenizer, "smollm")
        XCTAssertThrowsError(try BPETokenizer(ggufPath: try ggufCopy(.qwen2, pre: "deepseek-llm"))) { e in
            XCTAssertTrue("\(e)".contains("'tokenizer.ggml.pre' is 'deepseek-llm'; supported: smollm"), "\(e)")
        }
        XCTAssertThrowsError(try BPETokenizer(ggufPath: try ggufCopy(.qwen2, pre: "qwen2", model: "llama"))) { e in
            XCTAssertTrue("\(e)".contains("'tokenizer.ggml.model' is 'llama'; only 'gpt2'"), "\(e)")
        }
    }

    // MARK: Writing Hugging Face files

    /// SmolLM2's GGUF tokenizer written as tokenizer.json / tokenizer_config.json: the library
    /// and our reader give the GGUF tokenizer's ids; a family's tokenizer written back reads
    /// back with the same ids, flags and special tokens.
    func testWrittenHuggingFaceFilesReadBack() throws {
        let smol = try BPETokenizer(ggufPath: TokenizerFixture.modelPath)
        let dir = TokenizerFamilies.workDir.appendingPathComponent("smollm2-hf").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try smol.writeHuggingFaceFiles(directory: dir)
        let t0 = Date()
        let back = try BPETokenizer(huggingFaceDirectory: dir)
        print(String(format: "tokenizer.json of %d tokens and %d merges read in %.2f s", back.vocabSize,
                     back.mergePairs.count, Date().timeIntervalSince(t0)))
        XCTAssertEqual(back.vocabSize, smol.vocabSize)
        XCTAssertEqual([back.bos, back.eos, back.pad, back.unk], [smol.bos, smol.eos, smol.pad, smol.unk])
        XCTAssertEqual(smol.unk, 0, "SmolLM2's tokenizer.ggml.unknown_token_id")
        XCTAssertEqual(back.chatFormat, smol.chatFormat)
        XCTAssertEqual(back.ggufPreTokenizer, "smollm")
        let texts = TokenizerTests.trickyStrings + Self.randomTexts(count: 150, seed: 8)
            + (try TokenizerFixture.stdlibFiles().prefix(15).map(TokenizerFixture.readText))
        for special in [false, true] {
            let library = try TokenizerFamilies.reference(dir + "/tokenizer.json", texts.map { .encode($0, special: special) },
                                                          as: [Int32].self)
            var failures = 0
            for (text, ref) in zip(texts, library) {
                let want = smol.encode(text, allowSpecial: special)
                if want != ref || back.encode(text, allowSpecial: special) != want {
                    failures += 1
                    if failures <= 5 { XCTFail("special=\(special) \(String(reflecting: String(text.prefix(80)))): "
                                               + firstDifference(want, ref)) }
                }
            }
            XCTAssertEqual(failures, 0)
        }

        for f in Family.allCases {
            let tok = try TokenizerFamilies.tokenizer(f)
            let out = TokenizerFamilies.workDir.appendingPathComponent("\(f)-rewritten").path
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try tok.writeHuggingFaceFiles(directory: out)
            let again = try BPETokenizer(huggingFaceDirectory: out)
            XCTAssertEqual(again.addedTokens, tok.addedTokens)
            XCTAssertEqual([again.bos, again.eos, again.pad, again.unk], [tok.bos, tok.eos, tok.pad, tok.unk])
            XCTAssertEqual(again.stopTokens, tok.stopTokens, "\(f): generation_config.json's eos_token_id list")
            XCTAssertEqual(again.addsBOS, tok.addsBOS)
            XCTAssertEqual(again.chatFormat, tok.chatFormat)
            XCTAssertEqual(again.ggufPreTokenizer, tok.ggufPreTokenizer)
            for text in Self.randomTexts(count: 150, seed: 31) + Self.specialStrings {
                for special in [false, true] {
                    XCTAssertEqual(again.encode(text, allowSpecial: special), tok.encode(text, allowSpecial: special), "\(f)")
                }
            }
        }
    }

    // MARK: Special ids and chat formats

    func testSpecialIDsFromConfigFiles() throws {
        let llama = try TokenizerFamilies.tokenizer(.llama3)
        func id(_ t: BPETokenizer, _ s: String) throws -> Int32 { try XCTUnwrap(t.id(of: s), s) }
        XCTAssertEqual(llama.bos, try id(llama, "<|begin_of_text|>"))
        XCTAssertEqual(llama.eos, try id(llama, "<|eot_id|>"))
        XCTAssertNil(llama.pad)
        XCTAssertEqual(llama.stopTokens, [try id(llama, "<|eot_id|>"), try id(llama, "<|end_of_text|>")])
        XCTAssertTrue(llama.addsBOS, "the TemplateProcessing post-processor starts with <|begin_of_text|>")
        XCTAssertTrue(llama.isSpecial(try id(llama, "<|eot_id|>")))
        XCTAssertEqual(llama.encodePrompt("def f"), [try id(llama, "<|begin_of_text|>")] + llama.encode("def f"))

        let qwen = try TokenizerFamilies.tokenizer(.qwen2)
        XCTAssertNil(qwen.bos, "tokenizer_config.json: bos_token null")
        XCTAssertEqual(qwen.eos, try id(qwen, "<|im_end|>"), "an AddedToken object")
        XCTAssertEqual(qwen.pad, try id(qwen, "<|endoftext|>"))
        XCTAssertEqual(qwen.stopTokens, [try id(qwen, "<|im_end|>"), try id(qwen, "<|endoftext|>")])
        XCTAssertFalse(qwen.addsBOS)
        XCTAssertEqual(qwen.encodePrompt("def f"), qwen.encode("def f"))
        XCTAssertEqual(qwen.normalizer, .nfc)
        let file = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: try TokenizerFamilies.tokenizerJSON(.qwen2)))) as? [String: Any])
        let modelVocab = try XCTUnwrap((file["model"] as? [String: Any])?["vocab"] as? [String: Any])
        XCTAssertEqual(qwen.vocabSize, modelVocab.count + (try XCTUnwrap(file["added_tokens"] as? [Any])).count)

        // Without tokenizer_config.json / generation_config.json: EOS by the conventional name.
        let bare = try BPETokenizer(tokenizerJSON: try TokenizerFamilies.tokenizerJSON(.qwen2))
        XCTAssertEqual(bare.eos, try id(bare, "<|endoftext|>"))
        XCTAssertNil(bare.bos)
        XCTAssertEqual(bare.stopTokens, [bare.eos])
    }

    func testChatFormatsByFamily() throws {
        let llama = try TokenizerFamilies.tokenizer(.llama3)
        XCTAssertEqual(llama.chatFormat, .llama3)
        let messages: [(role: String, content: String)] = [("system", "Be brief."), ("user", " Hello! ")]
        XCTAssertEqual(try llama.requireChatFormat().prompt(messages: messages, addGenerationPrompt: true),
                       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                       + "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
                       + "<|start_header_id|>assistant<|end_header_id|>\n\n")
        let ids = ChatFormat.llama3.encode(messages: [("user", "Hi")], addGenerationPrompt: true, tokenizer: llama)
        let header = [try XCTUnwrap(llama.id(of: "<|begin_of_text|>")), try XCTUnwrap(llama.id(of: "<|start_header_id|>"))]
        XCTAssertEqual(Array(ids.prefix(2)), header)
        XCTAssertEqual(ChatFormat.llama3.stopTokens(llama), llama.stopTokens)

        let qwen = try TokenizerFamilies.tokenizer(.qwen2)
        let system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        XCTAssertEqual(qwen.chatFormat, .chatML(defaultSystem: system))
        XCTAssertEqual(try qwen.requireChatFormat().prompt(messages: [("user", "Hi")], addGenerationPrompt: true),
                       "<|im_start|>system\n\(system)<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(ChatFormat.chatML(defaultSystem: system).stopTokens(qwen), qwen.stopTokens)

        // SmolLM2's GGUF: ChatML with its default system prompt, as `ChatML` writes it.
        let smol = try BPETokenizer(ggufPath: TokenizerFixture.modelPath)
        XCTAssertEqual(smol.chatFormat, .chatML(defaultSystem: ChatML.defaultSystemPrompt))
        XCTAssertEqual(try smol.requireChatFormat().prompt(messages: messages, addGenerationPrompt: true),
                       ChatML.prompt(messages: messages, addGenerationPrompt: true))
        XCTAssertEqual(ChatFormat.chatML(defaultSystem: nil).stopTokens(smol),
                       Set([smol.eos, try XCTUnwrap(smol.id(of: ChatML.imEnd))]))

        // No known format: an error, not a guess.
        let plain = try BPETokenizer(tokens: ["a", "b", "ab", "<eos>"], merges: ["a b"], tokenTypes: [1, 1, 1, 3],
                                     bos: nil, eos: 3)
        XCTAssertNil(plain.chatFormat)
        XCTAssertThrowsError(try plain.requireChatFormat()) { e in
            XCTAssertTrue("\(e)".contains("chat format is not known"), "\(e)")
        }
        let otherTemplate = try BPETokenizer(tokens: ["a", "<|im_start|>", "<|im_end|>"], merges: [], tokenTypes: [1, 3, 3],
                                             bos: nil, eos: 2, chatTemplate: "{{ '[INST]' + m + '[/INST]' }}")
        XCTAssertNil(otherTemplate.chatFormat, "a template in another format is not read as ChatML")
    }

    // MARK: Refusals and wiring

    /// Writes a copy of the Qwen2-style tokenizer.json with `edit` applied.
    func editedCopy(_ name: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let path = try TokenizerFamilies.tokenizerJSON(.qwen2)
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        edit(&root)
        let out = TokenizerFamilies.workDir.appendingPathComponent(name + ".json")
        try JSONSerialization.data(withJSONObject: root).write(to: out)
        return out.path
    }

    func testUnsupportedFieldsAreRefusedByName() throws {
        func model(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { root in
                var m = root["model"] as! [String: Any]
                m[key] = value
                root["model"] = m
            }
        }
        let cases: [(String, (inout [String: Any]) -> Void, [String])] = [
            ("wordpiece", model("type", "WordPiece"), ["model.type", "WordPiece", "BPE"]),
            ("unigram", model("type", "Unigram"), ["model.type", "Unigram"]),
            ("dropout", model("dropout", 0.1), ["model.dropout"]),
            ("prefix", model("continuing_subword_prefix", "##"), ["model.continuing_subword_prefix"]),
            ("metaspace", { $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁"] },
             ["pre_tokenizer.type", "Metaspace", "ByteLevel"]),
            ("regex", { root in
                var pt = root["pre_tokenizer"] as! [String: Any]
                var list = pt["pretokenizers"] as! [[String: Any]]
                list[0]["pattern"] = ["Regex": "\\w+|[^\\w\\s]+"]
                pt["pretokenizers"] = list
                root["pre_tokenizer"] = pt
            }, ["pre_tokenizer.pretokenizers[0].pattern.Regex", "\\\\w+", "Llama-3"]),
            ("no-bytelevel", { $0["pre_tokenizer"] = ["type": "Digits", "individual_digits": true] },
             ["pre_tokenizer", "ByteLevel"]),
            ("lowercase", { $0["normalizer"] = ["type": "Lowercase"] }, ["normalizer.type", "Lowercase", "NFC"]),
            ("nfkc-in-sequence", { $0["normalizer"] = ["type": "Sequence", "normalizers": [["type": "NFKC"]]] },
             ["normalizer.normalizers[0].type", "NFKC"]),
            ("decoder", { $0["decoder"] = ["type": "WordPiece", "prefix": "##"] }, ["decoder.type", "WordPiece"]),
            ("post", { $0["post_processor"] = ["type": "BertProcessing"] }, ["post_processor.type", "BertProcessing"]),
            ("unknown-key", { $0["extra_field"] = 1 }, ["extra_field"]),
        ]
        for (name, edit, needles) in cases {
            let p = try editedCopy(name, edit)
            XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: p), name) { e in
                let text = "\(e)"
                XCTAssertTrue(text.hasPrefix(p + ":"), "\(name): names the file: \(text)")
                for n in needles { XCTAssertTrue(text.contains(n), "\(name): \(text) lacks \(n)") }
            }
        }
        // Accepted: a Sequence normalizer of NFC, and the string form of a Split pattern.
        XCTAssertNoThrow(try BPETokenizer(tokenizerJSON: try editedCopy("nfc-sequence") {
            $0["normalizer"] = ["type": "Sequence", "normalizers": [["type": "NFC"]]]
        }))
    }

    /// A Hugging Face directory is read with its own tokenizer.json; one without it is an error,
    /// except a training checkpoint without tokenizer files (SmolLM2's, with a warning).
    func testTokenizerOfAModelPath() throws {
        let dir = TokenizerFamilies.workDir.appendingPathComponent("hfdir").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        XCTAssertThrowsError(try BPETokenizer.forModel(at: dir)) { e in
            XCTAssertEqual("\(e)", "\(dir): no tokenizer.json: a Hugging Face model directory must carry its tokenizer "
                           + "(tokenizer.json, with tokenizer_config.json); copy them from the model's original directory")
        }
        for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            try FileManager.default.copyItem(atPath: try TokenizerFamilies.directory(.llama3) + "/" + f, toPath: dir + "/" + f)
        }
        let tok = try BPETokenizer.forModel(at: dir)
        XCTAssertEqual(tok.vocabSize, try TokenizerFamilies.tokenizer(.llama3).vocabSize)
        XCTAssertEqual(tok.chatFormat, .llama3)
        XCTAssertThrowsError(try tok.checkFits(modelVocabulary: tok.vocabSize - 1, model: dir)) { e in
            XCTAssertTrue("\(e)".contains("does not belong to this model"), "\(e)")
        }
        XCTAssertNoThrow(try tok.checkFits(modelVocabulary: tok.vocabSize + 100, model: dir))

        let checkpoint = TokenizerFamilies.workDir.appendingPathComponent("step-1").path
        try FileManager.default.createDirectory(atPath: checkpoint, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: checkpoint + "/config.json"))
        try Data("{}".utf8).write(to: URL(fileURLWithPath: checkpoint + "/" + CheckpointFiles.stateFile))
        var warnings: [String] = []
        let smol = try BPETokenizer.forModel(at: checkpoint, log: { warnings.append($0) })
        XCTAssertEqual(smol.vocabSize, try BPETokenizer(ggufPath: TokenizerFixture.modelPath).vocabSize)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings.first?.contains("carries no tokenizer.json") ?? false, "\(warnings)")
    }

    // MARK: Throughput (a measurement, not a test: opt-in like the model benchmark)

    /// Prints our encoder's and the `tokenizers` library's throughput on the stdlib sources;
    /// asserts nothing, so it runs only with EBFT_BENCH=1.
    func testEncodeThroughputAgainstLibrary() throws {
        guard ProcessInfo.processInfo.environment["EBFT_BENCH"] == "1" else {
            throw XCTSkip("set EBFT_BENCH=1 to measure tokenizer.json throughput against the library")
        }
        let texts = try TokenizerFixture.stdlibFiles().map(TokenizerFixture.readText)
        let mb = Double(texts.reduce(0) { $0 + $1.utf8.count }) / 1e6
        for f in Family.allCases {
            let tok = try TokenizerFamilies.tokenizer(f)
            var best = Double.infinity
            var tokens = 0
            for _ in 0..<3 {
                let t0 = Date()
                tokens = texts.reduce(0) { $0 + tok.encode($1).count }
                best = min(best, Date().timeIntervalSince(t0))
            }
            let lib = try TokenizerFamilies.reference(try TokenizerFamilies.tokenizerJSON(f), [.time(texts, repeat: 3)],
                                                      as: Double.self)[0]
            print(String(format: "tokenizer.json throughput (%@, stdlib %.2f MB, %d tokens): ours %.2f MB/s, "
                         + "tokenizers library %.2f MB/s (best of 3, one thread each)", f.rawValue, mb, tokens,
                         mb / best, mb / lib))
        }
    }

    // MARK: Random text

    /// Random valid UTF-8 built from fragments: words with contractions in any case (and ſ),
    /// numbers of several scripts, whitespace runs (\r\n, tabs, U+3000, NBSP, U+2028, NEL),
    /// punctuation, many scripts, combining marks in any order and Hangul jamo (NFC composes and
    /// reorders them), emoji sequences, the added tokens' texts, whole vocabulary words, and
    /// scalars from the whole range (those assigned after Unicode 16 left out).
    static func randomTexts(count: Int, seed: UInt64) -> [String] {
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ a: [T]) -> T { a[Int.random(in: 0..<a.count, using: &rng)] }
        func scalars(_ r: ClosedRange<UInt32>, _ n: ClosedRange<Int>) -> String {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: n, using: &rng) {
                if let c = Unicode.Scalar(UInt32.random(in: r, using: &rng)) { s.append(c) }
            }
            return String(s)
        }
        let words = ["the", "The", "THE", "def", "return", "self", "import", "x", "naïve", "Straße", "données",
                     "qwertyuiop", "unbelievablyzz", "zyxwvut", "café", "I", "you", "they"]
        let contractions = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL",
                            "'d", "'D", "'\u{17F}", "'x", "'", "''", "'ss"]
        let spaces = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\u{3000}", "\u{A0}",
                      "\u{2028}", "\u{85}", "\u{0B}", "\u{0C}", "\u{2003}", "\u{1680}", "        "]
        let specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "<mask>", " <mask> ",
                        "cafe\u{301}", "<|im_", "<mask", "(((", " (((", "        return"]
        let scripts: [ClosedRange<UInt32>] = [0x61...0x7A, 0x41...0x5A, 0x3B1...0x3C9, 0x410...0x44F, 0x5D0...0x5EA,
                                              0x627...0x64A, 0x905...0x939, 0xE01...0xE30, 0x3041...0x3096,
                                              0x4E00...0x9FFF, 0xAC00...0xD7A3, 0x10A0...0x10FF, 0x1E00...0x1EFF]
        let numbers: [ClosedRange<UInt32>] = [0x30...0x39, 0x660...0x669, 0xFF10...0xFF19, 0x966...0x96F,
                                              0xBD...0xBE, 0x2160...0x216F, 0x2460...0x2473]
        let emoji = ["😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🏳️‍🌈", "1️⃣", "\u{FE0F}", "\u{200D}"]
        return (0..<count).map { _ in
            var text = ""
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                switch Int.random(in: 0..<13, using: &rng) {
                case 0, 1: text += pick(words)
                case 2: text += pick(words) + pick(contractions)
                case 3, 4: text += pick(spaces)
                case 5: text += scalars(pick(numbers), 1...7)
                case 6: text += scalars(0x21...0x2F, 1...4) + scalars(0x3A...0x40, 0...2)
                case 7: text += scalars(pick(scripts), 1...8)
                case 8:  // a letter with combining marks in random order (NFC composes / reorders)
                    text += scalars(0x61...0x7A, 1...1) + scalars(0x300...0x36F, 1...3)
                case 9:  // conjoining Hangul jamo: L V (T)
                    text += scalars(0x1100...0x1112, 1...1) + scalars(0x1161...0x1175, 1...1)
                        + scalars(0x11A8...0x11C2, 0...1)
                case 10: text += pick(emoji)
                case 11: text += pick(specials)
                default:
                    var s = String.UnicodeScalarView()
                    for _ in 0..<Int.random(in: 1...4, using: &rng) {
                        if let c = Unicode.Scalar(UInt32.random(in: 0...0x10FFFF, using: &rng)),
                           (c.properties.age?.major ?? 0) <= 16 { s.append(c) }
                    }
                    text += String(s)
                }
            }
            return text
        }
    }
}
