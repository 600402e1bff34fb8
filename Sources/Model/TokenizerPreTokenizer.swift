/// Byte-level BPE building blocks shared by `BPETokenizer`: the GPT-2 byte <-> printable-character
/// table and SmolLM2's pre-tokeniser.
///
/// SmolLM2 (HF `tokenizer.json`, llama.cpp `LLAMA_VOCAB_PRE_TYPE_SMOLLM`) pre-tokenises in two
/// steps:
///   1. every numeric scalar (`\p{N}`: Nd, Nl, No) becomes a piece of its own, splitting the text
///      into segments;
///   2. each segment between them is split with the GPT-2 pattern
///      `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
/// The pattern is matched by hand here (no regex engine): it works on Unicode scalars, exactly as
/// the reference regex does, and treats a digit as the end of the segment (so `(?!\S)` succeeds
/// before a digit, and a space never attaches to a following digit).

// MARK: - GPT-2 byte <-> unicode table

enum ByteLevel {
    /// `byteToScalar[b]` is the printable character that stands for byte `b` in the vocabulary.
    /// Bytes `!`...`~`, `¡`...`¬` and `®`...`ÿ` stand for themselves; the other 68 bytes, in
    /// increasing order, get U+0100, U+0101, ... (so space becomes `Ġ` U+0120, `\n` becomes `Ċ`).
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// The inverse of `byteToScalar`, indexed by scalar value (< 0x144); -1 where no byte maps.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for b in 0..<256 { table[Int(byteToScalar[b])] = Int16(b) }
        return table
    }()

    /// The vocabulary spelling of raw bytes (each byte replaced by its printable character).
    static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(byteToScalar[Int(b)])!) }
        return String(s)
    }

    /// The raw bytes a vocabulary spelling stands for; nil when some character is not in the table.
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            let v = Int(s.value)
            guard v < scalarToByte.count, scalarToByte[v] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[v]))
        }
        return out
    }
}

// MARK: - Pre-tokeniser

/// Character classes the pre-tokenisation pattern distinguishes.
enum ScalarClass: UInt8 {
    case letter = 0      // \p{L}
    case number = 1      // \p{N}
    case space = 2       // U+0020 (also whitespace; the only character ` ?` accepts)
    case whitespace = 3  // \s other than U+0020 (Unicode White_Space)
    case other = 4       // [^\s\p{L}\p{N}]
}

enum PreTokenizer {
    /// Classes of the Basic Multilingual Plane, computed once; other planes are classified on
    /// the fly.
    static let bmpClasses: [ScalarClass] = (0..<0x10000).map { computeClass(UInt32($0)) }

    @inline(__always)
    static func classify(_ value: UInt32) -> ScalarClass {
        value < 0x10000 ? bmpClasses[Int(value)] : computeClass(value)
    }

    /// The class of a scalar by its Unicode properties. Letters assigned after Unicode 16.0 count
    /// as unassigned (`.other`): the reference's regex engine (Oniguruma in HF `tokenizers`)
    /// predates them, while Swift 6.3's tables are Unicode 17. Numbers need no such cut: the
    /// reference isolates digits with Rust's `char::is_numeric`, whose tables are as new as
    /// Swift's (checked exhaustively over all scalars against tokenizers 0.23.3).
    static func computeClass(_ value: UInt32) -> ScalarClass {
        if value == 0x20 { return .space }
        guard let scalar = Unicode.Scalar(value) else { return .other }
        let props = scalar.properties
        switch props.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return isNewerThanReference(props) ? .other : .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return props.isWhitespace ? .whitespace : .other
        }
    }

    static func isNewerThanReference(_ props: Unicode.Scalar.Properties) -> Bool {
        guard let age = props.age else { return false }
        return age.major > 16
    }

    /// Splits valid UTF-8 `bytes` into pre-tokenisation pieces and calls `emit(start, end)` with
    /// the byte range of each piece, in order. The pieces cover the input exactly.
    ///
    /// `classes` and `starts` are scratch buffers (reused across calls to avoid allocation).
    static func split(_ bytes: UnsafeBufferPointer<UInt8>,
                      classes: inout [ScalarClass], starts: inout [Int],
                      emit: (Int, Int) -> Void) {
        // Decode scalars: class and byte offset of each.
        classes.removeAll(keepingCapacity: true)
        starts.removeAll(keepingCapacity: true)
        let count = bytes.count
        var p = 0
        while p < count {
            let b0 = bytes[p]
            starts.append(p)
            if b0 < 0x80 {
                classes.append(bmpClasses[Int(b0)])
                p += 1
                continue
            }
            var value: UInt32
            var len: Int
            if b0 >= 0xF0 { value = UInt32(b0 & 0x07); len = 4 }
            else if b0 >= 0xE0 { value = UInt32(b0 & 0x0F); len = 3 }
            else { value = UInt32(b0 & 0x1F); len = 2 }
            // The input comes from a Swift String, so it is valid UTF-8; stay in bounds anyway.
            len = min(len, count - p)
            for k in 1..<max(len, 1) { value = (value << 6) | UInt32(bytes[p + k] & 0x3F) }
            classes.append(classify(value))
            p += max(len, 1)
        }
        let n = classes.count
        @inline(__always) func byteStart(_ i: Int) -> Int { i < n ? starts[i] : count }
        @inline(__always) func asciiAt(_ i: Int) -> UInt8 { i < n ? bytes[starts[i]] : 0 }

        var i = 0
        while i < n {
            let c = classes[i]
            var j = i + 1
            switch c {
            case .number:
                break  // each digit is a piece of its own
            case .letter:
                while j < n && classes[j] == .letter { j += 1 }
            case .other:
                // Contractions come first in the alternation: 's 't 'm 'd 're 've 'll.
                if bytes[starts[i]] == 0x27 /* ' */ && i + 1 < n {
                    let a = asciiAt(i + 1), b = asciiAt(i + 2)
                    if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 {  // s t m d
                        j = i + 2
                        break
                    }
                    if i + 2 < n && ((a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C)) {
                        j = i + 3  // re ve ll
                        break
                    }
                }
                while j < n && classes[j] == .other { j += 1 }
            case .space, .whitespace:
                if c == .space && j < n && (classes[j] == .letter || classes[j] == .other) {
                    // ` ?\p{L}+` or ` ?[^\s\p{L}\p{N}]+` (a digit ends the segment instead).
                    let run = classes[j]
                    j += 1
                    while j < n && classes[j] == run { j += 1 }
                    break
                }
                while j < n && (classes[j] == .space || classes[j] == .whitespace) { j += 1 }
                // `\s+(?!\S)`: at the segment's end (text end or a digit) the whole run; before
                // anything else the run minus its last character, which starts the next piece;
                // a single character before a non-space falls through to `\s+`.
                if j < n && classes[j] != .number && j - i >= 2 { j -= 1 }
            }
            emit(byteStart(i), byteStart(j))
            i = j
        }
    }
}
