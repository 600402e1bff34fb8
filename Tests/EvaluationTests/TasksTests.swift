import XCTest
import Foundation
@testable import Evaluation

final class TranslationPairsTests: XCTestCase {
    func testCleaningRules() {
        let c = TranslationPairs.clean
        XCTAssertEqual(c("Aal {m} (auf der Speisekarte) [cook.]"), "Aal")
        XCTAssertEqual(c("Das ist nur scheinbar paradox."), "Das ist nur scheinbar paradox.")
        XCTAssertEqual(c("gym kit [Br.]; sports kit [Br.]"), "gym kit")
        XCTAssertEqual(c("to think/consider yourself too good"), "to think yourself too good")
        XCTAssertEqual(c("to overtake / pass within a limit"), "to overtake within a limit")
        XCTAssertEqual(c("\"No Overtaking\" [Br.]; \"No Passing\" (road sign / signboard)"), "No Overtaking")
        XCTAssertEqual(c("Er ist (sehr (wirklich)) müde ."), "Er ist müde.")
        XCTAssertEqual(c("Ausrüstung {f}; Utensilien {pl}"), "Ausrüstung")
        XCTAssertEqual(c("Kanada <Kanada> {n} [geogr.]"), "Kanada")
        XCTAssertEqual(c("  many   spaces  here , ok  "), "many spaces here, ok")
        XCTAssertEqual(c("He is in/at home."), "He is in home.")
    }

    func testAlignmentAndFilters() {
        let text = """
        # Version :: devel
        scheinbar {adv} | Das ist nur scheinbar paradox. :: seemingly | This is only seemingly a paradox.
        Wort {n} | Worte {pl} | Ich habe das letzte Wort. :: word | words
        sich für etw. zu schade sein {vr} | Er will es tun, aber er kann nicht. :: to think yourself too good for sth. | He wants to do it, but he cannot.
        Hund {m} | Der Hund bellt laut. :: dog | The dog barks loudly.
        Hund {m} | Der Hund bellt laut. :: hound | The hound bays loudly.
        Katze {f} | Die Katze schläft ... :: cat | The cat sleeps ...
        jdn. etw. fragen | Kann ich jdn. etw. fragen? :: to ask sb. sth. | Can I ask sb. sth.?
        klein | kleines Haus in der Stadt :: small | small house in the town
        Typ {m} | So ein Typ vom Büro / Einer vom Büro hat angerufen. :: bloke | Some bod from the office rang.
        Eis {n} | Verweilen auf dem Eis/in der Ladezone verboten! (Schild) :: ice | No loitering on the ice! (sign)
        """
        let pairs = TranslationPairs.parse(dictionary: text)
        XCTAssertFalse(pairs.contains { $0.key.contains("Büro") || $0.key.contains("Eis") })
        XCTAssertEqual(pairs.map(\.key), ["Das ist nur scheinbar paradox.", "Er will es tun, aber er kann nicht.", "Der Hund bellt laut."])
        XCTAssertEqual(pairs[0].question, "German: Das ist nur scheinbar paradox.\nEnglish:")
        XCTAssertEqual(pairs[0].answer, " This is only seemingly a paradox.")
        XCTAssertEqual(pairs[2].answer, " The dog barks loudly.", "first occurrence wins on duplicates")
        // Without the sentence requirement the phrase is kept (≥ 4 words both sides).
        let loose = TranslationPairs.parse(dictionary: text, options: .init(requireSentence: false))
        XCTAssertTrue(loose.contains { $0.key == "kleines Haus in der Stadt" })
        XCTAssertFalse(loose.contains { $0.key.contains("jdn.") })
        // Slash alternatives: dropped by default; with the option off the first word is kept.
        let slashes = TranslationPairs.parse(dictionary: text, options: .init(dropSlashAlternatives: false))
        XCTAssertTrue(slashes.contains { $0.key == "So ein Typ vom Büro vom Büro hat angerufen." })
        XCTAssertTrue(slashes.contains { $0.key == "Verweilen auf dem Eis der Ladezone verboten!" && $0.answer == " No loitering on the ice!" })
        XCTAssertTrue(TranslationPairs.parse(dictionary: text, options: .init(minWords: 6)).allSatisfy { $0.key.split(separator: " ").count >= 6 })
    }

    func testRealDictionarySplitIsDeterministicAndDisjoint() throws {
        guard FileManager.default.fileExists(atPath: TranslationPairs.defaultPath) else {
            return XCTFail("\(TranslationPairs.defaultPath) missing: run scripts/install-deps.sh (apt trans-de-en)")
        }
        let a = try TranslationPairs.load()
        // Deterministic: the split of the same pairs in another order puts each pair on the same side.
        let again = splitByHash((a.train + a.test).reversed(), testFraction: 0.05)
        XCTAssertEqual(Set(again.test), Set(a.test))
        XCTAssertEqual(Set(again.train), Set(a.train))
        let trainKeys = Set(a.train.map(\.key)), testKeys = Set(a.test.map(\.key))
        XCTAssertTrue(trainKeys.isDisjoint(with: testKeys))
        XCTAssertEqual(trainKeys.count, a.train.count, "deduplicated")
        XCTAssertGreaterThan(a.train.count, 5000)
        XCTAssertGreaterThan(a.test.count, 200)
        let frac = Double(a.test.count) / Double(a.train.count + a.test.count)
        XCTAssertEqual(frac, 0.05, accuracy: 0.01)
        for p in a.train.prefix(2000) + a.test {
            XCTAssertFalse(p.key.contains("{") || p.key.contains("[") || p.key.contains("(") || p.key.contains("|"), p.key)
            XCTAssertFalse(p.answer.contains("{") || p.answer.contains("[") || p.answer.contains(";"), p.answer)
        }
        // The split is by hash of the German text: membership never depends on the other items.
        for p in a.test.prefix(50) { XCTAssertEqual(splitByHash([p], testFraction: 0.05).test, [p]) }
        print("translation pairs: train \(a.train.count), test \(a.test.count); e.g. \(a.test[0].question)\(a.test[0].answer)")
        XCTAssertThrowsError(try TranslationPairs.load(path: "/nonexistent/de-en")) { e in
            XCTAssertTrue((e as? LocalizedError)?.errorDescription?.contains("trans-de-en") ?? false)
        }
        XCTAssertThrowsError(try TranslationPairs.load(options: .init(minWords: 0)))
    }

    func testHypothesisCleaning() {
        let c = TranslationPairs.cleanHypothesis
        XCTAssertEqual(c(" The dog barks.\nGerman: Der Hund"), "The dog barks.")
        XCTAssertEqual(c("\n\n  Translation: \"The dog barks.\"  \n"), "The dog barks.")
        XCTAssertEqual(c("English: Answer: I am tired."), "I am tired.")
        XCTAssertEqual(c("\"Quoted\" words stay \"here\""), "\"Quoted\" words stay \"here\"")
        XCTAssertEqual(c("„Ein Satz.“"), "Ein Satz.")
        XCTAssertEqual(c(""), "")
    }

    func testFNV1a() {
        XCTAssertEqual(fnv1a64(""), 0xcbf2_9ce4_8422_2325)
        XCTAssertEqual(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c)
        XCTAssertEqual(fnv1a64("foobar"), 0x8594_4171_f739_67e8)
    }
}

final class QACodePairsTests: XCTestCase {
    static let fixture = #"""
    import os

    @decorator
    def documented(a, b=(1, 2),
                   c="x#y"):  # trailing comment
        """Add things.

        Longer description with a "quote" and 'single' ones.
        """
        # leading comment
        total = a + b[0]
        text = """
    not indented inside a string
    """
        return total

    # a comment between functions
    def no_docstring(x):
        return x

    async def fetch(url):
        r'''Fetch *url*.'''
        return await get(url)

    def one_liner(): return 1

    def doc_only():
        """Nothing else."""

    class K:
        def method(self):
            """Methods are not top-level."""
            return 1

    def last(x):
        'single-quoted docstring is not a triple-quoted stub'
        return x

    def tail(x):
        """Tail."""
        if x:
    # column-0 comment inside the body
            return 1
        return 2
    # trailing comment
    """#

    func testExtractionOnFixture() {
        let fs = QACodePairs.extractFunctions(source: Self.fixture)
        XCTAssertEqual(fs.map(\.name), ["documented", "fetch", "tail"])
        XCTAssertEqual(fs[0].question, """
        @decorator
        def documented(a, b=(1, 2),
                       c="x#y"):  # trailing comment
            \"\"\"Add things.

            Longer description with a "quote" and 'single' ones.
            \"\"\"

        """)
        XCTAssertEqual(fs[0].answer, "    # leading comment\n    total = a + b[0]\n    text = \"\"\"\nnot indented inside a string\n\"\"\"\n    return total\n")
        XCTAssertEqual(fs[1].question, "async def fetch(url):\n    r'''Fetch *url*.'''\n")
        XCTAssertEqual(fs[1].answer, "    return await get(url)\n")
        XCTAssertEqual(fs[2].answer, "    if x:\n# column-0 comment inside the body\n        return 1\n    return 2\n")
        XCTAssertEqual(fs[0].line, 4)
    }

    /// Cross-check the Swift scanner against Python's ast on every stdlib file we read: same functions, and question + answer reproduce the source lines.
    func testExtractionAgreesWithPythonAST() throws {
        let files = try QACodePairs.pythonFiles(under: QACodePairs.defaultRoot)
        XCTAssertGreaterThan(files.count, 500)
        XCTAssertFalse(files.contains { $0.contains("/test/") || $0.contains("/tests/") || $0.contains("/idle_test/") })
        let sample = files
        let script = #"""
        import ast, json, sys
        out = {}
        for path in json.load(sys.stdin):
            try:
                src = open(path, encoding="utf-8").read()
                tree = ast.parse(src)
            except Exception:
                continue
            lines = src.split("\n")
            fs = []
            for node in tree.body:
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                b = node.body
                if not (b and isinstance(b[0], ast.Expr) and isinstance(b[0].value, ast.Constant)
                        and isinstance(b[0].value.value, str) and len(b) > 1):
                    continue
                first = node.decorator_list[0].lineno - 1 if node.decorator_list else node.lineno - 1
                doc_end = b[0].end_lineno
                if b[0].lineno == node.lineno:   # docstring on the def line: not a stub
                    continue
                q = "".join(l + "\n" for l in lines[first:doc_end])
                a = "".join(l + "\n" for l in lines[doc_end:node.end_lineno])
                fs.append({"name": node.name, "question": q, "answer": a})
            out[path] = fs
        print(json.dumps(out))
        """#
        let data = try PythonOracle.run(script, input: try JSONSerialization.data(withJSONObject: sample))
        let expected = try JSONDecoder().decode([String: [[String: String]]].self, from: data)
        XCTAssertGreaterThan(expected.count, 50)
        var compared = 0, mismatches: [String] = []
        for (path, fs) in expected.sorted(by: { $0.key < $1.key }) {
            let src = try String(contentsOfFile: path, encoding: .utf8)
            let ours = QACodePairs.extractFunctions(source: src)
                .filter { !$0.question.split(separator: "\n").isEmpty }
            // Python's triple-quoted docstrings only (ours requires them): drop the others.
            let theirs = fs.filter { f in
                let q = f["question"]!
                return q.contains("\"\"\"") || q.contains("'''")
            }
            let oursByName = Dictionary(ours.map { ($0.name + "@" + $0.question, $0) }, uniquingKeysWith: { a, _ in a })
            for f in theirs {
                compared += 1
                guard let o = oursByName[f["name"]! + "@" + f["question"]!] else {
                    mismatches.append("\(path): missing \(f["name"]!)")
                    continue
                }
                if o.answer != f["answer"]! { mismatches.append("\(path): \(f["name"]!) body differs") }
            }
            if ours.count != theirs.count {
                mismatches.append("\(path): ours \(ours.map(\.name)) vs ast \(theirs.map { $0["name"]! })")
            }
        }
        XCTAssertGreaterThan(compared, 200)
        XCTAssertEqual(mismatches, [], "\(mismatches.count) mismatches out of \(compared)")
    }

    func testRealStdlibPairs() throws {
        let excluded = try QACodePairs.humanEvalEntryPoints()
        XCTAssertEqual(excluded, Set(try HumanEval.load().map(\.entryPoint)))
        XCTAssertTrue(excluded.contains("has_close_elements"))
        let a = try QACodePairs.load()  // excludes the HumanEval entry points by default
        let again = splitByHash((a.train + a.test).reversed(), testFraction: 0.05)
        XCTAssertEqual(Set(again.test), Set(a.test), "split by content hash")
        XCTAssertGreaterThan(a.train.count, 1000)
        XCTAssertGreaterThan(a.test.count, 50)
        let all = a.train + a.test
        XCTAssertEqual(Set(all.map(\.question)).count, all.count)
        XCTAssertEqual(Set(all.map(\.answer)).count, all.count)
        XCTAssertTrue(Set(a.train.map(\.key)).isDisjoint(with: Set(a.test.map(\.key))))
        for p in all {
            let defLine = p.question.split(separator: "\n").first { $0.hasPrefix("def ") || $0.hasPrefix("async def ") }!
            let name = defLine.split(separator: " ").dropFirst(defLine.hasPrefix("async") ? 2 : 1).first!.prefix { $0 != "(" }
            XCTAssertFalse(excluded.contains(String(name)), "HumanEval entry point \(name) leaked")
        }
        // Excluding a name actually removes it.
        XCTAssertTrue(all.contains { $0.question.contains("def dedent(") })
        let without = try QACodePairs.load(options: .init(excludedNames: ["dedent"]))
        XCTAssertFalse((without.train + without.test).contains { $0.question.contains("def dedent(") })
        // The stdlib does define functions named like HumanEval entry points (statistics.median,
        // enum.unique, operator.add, base64.encode, …): they come through only without the exclusion.
        let unfiltered = try QACodePairs.load(options: .init(excludeHumanEvalEntryPoints: false))
        let unfilteredAll = unfiltered.train + unfiltered.test
        XCTAssertGreaterThan(unfilteredAll.count, all.count)
        for name in ["median", "unique"] {
            XCTAssertTrue(unfilteredAll.contains { $0.question.contains("def \(name)(") }, name)
            XCTAssertFalse(all.contains { $0.question.contains("def \(name)(") }, name)
        }
        print("qa-code pairs: train \(a.train.count), test \(a.test.count)")
        XCTAssertThrowsError(try QACodePairs.load(root: "/nonexistent/python3.11")) { e in
            XCTAssertTrue((e as? LocalizedError)?.errorDescription?.contains("libpython3.11-stdlib") ?? false)
        }
    }
}
