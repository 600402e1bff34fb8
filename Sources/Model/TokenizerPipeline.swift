/// The pre-tokeniser of a Hugging Face `tokenizer.json` (byte-level BPE models): a sequence of
/// steps, each splitting the pieces of the previous one further, as `tokenizers` applies
/// `pre_tokenizers.Sequence`.
///
/// Supported steps:
///   - `Split` with one of the known regular expressions (`SplitPattern`; no regex engine: each
///     pattern is matched by hand with the semantics of the reference's Oniguruma engine) or a
///     literal string, with any `behavior` and `invert`;
///   - `Digits` (`individual_digits` true or false);
///   - `ByteLevel` (`use_regex`: the GPT-2 pattern; `add_prefix_space`), last in the sequence.
/// Each step sees one piece at a time, so a lookahead such as `(?!\S)` sees the piece's end as
/// the end of the text.

/// A regular expression of a `Split` pre-tokeniser that is implemented (compared verbatim).
public enum SplitPattern: Equatable, Sendable {
    /// Llama-3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// Qwen2 / Qwen2.5 / Qwen3: as Llama-3 with `\p{N}` (one number per piece) for `\p{N}{1,3}`.
    case qwen2
    /// GPT-2 (also `ByteLevel`'s `use_regex`): `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// A literal string (`{"String": ...}`), as scalars.
    case literal([UInt32])

    public static let llama3Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    public static let qwen2Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    public static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// The implemented pattern spelled `regex`, or nil.
    public init?(regex: String) {
        switch regex {
        case Self.llama3Regex: self = .llama3
        case Self.qwen2Regex: self = .qwen2
        case Self.gpt2Regex: self = .gpt2
        default: return nil
        }
    }
}

/// What `Split` does with the matches (`tokenizers`' `SplitDelimiterBehavior`).
public enum SplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

public enum PreTokenizerStep: Equatable, Sendable {
    case split(SplitPattern, behavior: SplitBehavior, invert: Bool)
    case digits(individual: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
}

/// The scalars of one text segment with their classes and UTF-8 offsets.
struct ScalarText {
    var values: [UInt32] = []
    var classes: [ScalarClass] = []
    /// UTF-8 offset of each scalar, plus the total length at the end.
    var offsets: [Int] = []

    mutating func load(_ bytes: UnsafeBufferPointer<UInt8>) {
        values.removeAll(keepingCapacity: true)
        classes.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        let count = bytes.count
        var p = 0
        while p < count {
            let b0 = bytes[p]
            offsets.append(p)
            if b0 < 0x80 {
                values.append(UInt32(b0))
                classes.append(PreTokenizer.bmpClasses[Int(b0)])
                p += 1
                continue
            }
            var value: UInt32
            var len: Int
            if b0 >= 0xF0 { value = UInt32(b0 & 0x07); len = 4 }
            else if b0 >= 0xE0 { value = UInt32(b0 & 0x0F); len = 3 }
            else { value = UInt32(b0 & 0x1F); len = 2 }
            len = max(1, min(len, count - p))  // valid UTF-8 (from a String); stay in bounds anyway
            for k in 1..<len { value = (value << 6) | UInt32(bytes[p + k] & 0x3F) }
            values.append(value)
            classes.append(PreTokenizer.classify(value))
            p += len
        }
        offsets.append(count)
    }
}

/// Runs the steps over a segment and reports the final pieces as scalar ranges.
struct PreTokenizerPipeline: Sendable {
    let steps: [PreTokenizerStep]

    /// Splits `text[range]` and calls `emit(start, end, prefixSpace)` for each final piece
    /// (scalar indices; `prefixSpace`: `ByteLevel` prepended a space to this piece).
    func run(_ text: ScalarText, emit: (Int, Int, Bool) -> Void) {
        guard !text.values.isEmpty else { return }
        apply(step: 0, text, 0, text.values.count, prefixed: false, emit: emit)
    }

    private func apply(step k: Int, _ t: ScalarText, _ a: Int, _ b: Int, prefixed: Bool,
                       emit: (Int, Int, Bool) -> Void) {
        guard a < b else { return }
        guard k < steps.count else { return emit(a, b, prefixed) }
        switch steps[k] {
        case let .split(pattern, behavior, invert):
            Self.split(t, a, b, behavior: behavior, invert: invert, matcher: { i in
                Self.match(pattern, t, i, b)
            }) { s, e in apply(step: k + 1, t, s, e, prefixed: prefixed, emit: emit) }
        case let .digits(individual):
            Self.split(t, a, b, behavior: individual ? .isolated : .contiguous, invert: false, matcher: { i in
                t.classes[i] == .number ? i + 1 : nil
            }) { s, e in apply(step: k + 1, t, s, e, prefixed: prefixed, emit: emit) }
        case let .byteLevel(addPrefixSpace, useRegex):
            // `ByteLevel` is last (checked when the pipeline is read); a prefix space is handled
            // by the caller (`prefixed`): here the regex must see it, so match on a copy.
            if addPrefixSpace && !prefixed && t.values[a] != 0x20 {
                var copy = ScalarText()
                copy.values = [0x20] + t.values[a..<b]
                copy.classes = [.space] + t.classes[a..<b]
                copy.offsets = []  // unused by the matchers
                let n = copy.values.count
                if !useRegex { return emit(a, b, true) }
                Self.split(copy, 0, n, behavior: .isolated, invert: false, matcher: { i in
                    Self.match(.gpt2, copy, i, n)
                }) { s, e in
                    // Piece s..<e of " " + text[a..<b]: the first piece carries the space.
                    if s == 0 { emit(a, a + e - 1, true) } else { emit(a + s - 1, a + e - 1, false) }
                }
                return
            }
            if !useRegex { return emit(a, b, prefixed) }
            Self.split(t, a, b, behavior: .isolated, invert: false, matcher: { i in
                Self.match(.gpt2, t, i, b)
            }) { s, e in emit(s, e, prefixed) }
        }
    }

    /// `tokenizers`' `NormalizedString::split`: find the matches left to right (`matcher(i)` is
    /// the end of a match starting at `i`, or nil; a failed position advances by one scalar),
    /// classify the gaps and matches, combine them by `behavior`, drop empty pieces.
    static func split(_ t: ScalarText, _ a: Int, _ b: Int, behavior: SplitBehavior, invert: Bool,
                      matcher: (Int) -> Int?, emit: (Int, Int) -> Void) {
        // (start, end, isMatch) in order, covering a..<b.
        var parts: [(Int, Int, Bool)] = []
        var gapStart = a, i = a
        while i < b {
            if let e = matcher(i), e > i {
                if gapStart < i { parts.append((gapStart, i, invert)) }
                parts.append((i, e, !invert))
                i = e
                gapStart = e
            } else {
                i += 1
            }
        }
        if gapStart < b { parts.append((gapStart, b, invert)) }

        var out: [(Int, Int)] = []
        switch behavior {
        case .isolated:
            out = parts.map { ($0.0, $0.1) }
        case .removed:
            out = parts.filter { !$0.2 }.map { ($0.0, $0.1) }
        case .mergedWithPrevious:
            var previousMatch = false
            for p in parts {
                if p.2 && !previousMatch, !out.isEmpty { out[out.count - 1].1 = p.1 } else { out.append((p.0, p.1)) }
                previousMatch = p.2
            }
        case .mergedWithNext:
            var previousMatch = false
            for p in parts.reversed() {
                if p.2 && !previousMatch, !out.isEmpty { out[out.count - 1].0 = p.0 } else { out.append((p.0, p.1)) }
                previousMatch = p.2
            }
            out.reverse()
        case .contiguous:
            var previousMatch = false
            for p in parts {
                if p.2 == previousMatch, !out.isEmpty { out[out.count - 1].1 = p.1 } else { out.append((p.0, p.1)) }
                previousMatch = p.2
            }
        }
        for (s, e) in out where s < e { emit(s, e) }
    }

    // MARK: Matchers

    @inline(__always) static func isCRLF(_ v: UInt32) -> Bool { v == 0x0A || v == 0x0D }
    @inline(__always) static func isSpace(_ c: ScalarClass) -> Bool { c == .space || c == .whitespace }

    /// The end of the match of `pattern` anchored at `i` in `t[..<n]`, with the leftmost-first
    /// alternation and backtracking of the reference engine; nil when none of the alternatives
    /// matches here.
    static func match(_ pattern: SplitPattern, _ t: ScalarText, _ i: Int, _ n: Int) -> Int? {
        switch pattern {
        case .llama3: return matchLlama3(t, i, n, maxDigits: 3)
        case .qwen2: return matchLlama3(t, i, n, maxDigits: 1)
        case .gpt2: return matchGPT2(t, i, n)
        case .literal(let s):
            guard !s.isEmpty, n - i >= s.count else { return nil }
            for k in 0..<s.count where t.values[i + k] != s[k] { return nil }
            return i + s.count
        }
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `i` (case-insensitive: ASCII letters, and U+017F LATIN
    /// SMALL LETTER LONG S folds to s, as in the reference; checked against it for all letters).
    @inline(__always)
    static func contraction(_ t: ScalarText, _ i: Int, _ n: Int, caseInsensitive: Bool) -> Int? {
        guard t.values[i] == 0x27, i + 1 < n else { return nil }
        func low(_ v: UInt32) -> UInt32 {
            guard caseInsensitive else { return v }
            if v >= 0x41 && v <= 0x5A { return v | 0x20 }
            return v == 0x17F ? 0x73 : v
        }
        let x = low(t.values[i + 1])
        if x == 0x73 || x == 0x74 || x == 0x6D || x == 0x64 { return i + 2 }  // s t m d
        guard i + 2 < n else { return nil }
        let y = low(t.values[i + 2])
        if (x == 0x72 && y == 0x65) || (x == 0x76 && y == 0x65) || (x == 0x6C && y == 0x6C) { return i + 3 }
        return nil
    }

    @inline(__always)
    static func run(_ t: ScalarText, from j: Int, _ n: Int, _ c: ScalarClass) -> Int {
        var j = j
        while j < n && t.classes[j] == c { j += 1 }
        return j
    }

    /// `\s*[\r\n]+|\s+(?!\S)|\s+` at a whitespace scalar `i` (the tail shared by the patterns;
    /// `newlines`: whether the `\s*[\r\n]+` alternative is present).
    @inline(__always)
    static func whitespace(_ t: ScalarText, _ i: Int, _ n: Int, newlines: Bool) -> Int {
        var j = i
        var lastNewline = -1
        while j < n && isSpace(t.classes[j]) {
            if isCRLF(t.values[j]) { lastNewline = j }
            j += 1
        }
        // `\s*[\r\n]+`: \s* backs off to the last newline of the run.
        if newlines && lastNewline >= 0 { return lastNewline + 1 }
        // `\s+(?!\S)`: the whole run at the end, else the run minus its last scalar (which then
        // starts the next piece); a single scalar before a non-space falls to `\s+`.
        if j == n { return j }
        return j - i >= 2 ? j - 1 : j
    }

    static func matchLlama3(_ t: ScalarText, _ i: Int, _ n: Int, maxDigits: Int) -> Int? {
        if let e = contraction(t, i, n, caseInsensitive: true) { return e }
        let c = t.classes[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c == .letter { return run(t, from: i + 1, n, .letter) }
        if c != .number && !isCRLF(t.values[i]) && i + 1 < n && t.classes[i + 1] == .letter {
            return run(t, from: i + 2, n, .letter)
        }
        // \p{N}{1,3} (Llama-3) or \p{N} (Qwen2)
        if c == .number {
            var j = i + 1
            while j < n && j - i < maxDigits && t.classes[j] == .number { j += 1 }
            return j
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        var j = i
        if t.values[i] == 0x20 && i + 1 < n && t.classes[i + 1] == .other { j = i + 1 }
        if t.classes[j] == .other {
            j = run(t, from: j + 1, n, .other)
            while j < n && isCRLF(t.values[j]) { j += 1 }
            return j
        }
        // Only whitespace is left.
        return whitespace(t, i, n, newlines: true)
    }

    static func matchGPT2(_ t: ScalarText, _ i: Int, _ n: Int) -> Int? {
        if let e = contraction(t, i, n, caseInsensitive: false) { return e }
        let c = t.classes[i]
        // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
        if c == .letter || c == .number || c == .other { return run(t, from: i + 1, n, c) }
        if c == .space && i + 1 < n {
            let d = t.classes[i + 1]
            if d == .letter || d == .number || d == .other { return run(t, from: i + 2, n, d) }
        }
        return whitespace(t, i, n, newlines: false)
    }
}
