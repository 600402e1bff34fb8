// BLEU as sacreBLEU computes it by default (tokenizer 13a, n-grams 1…4, exp smoothing).
//
// Tokenizer 13a (mteval-v13a):
//   1. remove "<skipped>", join "-\n" line breaks, turn "\n" into " ", and when the line holds
//      "&": unescape &quot; &amp; &lt; &gt; (in that order);
//   2. pad the line with one space on each side, then four rewriting passes, each a
//      left-to-right scan with non-overlapping matches (like Python's re.sub):
//        a. every character in { … ~, [ … `, space … &, ( … +, : … @, / } → " c ";
//        b. a non-digit followed by "." or "," → "x . "   (split unless preceded by a digit);
//        c. "." or "," followed by a non-digit → " . x"   (split unless followed by a digit);
//        d. a digit followed by "-" → "9 - "            (split a dash after a digit);
//   3. split on whitespace (Python's definition of whitespace).
// Each segment is right-stripped before tokenising; "digit" means ASCII 0-9 only.
//
// Scoring (corpus): per segment, the hypothesis length and the reference length closest to it
// (ties → the shorter), clipped n-gram matches (a hypothesis n-gram counts at most as often as
// in the reference that holds it most often) and hypothesis n-gram totals, summed over the
// corpus. BP = exp(1 − r/c) when c < r (0 when c = 0), else 1. If no n-gram of any order
// matches, BLEU = 0. Otherwise for n = 1…4, stopping at the first order with no hypothesis
// n-grams: p_n = correct/total; with 'exp' smoothing (sacreBLEU's default, also for corpus
// BLEU) a zero count gets 1/(2^m · total) where m counts the zero orders so far. Orders not
// reached keep p_n = 0, which makes the score 0 unless `effectiveOrder` (sentence BLEU) limits
// the geometric mean to the orders reached. Score = 100 · BP · exp(mean log p_n).
import Foundation

public enum BLEUError: Error, LocalizedError, Equatable {
    case lengthMismatch(hypotheses: Int, references: Int)
    case noReferences

    public var errorDescription: String? {
        switch self {
        case .lengthMismatch(let h, let r):
            return "BLEU needs one reference per hypothesis: \(h) hypotheses but \(r) references"
        case .noReferences:
            return "BLEU needs at least one reference stream"
        }
    }
}

public enum BLEUSmoothing: Sendable, Equatable {
    /// No smoothing: a zero precision makes the score 0.
    case none
    /// NIST/mteval "exp" smoothing (sacreBLEU's default).
    case exp
    /// Zero counts replaced by `value` (Chen & Cherry method 1; sacreBLEU's default value 0.1).
    case floor(Double)
}

public struct BLEUScore: Sendable, Equatable {
    /// 0…100.
    public var score: Double
    /// n-gram precisions in percent, n = 1…maxOrder (after smoothing).
    public var precisions: [Double]
    public var brevityPenalty: Double
    public var hypothesisLength: Int
    public var referenceLength: Int
    public var correct: [Int]
    public var total: [Int]
}

/// sacreBLEU's "13a" tokenizer, on Unicode scalars (Python code points).
public enum Tokenizer13a {
    /// The tokenised line, tokens joined by single spaces.
    public static func tokenize(_ line: String) -> String {
        tokens(line).map { String(String.UnicodeScalarView($0)) }.joined(separator: " ")
    }

    /// The tokens of `line`.
    public static func tokens(_ line: String) -> [[Unicode.Scalar]] {
        var s = Array(line.unicodeScalars)
        s = replace(s, "<skipped>", "")
        s = replace(s, "-\n", "")
        s = replace(s, "\n", " ")
        if s.contains("&") {
            s = replace(s, "&quot;", "\"")
            s = replace(s, "&amp;", "&")
            s = replace(s, "&lt;", "<")
            s = replace(s, "&gt;", ">")
        }
        s = [" "] + s + [" "]
        s = passPunctuation(s)
        s = passPair(s, first: { !isDigit($0) }, second: isPeriodComma) { a, b in [a, " ", b, " "] }
        s = passPair(s, first: isPeriodComma, second: { !isDigit($0) }) { a, b in [" ", a, " ", b] }
        s = passPair(s, first: isDigit, second: { $0 == "-" }) { a, b in [a, " ", b, " "] }
        return splitWhitespace(s)
    }

    static func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }
    static func isPeriodComma(_ c: Unicode.Scalar) -> Bool { c == "." || c == "," }

    /// The class [\{-\~\[-\` -\&\(-\+\:-\@\/].
    static func isSplitPunctuation(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x7B...0x7E, 0x5B...0x60, 0x20...0x26, 0x28...0x2B, 0x3A...0x40, 0x2F: return true
        default: return false
        }
    }

    /// Python's str.isspace: Unicode White_Space plus the separators U+001C…U+001F.
    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029,
             0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    static func passPunctuation(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count * 2)
        for c in s {
            if isSplitPunctuation(c) { out.append(" "); out.append(c); out.append(" ") } else { out.append(c) }
        }
        return out
    }

    /// One re.sub pass for a two-character pattern (x)(y): non-overlapping, left to right.
    static func passPair(_ s: [Unicode.Scalar], first: (Unicode.Scalar) -> Bool, second: (Unicode.Scalar) -> Bool,
                         replacement: (Unicode.Scalar, Unicode.Scalar) -> [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count + s.count / 2)
        var i = 0
        while i < s.count {
            if i + 1 < s.count && first(s[i]) && second(s[i + 1]) {
                out.append(contentsOf: replacement(s[i], s[i + 1]))
                i += 2
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    static func splitWhitespace(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var tokens: [[Unicode.Scalar]] = []
        var cur: [Unicode.Scalar] = []
        for c in s {
            if isPythonSpace(c) {
                if !cur.isEmpty { tokens.append(cur); cur = [] }
            } else {
                cur.append(c)
            }
        }
        if !cur.isEmpty { tokens.append(cur) }
        return tokens
    }

    static func replace(_ s: [Unicode.Scalar], _ pattern: String, _ with: String) -> [Unicode.Scalar] {
        let p = Array(pattern.unicodeScalars), w = Array(with.unicodeScalars)
        guard !p.isEmpty, s.count >= p.count else { return s }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if i + p.count <= s.count && s[i] == p[0] && Array(s[i..<i + p.count]) == p {
                out.append(contentsOf: w)
                i += p.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    /// Python's str.rstrip().
    static func rstrip(_ line: String) -> String {
        var scalars = Array(line.unicodeScalars)
        while let last = scalars.last, isPythonSpace(last) { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}

public enum BLEU {
    public static let maxOrder = 4

    /// Corpus BLEU with one reference per hypothesis; equals
    /// `sacrebleu.corpus_bleu(hypotheses, [references]).score`.
    public static func corpus(hypotheses: [String], references: [String],
                              smoothing: BLEUSmoothing = .exp) throws -> BLEUScore {
        try corpus(hypotheses: hypotheses, referenceStreams: [references], smoothing: smoothing)
    }

    /// Corpus BLEU with several reference streams (`referenceStreams[j][i]` is the j-th
    /// reference of hypothesis i), as `sacrebleu.corpus_bleu(hypotheses, referenceStreams)`.
    public static func corpus(hypotheses: [String], referenceStreams: [[String]],
                              smoothing: BLEUSmoothing = .exp, effectiveOrder: Bool = false) throws -> BLEUScore {
        guard !referenceStreams.isEmpty else { throw BLEUError.noReferences }
        for r in referenceStreams where r.count != hypotheses.count {
            throw BLEUError.lengthMismatch(hypotheses: hypotheses.count, references: r.count)
        }
        var stats = Statistics()
        var vocab = Vocabulary()
        for i in hypotheses.indices {
            stats.add(segment(hypothesis: hypotheses[i], references: referenceStreams.map { $0[i] }, vocab: &vocab))
        }
        return compute(stats, smoothing: smoothing, effectiveOrder: effectiveOrder)
    }

    /// Sentence BLEU; equals `sacrebleu.sentence_bleu(hypothesis, [reference]).score`
    /// (exp smoothing, effective order).
    public static func sentence(hypothesis: String, reference: String,
                                smoothing: BLEUSmoothing = .exp) -> BLEUScore {
        var vocab = Vocabulary()
        let s = segment(hypothesis: hypothesis, references: [reference], vocab: &vocab)
        return compute(s, smoothing: smoothing, effectiveOrder: true)
    }

    // MARK: - statistics

    struct Statistics {
        var hypLen = 0
        var refLen = 0
        var correct = [Int](repeating: 0, count: BLEU.maxOrder)
        var total = [Int](repeating: 0, count: BLEU.maxOrder)

        mutating func add(_ o: Statistics) {
            hypLen += o.hypLen
            refLen += o.refLen
            for n in 0..<BLEU.maxOrder { correct[n] += o.correct[n]; total[n] += o.total[n] }
        }
    }

    /// Interns tokens so n-grams compare by exact code points (no Unicode normalisation).
    struct Vocabulary {
        var ids: [[Unicode.Scalar]: Int] = [:]
        mutating func id(_ t: [Unicode.Scalar]) -> Int {
            if let i = ids[t] { return i }
            let i = ids.count
            ids[t] = i
            return i
        }
    }

    static func ngramCounts(_ ids: [Int]) -> [[Int]: Int] {
        var counts: [[Int]: Int] = [:]
        for n in 1...maxOrder where ids.count >= n {
            for i in 0...(ids.count - n) { counts[Array(ids[i..<i + n]), default: 0] += 1 }
        }
        return counts
    }

    static func segment(hypothesis: String, references: [String], vocab: inout Vocabulary) -> Statistics {
        let hyp = Tokenizer13a.tokens(Tokenizer13a.rstrip(hypothesis)).map { vocab.id($0) }
        var refMax: [[Int]: Int] = [:]
        var refLens: [Int] = []
        for r in references {
            let ref = Tokenizer13a.tokens(Tokenizer13a.rstrip(r)).map { vocab.id($0) }
            refLens.append(ref.count)
            for (g, c) in ngramCounts(ref) { refMax[g] = max(refMax[g] ?? 0, c) }
        }
        var s = Statistics()
        s.hypLen = hyp.count
        // Closest reference length; ties go to the shorter one.
        var best = -1, bestDiff = -1
        for l in refLens {
            let d = abs(hyp.count - l)
            if bestDiff < 0 || d < bestDiff || (d == bestDiff && l < best) { best = l; bestDiff = d }
        }
        s.refLen = max(best, 0)
        for (g, c) in ngramCounts(hyp) {
            s.total[g.count - 1] += c
            if let r = refMax[g] { s.correct[g.count - 1] += min(c, r) }
        }
        return s
    }

    static func compute(_ s: Statistics, smoothing: BLEUSmoothing, effectiveOrder: Bool) -> BLEUScore {
        var bp = 1.0
        if s.hypLen < s.refLen { bp = s.hypLen > 0 ? Foundation.exp(1 - Double(s.refLen) / Double(s.hypLen)) : 0 }
        var precisions = [Double](repeating: 0, count: maxOrder)
        func result(_ score: Double) -> BLEUScore {
            BLEUScore(score: score, precisions: precisions, brevityPenalty: bp, hypothesisLength: s.hypLen,
                      referenceLength: s.refLen, correct: s.correct, total: s.total)
        }
        if s.correct.allSatisfy({ $0 == 0 }) { return result(0) }
        var smoothExp = 1.0
        var order = maxOrder
        for n in 0..<maxOrder {
            if s.total[n] == 0 { break }
            if effectiveOrder { order = n + 1 }
            if s.correct[n] == 0 {
                switch smoothing {
                case .exp:
                    smoothExp *= 2
                    precisions[n] = 100 / (smoothExp * Double(s.total[n]))
                case .floor(let v):
                    precisions[n] = 100 * v / Double(s.total[n])
                case .none:
                    break
                }
            } else {
                precisions[n] = 100 * Double(s.correct[n]) / Double(s.total[n])
            }
        }
        var logSum = 0.0
        for p in precisions[0..<order] {
            if p == 0 { return result(0) }
            logSum += Foundation.log(p)
        }
        return result(bp * Foundation.exp(logSum / Double(order)))
    }
}
