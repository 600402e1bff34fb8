import XCTest
@testable import Evaluation

final class BLEUTests: XCTestCase {
    /// (hypothesis, reference): punctuation, numbers, casing, entities, markup, Unicode, empties.
    static let pairs: [(String, String)] = [
        ("The cat sat on the mat.", "The cat sat on the mat."),
        ("the cat is on the mat", "The cat sat on the mat."),
        ("It costs $3.50, not 3,000 euros!", "It costs $3.50 and not 3,000 euros."),
        ("We met in 1999-2001 (roughly).", "We met between 1999 and 2001, roughly."),
        ("", "This reference has no hypothesis."),
        ("Hello", "Hello, world!"),
        ("", ""),
        ("He said: \"Go home\"; she didn't.", "He said \"go home\", but she did not."),
        ("A.B.C. is an acronym, e.g. U.S.A.", "ABC is an acronym, for example USA."),
        ("Tom &amp; Jerry &lt;3 &quot;cartoons&quot;", "Tom & Jerry <3 \"cartoons\""),
        ("<skipped> part of the sentence", "part of the sentence"),
        ("a well-\nknown fact\nindeed", "a well-known fact indeed"),
        ("Die Straße ist naß — „sehr“ nass.", "The street is wet — \"very\" wet."),
        ("Café crème costs 4,50 €.", "Café crème costs €4.50."),
        ("   leading and trailing spaces   ", "leading and trailing spaces"),
        ("tabs\tand\u{00A0}non-breaking spaces", "tabs and non-breaking spaces"),
        ("THE QUICK BROWN FOX", "the quick brown fox"),
        ("The quick brown fox jumps over the lazy dog.", "A quick brown fox jumped over a lazy dog."),
        ("I have 2-3 apples, 4.5 pears and 1,000,000 grapes.", "I have two or three apples, 4.5 pears, and a million grapes."),
        ("email me at john@example.com / call +1-555-0100", "Email me at john@example.com or call +1-555-0100."),
        ("{braces} [brackets] `ticks` ~tilde~ |pipes|", "braces brackets ticks tilde pipes"),
        ("Wait... what?!", "Wait... what?!"),
        ("x", "y"),
        ("the the the the the the the", "the cat is on the mat"),
        ("Ende.", "End."),
        ("It was 3.14159 or so, i.e., pi.", "It was about 3.14159, that is, pi."),
        ("Zürich, Genève and Lugano are Swiss cities.", "Zurich, Geneva and Lugano are cities in Switzerland."),
        ("He arrived at 10.30pm.", "He arrived at 10:30 pm."),
        ("This is a much longer hypothesis than the reference it is compared with, really.", "Short reference."),
        ("Numbers: 1.2.3, 4,5,6, 7-8-9.", "Numbers: 1.2.3, 4,5,6, 7-8-9."),
        ("No, no, no.", "Yes, yes, yes."),
        ("Emoji 🙂 and combining é vs é.", "Emoji 🙂 and combining é vs é."),
    ]

    struct Oracle: Decodable {
        let corpus: Double
        let sentences: [Double]
        let tokenized: [String]
        let degenerate: [String: Double]
        let corpusNone: Double
    }

    static func oracle() throws -> Oracle {
        let input: [String: Any] = [
            "hyps": pairs.map(\.0),
            "refs": pairs.map(\.1),
        ]
        let script = """
        import sys, json, sacrebleu
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
        d = json.load(sys.stdin)
        h, r = d["hyps"], d["refs"]
        tok = Tokenizer13a()
        out = {
          "corpus": sacrebleu.corpus_bleu(h, [r]).score,
          "corpusNone": sacrebleu.corpus_bleu(h, [r], smooth_method="none").score,
          "sentences": [sacrebleu.sentence_bleu(a, [b]).score for a, b in zip(h, r)],
          "tokenized": [tok(s.rstrip()) for s in h + r],
          "degenerate": {
            "allEmpty": sacrebleu.corpus_bleu(["", ""], [["a b c", "d e"]]).score,
            "noMatch": sacrebleu.corpus_bleu(["x y z"], [["a b c"]]).score,
            "short": sacrebleu.corpus_bleu(["a b"], [["a b c d e"]]).score,
            "shortSentence": sacrebleu.sentence_bleu("a b", ["a b c d e"]).score,
            "noFourGram": sacrebleu.corpus_bleu(["a b c d x f"], [["a b c q d x f"]]).score,
            "identical": sacrebleu.corpus_bleu(["a b c d e"], [["a b c d e"]]).score,
            "multiRef": sacrebleu.corpus_bleu(["the cat sat on a mat", "hello there world"], [["the cat sat on the mat", "hello world"], ["a cat sat on a mat", "hello there"]]).score,
          },
        }
        print(json.dumps(out))
        """
        let data = try PythonOracle.run(script, input: try JSONSerialization.data(withJSONObject: input))
        return try JSONDecoder().decode(Oracle.self, from: data)
    }

    func testMatchesSacreBLEU() throws {
        let o = try Self.oracle()
        let hyps = Self.pairs.map(\.0), refs = Self.pairs.map(\.1)

        // Tokenizer first: a mismatch here explains any score mismatch below.
        let ours = (hyps + refs).map { Tokenizer13a.tokenize(Tokenizer13a.rstrip($0)) }
        for (a, b) in zip(ours, o.tokenized) { XCTAssertEqual(a, b) }

        let corpus = try BLEU.corpus(hypotheses: hyps, references: refs)
        XCTAssertEqual(corpus.score, o.corpus, accuracy: 0.01)
        XCTAssertGreaterThan(corpus.score, 5)  // a non-trivial fixture
        let none = try BLEU.corpus(hypotheses: hyps, references: refs, smoothing: .none)
        XCTAssertEqual(none.score, o.corpusNone, accuracy: 0.01)

        for (i, (h, r)) in Self.pairs.enumerated() {
            XCTAssertEqual(BLEU.sentence(hypothesis: h, reference: r).score, o.sentences[i], accuracy: 0.01, "pair \(i): \(h) | \(r)")
        }

        let d = o.degenerate
        XCTAssertEqual(try BLEU.corpus(hypotheses: ["", ""], references: ["a b c", "d e"]).score, d["allEmpty"]!, accuracy: 0.01)
        XCTAssertEqual(try BLEU.corpus(hypotheses: ["x y z"], references: ["a b c"]).score, d["noMatch"]!, accuracy: 0.01)
        XCTAssertEqual(try BLEU.corpus(hypotheses: ["a b"], references: ["a b c d e"]).score, d["short"]!, accuracy: 0.01)
        XCTAssertEqual(BLEU.sentence(hypothesis: "a b", reference: "a b c d e").score, d["shortSentence"]!, accuracy: 0.01)
        XCTAssertEqual(try BLEU.corpus(hypotheses: ["a b c d x f"], references: ["a b c q d x f"]).score, d["noFourGram"]!, accuracy: 0.01)
        XCTAssertEqual(try BLEU.corpus(hypotheses: ["a b c d e"], references: ["a b c d e"]).score, d["identical"]!, accuracy: 0.01)
        XCTAssertEqual(try BLEU.corpus(hypotheses: ["the cat sat on a mat", "hello there world"],
                                       referenceStreams: [["the cat sat on the mat", "hello world"], ["a cat sat on a mat", "hello there"]]).score,
                       d["multiRef"]!, accuracy: 0.01)
    }

    func testTokenizerRules() {
        XCTAssertEqual(Tokenizer13a.tokenize("Hello, world!"), "Hello , world !")
        XCTAssertEqual(Tokenizer13a.tokenize("3.50 and 3,000"), "3.50 and 3,000")
        XCTAssertEqual(Tokenizer13a.tokenize("end."), "end .")
        XCTAssertEqual(Tokenizer13a.tokenize("1999-2001"), "1999 - 2001")
        XCTAssertEqual(Tokenizer13a.tokenize("well-known"), "well-known")
        XCTAssertEqual(Tokenizer13a.tokenize("a &amp; b &lt;c&gt;"), "a & b < c >")
        XCTAssertEqual(Tokenizer13a.tokenize("<skipped>x"), "x")
        XCTAssertEqual(Tokenizer13a.tokenize("hy-\nphen\nnext"), "hyphen next")
    }

    func testScoresAndErrors() throws {
        XCTAssertEqual(try BLEU.corpus(hypotheses: ["a b c d e"], references: ["a b c d e"]).score, 100, accuracy: 1e-9)
        XCTAssertEqual(try BLEU.corpus(hypotheses: [""], references: ["a b"]).score, 0)
        XCTAssertThrowsError(try BLEU.corpus(hypotheses: ["a"], references: ["a", "b"])) {
            XCTAssertEqual($0 as? BLEUError, .lengthMismatch(hypotheses: 1, references: 2))
        }
        XCTAssertThrowsError(try BLEU.corpus(hypotheses: ["a"], referenceStreams: []))
        // Brevity penalty: 4 of 8 reference tokens, all matching → exp(1 − 8/4).
        let s = try BLEU.corpus(hypotheses: ["a b c d"], references: ["a b c d e f g h"])
        XCTAssertEqual(s.brevityPenalty, Foundation.exp(-1.0), accuracy: 1e-12)
        XCTAssertEqual(s.score, 100 * Foundation.exp(-1.0), accuracy: 1e-9)
    }
}
