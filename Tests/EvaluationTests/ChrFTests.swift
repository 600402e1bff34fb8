import XCTest
@testable import Evaluation

/// chrF against sacreBLEU's CHRF() (its defaults: char order 6, no word n-grams, β = 2).
final class ChrFTests: XCTestCase {
    func testCorpusAndSentenceChrFMatchSacreBLEU() throws {
        let pairs = BLEUTests.pairs
        let input = try JSONSerialization.data(withJSONObject: ["hyps": pairs.map(\.0), "refs": pairs.map(\.1)])
        let script = """
        import sys, json
        from sacrebleu.metrics import CHRF
        d = json.load(sys.stdin)
        h, r = d["hyps"], d["refs"]
        m = CHRF()
        out = {"corpus": m.corpus_score(h, [r]).score,
               "sentences": [m.sentence_score(a, [b]).score for a, b in zip(h, r)],
               "half": m.corpus_score(h[::2], [r[::2]]).score}
        print(json.dumps(out))
        """
        let out = try JSONSerialization.jsonObject(with: try PythonOracle.run(script, input: input)) as! [String: Any]
        let corpus = try ChrF.corpus(hypotheses: pairs.map(\.0), references: pairs.map(\.1))
        XCTAssertEqual(corpus, out["corpus"] as! Double, accuracy: 1e-9)
        let half = pairs.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        XCTAssertEqual(try ChrF.corpus(hypotheses: half.map(\.0), references: half.map(\.1)), out["half"] as! Double, accuracy: 1e-9)
        for (i, (p, want)) in zip(pairs, out["sentences"] as! [Double]).enumerated() {
            XCTAssertEqual(try ChrF.corpus(hypotheses: [p.0], references: [p.1]), want, accuracy: 1e-9, "pair \(i): \(p)")
        }
        XCTAssertGreaterThan(corpus, 10)
        XCTAssertLessThan(corpus, 90)
        XCTAssertThrowsError(try ChrF.corpus(hypotheses: ["a"], references: []))
    }
}
