/// A model's own tokenizer from its Hugging Face files: `tokenizer.json` (byte-level BPE, read in
/// full: every field that changes the ids is either implemented or refused with an error naming
/// it), `tokenizer_config.json` (BOS / EOS / PAD, `add_bos_token`, `chat_template`) and
/// `generation_config.json` (`eos_token_id`, possibly a list: all of them stop a generation).
///
/// Implemented, as the `tokenizers` library applies them:
///   - `model`: `BPE` with `vocab`, `merges` (`"a b"` strings or `[a, b]` pairs),
///     `ignore_merges`, `unk_token` / `fuse_unk`, `byte_fallback`; no dropout, no subword
///     prefix / suffix;
///   - `normalizer`: null, `NFC`, or a `Sequence` of those;
///   - `pre_tokenizer`: `Split` (the Llama-3, Qwen2 and GPT-2 regular expressions, or a literal
///     string), `Digits`, `ByteLevel` (last), alone or in a `Sequence` (see `TokenizerPipeline`);
///   - `added_tokens` with their flags (`special`, `single_word`, `lstrip`, `rstrip`,
///     `normalized`), split off before normalisation as the library does;
///   - `decoder`: `ByteLevel`; `post_processor`: `ByteLevel`, `TemplateProcessing` (read for
///     whether a text starts with BOS), or a `Sequence` of those.
/// `truncation` and `padding` are settings of the library's batch API and are ignored.

import Foundation

/// A token of `added_tokens`, matched in the text before pre-tokenisation.
public struct AddedToken: Equatable, Sendable {
    public var content: String
    public var id: Int
    /// Special tokens are matched only with `allowSpecial`; others always (as the library does
    /// with `encode_special_tokens = true` / without it).
    public var special: Bool
    /// Match only where neither neighbour is a word character (Rust regex `\w`).
    public var singleWord = false
    /// Swallow the whitespace before / after the token.
    public var lstrip = false
    public var rstrip = false
    /// Match in the normalised text (after the normalizer) instead of the raw text.
    public var normalized: Bool

    public init(content: String, id: Int, special: Bool, singleWord: Bool = false, lstrip: Bool = false,
                rstrip: Bool = false, normalized: Bool) {
        self.content = content
        self.id = id
        self.special = special
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
    }
}

/// An added token with the bytes it matches.
struct AddedTokenEntry: Sendable {
    let bytes: [UInt8]
    let id: Int32
    let token: AddedToken
}

/// The `normalizer` of a `tokenizer.json`.
public enum TextNormalizer: Equatable, Sendable {
    case none
    /// Unicode Normalization Form C (Qwen2).
    case nfc

    public func apply(_ text: String) -> String {
        switch self {
        case .none: return text
        case .nfc: return Self.nfc(text)
        }
    }

    /// NFC by the standard library's normaliser (`_nfcCodeUnits`, the one `String` comparison
    /// uses), with the canonical ordering it misses restored: it decomposes U+0F73 (and the
    /// other characters that decompose into several combining marks) without reordering the
    /// marks (x U+0F73 U+0F73 gives x 0F71 0F72 0F71 0F72, not x 0F71 0F71 0F72 0F72 as the
    /// reference). So each run of combining marks of its result is put in canonical order
    /// (stable by combining class) and the result normalised again, until nothing moves.
    /// (Foundation's `precomposedStringWithCanonicalMapping` has the same defect.)
    static func nfc(_ text: String) -> String {
        var s = String(decoding: text._nfcCodeUnits, as: UTF8.self)
        for _ in 0..<4 {
            guard let ordered = canonicallyOrdered(s) else { return s }
            s = String(decoding: ordered._nfcCodeUnits, as: UTF8.self)
        }
        return s
    }

    /// `s` with every run of non-starters stably sorted by canonical combining class; nil when
    /// that changes nothing.
    static func canonicallyOrdered(_ s: String) -> String? {
        var scalars = Array(s.unicodeScalars)
        func ccc(_ c: Unicode.Scalar) -> UInt8 { c.value < 0x300 ? 0 : c.properties.canonicalCombiningClass.rawValue }
        var changed = false
        var i = 0
        while i < scalars.count {
            guard ccc(scalars[i]) != 0 else { i += 1; continue }
            var j = i + 1
            while j < scalars.count && ccc(scalars[j]) != 0 { j += 1 }
            if j - i > 1 {
                let run = scalars[i..<j].enumerated().sorted {
                    (ccc($0.element), $0.offset) < (ccc($1.element), $1.offset)
                }.map(\.element)
                if !run.elementsEqual(scalars[i..<j]) {
                    scalars.replaceSubrange(i..<j, with: run)
                    changed = true
                }
            }
            i = j
        }
        guard changed else { return nil }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars)
        return String(v)
    }

    /// Whether `apply` may change `bytes`: every scalar below U+0300 has NFC_Quick_Check = Yes,
    /// so text whose bytes are all below 0xCC (UTF-8 of U+0000...U+02FF) is already NFC.
    func mayChange(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        switch self {
        case .none: return false
        case .nfc: return bytes.contains { $0 >= 0xCC }
        }
    }
}

/// How a `BPETokenizer` reads text beyond its vocabulary and merges. The defaults are SmolLM2's
/// GGUF tokeniser: its own pre-tokeniser, control / user-defined tokens as the special tokens.
public struct BPEOptions: Sendable {
    public var normalizer: TextNormalizer = .none
    /// nil: SmolLM2's pre-tokeniser (`PreTokenizer`).
    public var preTokenizer: [PreTokenizerStep]? = nil
    public var ignoreMerges = false
    public var unknownToken: Int? = nil
    public var fuseUnknown = false
    public var byteFallback = false
    /// nil: the control / user-defined tokens (by token type), all special, not normalised.
    public var addedTokens: [AddedToken]? = nil
    /// Decode added tokens through the byte-level table like every other token (the `ByteLevel`
    /// decoder of `tokenizers`); otherwise literally (llama.cpp's reading of a GGUF).
    public var byteLevelDecodesAddedTokens = false
    /// Ids below this are the BPE model's vocabulary (for `ignore_merges`); nil: all.
    public var modelVocabularySize: Int? = nil
    /// More ids that end a generation besides EOS.
    public var extraStopTokens: [Int] = []
    /// The unknown token other tools are told of (`tokenizer_config.json`'s `unk_token`, GGUF
    /// `tokenizer.ggml.unknown_token_id`); unlike `unknownToken`, `encode` never produces it.
    public var unkToken: Int? = nil
    public var addsBOS = false
    public var chatTemplate: String? = nil

    public init() {}
}

/// A `tokenizer.json` / `tokenizer_config.json` / `generation_config.json` that cannot be used.
public enum TokenizerFileError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case unreadable(path: String, reason: String)
    /// A field whose value is not implemented: names the field, the value and what is supported.
    case unsupported(path: String, field: String, value: String, supported: String)
    case invalid(path: String, field: String, problem: String)
    case missingTokenizer(directory: String, reason: String)

    public var errorDescription: String? { description }
    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read: \(reason)"
        case let .unsupported(path, field, value, supported):
            return "\(path): \(field) is \(value), which is not supported (supported: \(supported))"
        case let .invalid(path, field, problem): return "\(path): \(field): \(problem)"
        case let .missingTokenizer(directory, reason): return "\(directory): \(reason)"
        }
    }
}

/// The special-token settings of `tokenizer_config.json` and `generation_config.json`.
public struct TokenizerSpecials: Equatable, Sendable {
    /// nil: the key is absent; `.some(nil)`: explicitly null.
    public var bosToken: String??
    public var eosToken: String??
    public var padToken: String??
    public var unkToken: String??
    public var addBOSToken: Bool?
    public var chatTemplate: String?
    public var generationBOS: Int?
    public var generationEOS: [Int] = []
    public var generationPAD: Int?

    public init() {}

    /// Reads `tokenizer_config.json`, `chat_template.jinja` and `generation_config.json` in
    /// `directory`; each is optional.
    public init(directory: String) throws {
        let tc = directory + "/tokenizer_config.json"
        if FileManager.default.fileExists(atPath: tc) {
            let root = try readJSONObject(tc)
            func token(_ key: String) throws -> String?? {
                guard let v = root[key] else { return nil }
                if v is NSNull { return .some(nil) }
                if let s = v as? String { return .some(s) }
                if let d = v as? [String: Any], let s = d["content"] as? String { return .some(s) }
                throw TokenizerFileError.invalid(path: tc, field: key,
                                                 problem: "expected a string, an AddedToken object or null")
            }
            bosToken = try token("bos_token")
            eosToken = try token("eos_token")
            padToken = try token("pad_token")
            unkToken = try token("unk_token")
            if let v = root["add_bos_token"], !(v is NSNull) {
                guard let b = jsonBool(v) else {
                    throw TokenizerFileError.invalid(path: tc, field: "add_bos_token", problem: "expected true or false")
                }
                addBOSToken = b
            }
            if let t = root["chat_template"] as? String {
                chatTemplate = t
            } else if let list = root["chat_template"] as? [[String: Any]] {
                let named = list.first { ($0["name"] as? String) == "default" } ?? list.first
                chatTemplate = named?["template"] as? String
            }
        }
        let jinja = directory + "/chat_template.jinja"
        if chatTemplate == nil, let data = FileManager.default.contents(atPath: jinja) {
            chatTemplate = String(decoding: data, as: UTF8.self)
        }
        let gc = directory + "/generation_config.json"
        if FileManager.default.fileExists(atPath: gc) {
            let root = try readJSONObject(gc)
            func ids(_ key: String) throws -> [Int] {
                guard let v = root[key], !(v is NSNull) else { return [] }
                if let n = jsonInt(v) { return [n] }
                if let a = v as? [Any] {
                    let list = a.compactMap(jsonInt)
                    if list.count == a.count { return list }
                }
                throw TokenizerFileError.invalid(path: gc, field: key, problem: "expected a token id or a list of ids")
            }
            generationBOS = try ids("bos_token_id").first
            generationEOS = try ids("eos_token_id")
            generationPAD = try ids("pad_token_id").first
        }
    }
}

extension BPETokenizer {
    public static let tokenizerJSONFile = "tokenizer.json"

    /// The tokenizer of a Hugging Face model directory: `tokenizer.json` with the special tokens
    /// of `tokenizer_config.json` / `generation_config.json`.
    public convenience init(huggingFaceDirectory dir: String) throws {
        let path = dir + "/" + Self.tokenizerJSONFile
        guard FileManager.default.fileExists(atPath: path) else {
            throw TokenizerFileError.missingTokenizer(
                directory: dir, reason: "no \(Self.tokenizerJSONFile): a Hugging Face model directory must carry "
                    + "its tokenizer (tokenizer.json, with tokenizer_config.json)")
        }
        try self.init(tokenizerJSON: path, specials: try TokenizerSpecials(directory: dir))
    }

    /// Reads a `tokenizer.json` (see the file comment for what is implemented).
    public convenience init(tokenizerJSON path: String, specials: TokenizerSpecials = TokenizerSpecials()) throws {
        let root = try readJSONObject(path)
        func unsupported(_ field: String, _ value: Any?, _ supported: String) -> TokenizerFileError {
            .unsupported(path: path, field: field, value: describeJSON(value), supported: supported)
        }
        func invalid(_ field: String, _ problem: String) -> TokenizerFileError {
            .invalid(path: path, field: field, problem: problem)
        }
        let known: Set<String> = ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                                  "model", "post_processor", "decoder"]
        if let k = root.keys.sorted().first(where: { !known.contains($0) }) {
            throw unsupported(k, root[k], "the fields " + known.sorted().joined(separator: ", "))
        }

        // model
        guard let model = root["model"] as? [String: Any] else { throw invalid("model", "missing or not an object") }
        let modelType = model["type"] as? String ?? "BPE"
        guard modelType == "BPE" else { throw unsupported("model.type", modelType, "BPE (byte-level)") }
        if let d = model["dropout"], !(d is NSNull), jsonDouble(d) != 0 {
            throw unsupported("model.dropout", d, "null (BPE dropout is random)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key], !(v is NSNull), (v as? String) != "" {
                throw unsupported("model.\(key)", v, "null or \"\"")
            }
        }
        func flag(_ obj: [String: Any], _ key: String, _ field: String, default def: Bool) throws -> Bool {
            guard let v = obj[key], !(v is NSNull) else { return def }
            guard let b = jsonBool(v) else { throw invalid(field, "expected true or false, found \(describeJSON(v))") }
            return b
        }
        guard let vocab = model["vocab"] as? [String: Any] else { throw invalid("model.vocab", "missing or not an object") }
        guard let mergeList = model["merges"] as? [Any] else { throw invalid("model.merges", "missing or not a list") }
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeList.count)
        for (i, m) in mergeList.enumerated() {
            if let s = m as? String {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw invalid("model.merges[\(i)]", "\(String(reflecting: s)) is not two tokens separated by one space")
                }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let a = m as? [Any], a.count == 2, let l = a[0] as? String, let r = a[1] as? String {
                merges.append((l, r))
            } else {
                throw invalid("model.merges[\(i)]", "expected \"a b\" or [\"a\", \"b\"], found \(describeJSON(m))")
            }
        }

        let normalizer = try Self.readNormalizer(root["normalizer"], field: "normalizer", path: path)

        // added_tokens (a normalised token is spelled, matched and decoded in its normalised
        // form, as the library keeps it)
        var added: [AddedToken] = []
        for (i, v) in ((root["added_tokens"] as? [Any]) ?? []).enumerated() {
            let field = "added_tokens[\(i)]"
            guard let d = v as? [String: Any], let content = d["content"] as? String, let id = d["id"].flatMap(jsonInt),
                  id >= 0 else {
                throw invalid(field, "expected an object with \"id\" and \"content\", found \(describeJSON(v))")
            }
            let special = try flag(d, "special", field + ".special", default: false)
            let normalized = try flag(d, "normalized", field + ".normalized", default: !special)
            added.append(AddedToken(content: normalized ? normalizer.apply(content) : content, id: id, special: special,
                                    singleWord: try flag(d, "single_word", field + ".single_word", default: false),
                                    lstrip: try flag(d, "lstrip", field + ".lstrip", default: false),
                                    rstrip: try flag(d, "rstrip", field + ".rstrip", default: false),
                                    normalized: normalized))
        }

        // The vocabulary: model ids then added ids, without holes.
        var maxID = -1
        var slots: [Int: String] = [:]
        slots.reserveCapacity(vocab.count + added.count)
        for (t, v) in vocab {
            guard let id = jsonInt(v), id >= 0, id < Int(Int32.max) else {
                throw invalid("model.vocab", "token \(String(reflecting: t)) has id \(describeJSON(v)); expected an integer ≥ 0")
            }
            if let other = slots[id] {
                throw invalid("model.vocab", "id \(id) is given to both \(String(reflecting: other)) and \(String(reflecting: t))")
            }
            slots[id] = t
            maxID = max(maxID, id)
        }
        let modelSize = maxID + 1
        var types: [Int: Int] = [:]
        for a in added {
            if let existing = slots[a.id], existing != a.content {
                throw invalid("added_tokens", "id \(a.id) is \(String(reflecting: a.content)) there but "
                              + "\(String(reflecting: existing)) in model.vocab")
            }
            slots[a.id] = a.content
            types[a.id] = a.special ? TokenType.control.rawValue : TokenType.userDefined.rawValue
            maxID = max(maxID, a.id)
        }
        guard maxID >= 0 else { throw TokenizerError.emptyVocabulary }
        var tokens: [String] = []
        tokens.reserveCapacity(maxID + 1)
        for id in 0...maxID {
            guard let t = slots[id] else {
                throw invalid("model.vocab", "no token has id \(id) (ids must run from 0 to \(maxID) without gaps)")
            }
            tokens.append(t)
        }
        let tokenTypes = (0...maxID).map { types[$0] ?? TokenType.normal.rawValue }

        var options = BPEOptions()
        options.addedTokens = added
        options.byteLevelDecodesAddedTokens = true
        options.modelVocabularySize = modelSize
        options.ignoreMerges = try flag(model, "ignore_merges", "model.ignore_merges", default: false)
        options.fuseUnknown = try flag(model, "fuse_unk", "model.fuse_unk", default: false)
        options.byteFallback = try flag(model, "byte_fallback", "model.byte_fallback", default: false)
        if let u = model["unk_token"], !(u is NSNull) {
            guard let s = u as? String, let id = slots.first(where: { $0.value == s })?.key else {
                throw invalid("model.unk_token", "\(describeJSON(u)) is not in the vocabulary")
            }
            options.unknownToken = id
        }

        options.normalizer = normalizer

        // pre_tokenizer
        var steps: [PreTokenizerStep] = []
        try Self.readPreTokenizer(root["pre_tokenizer"], field: "pre_tokenizer", path: path, into: &steps)
        let byteLevelCount = steps.filter { if case .byteLevel = $0 { return true } else { return false } }.count
        guard byteLevelCount == 1, case .byteLevel? = steps.last else {
            throw unsupported("pre_tokenizer", root["pre_tokenizer"],
                              "byte-level BPE: exactly one ByteLevel pre-tokenizer, last (after Split / Digits)")
        }
        options.preTokenizer = steps

        // decoder
        try Self.checkDecoder(root["decoder"], field: "decoder", path: path)

        // post_processor: only whether a text starts with a special token.
        var firstSpecial: String? = nil
        try Self.readPostProcessor(root["post_processor"], field: "post_processor", path: path, firstSpecial: &firstSpecial)

        // Special ids.
        func id(of token: String, _ field: String) throws -> Int {
            guard let i = slots.first(where: { $0.value == token })?.key else {
                throw TokenizerFileError.invalid(path: "tokenizer_config.json", field: field,
                                                 problem: "\(String(reflecting: token)) is not a token of \(path)")
            }
            return i
        }
        func checked(_ id: Int?, _ field: String) throws -> Int? {
            guard let id else { return nil }
            guard id >= 0, id <= maxID else {
                throw TokenizerFileError.invalid(path: "generation_config.json", field: field,
                                                 problem: "id \(id) is outside the vocabulary of \(path) (0...\(maxID))")
            }
            return id
        }
        let bos: Int?
        switch specials.bosToken {
        case .some(.some(let t)): bos = try id(of: t, "bos_token")
        case .some(.none): bos = nil
        case .none: bos = try checked(specials.generationBOS, "bos_token_id")
        }
        let generationEOS = try specials.generationEOS.map { try checked($0, "eos_token_id")! }
        var eos: Int? = nil
        if case .some(.some(let t)) = specials.eosToken { eos = try id(of: t, "eos_token") }
        if eos == nil { eos = generationEOS.first }
        if eos == nil {
            let names = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<|eot_id|>"]
            eos = names.lazy.compactMap { n in added.first { $0.content == n && $0.special }?.id }.first
        }
        guard let eos else {
            throw TokenizerFileError.invalid(path: path, field: "eos_token",
                                             problem: "no EOS token: tokenizer_config.json has no eos_token, "
                                                + "generation_config.json no eos_token_id, and no special token is "
                                                + "named <|endoftext|>, <|end_of_text|>, </s>, <|im_end|> or <|eot_id|>")
        }
        var pad: Int? = nil
        switch specials.padToken {
        case .some(.some(let t)): pad = try id(of: t, "pad_token")
        case .some(.none): pad = nil
        case .none: pad = try checked(specials.generationPAD, "pad_token_id")
        }
        options.extraStopTokens = generationEOS
        if case .some(.some(let t)) = specials.unkToken { options.unkToken = try id(of: t, "unk_token") }
        if let b = specials.addBOSToken {
            options.addsBOS = b
        } else if let first = firstSpecial, let bos {
            options.addsBOS = tokens[bos] == first
        }
        options.chatTemplate = specials.chatTemplate
        try self.init(tokens: tokens, mergePairs: merges, tokenTypes: tokenTypes, bos: bos, eos: eos, pad: pad,
                      options: options)
    }

    // MARK: Sections

    static func typeOf(_ v: Any?, _ field: String, path: String) throws -> (String, [String: Any])? {
        guard let v, !(v is NSNull) else { return nil }
        guard let d = v as? [String: Any], let t = d["type"] as? String else {
            throw TokenizerFileError.invalid(path: path, field: field, problem: "expected an object with a \"type\"")
        }
        return (t, d)
    }

    static func readNormalizer(_ v: Any?, field: String, path: String) throws -> TextNormalizer {
        guard let (type, d) = try typeOf(v, field, path: path) else { return .none }
        switch type {
        case "NFC": return .nfc
        case "Sequence":
            var result = TextNormalizer.none
            for (i, n) in ((d["normalizers"] as? [Any]) ?? []).enumerated() {
                if try readNormalizer(n, field: "\(field).normalizers[\(i)]", path: path) == .nfc { result = .nfc }
            }
            return result
        default:
            throw TokenizerFileError.unsupported(path: path, field: field + ".type", value: describeJSON(type),
                                                 supported: "null, \"NFC\", or a \"Sequence\" of those")
        }
    }

    static func readPreTokenizer(_ v: Any?, field: String, path: String, into steps: inout [PreTokenizerStep]) throws {
        guard let (type, d) = try typeOf(v, field, path: path) else { return }
        func flag(_ key: String, default def: Bool) throws -> Bool {
            guard let x = d[key], !(x is NSNull) else { return def }
            guard let b = jsonBool(x) else {
                throw TokenizerFileError.invalid(path: path, field: "\(field).\(key)", problem: "expected true or false")
            }
            return b
        }
        switch type {
        case "Sequence":
            for (i, p) in ((d["pretokenizers"] as? [Any]) ?? []).enumerated() {
                try readPreTokenizer(p, field: "\(field).pretokenizers[\(i)]", path: path, into: &steps)
            }
        case "Split":
            let pattern: SplitPattern
            if let p = d["pattern"] as? [String: Any], let r = p["Regex"] as? String {
                guard let known = SplitPattern(regex: r) else {
                    throw TokenizerFileError.unsupported(
                        path: path, field: field + ".pattern.Regex", value: String(reflecting: r),
                        supported: "the Llama-3 pattern \(String(reflecting: SplitPattern.llama3Regex)), the Qwen2 pattern "
                            + "\(String(reflecting: SplitPattern.qwen2Regex)) and the GPT-2 pattern "
                            + String(reflecting: SplitPattern.gpt2Regex))
                }
                pattern = known
            } else if let p = d["pattern"] as? [String: Any], let s = p["String"] as? String, !s.isEmpty {
                pattern = .literal(s.unicodeScalars.map(\.value))
            } else {
                throw TokenizerFileError.invalid(path: path, field: field + ".pattern",
                                                 problem: "expected {\"Regex\": ...} or {\"String\": ...}")
            }
            let b = d["behavior"] as? String ?? ""
            guard let behavior = SplitBehavior(rawValue: b) else {
                throw TokenizerFileError.unsupported(path: path, field: field + ".behavior", value: describeJSON(d["behavior"]),
                                                     supported: "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous")
            }
            steps.append(.split(pattern, behavior: behavior, invert: try flag("invert", default: false)))
        case "Digits":
            steps.append(.digits(individual: try flag("individual_digits", default: false)))
        case "ByteLevel":
            steps.append(.byteLevel(addPrefixSpace: try flag("add_prefix_space", default: true),
                                    useRegex: try flag("use_regex", default: true)))
        default:
            throw TokenizerFileError.unsupported(path: path, field: field + ".type", value: describeJSON(type),
                                                 supported: "\"Sequence\", \"Split\", \"Digits\", \"ByteLevel\"")
        }
    }

    static func checkDecoder(_ v: Any?, field: String, path: String) throws {
        let (type, d) = try typeOf(v, field, path: path) ?? ("null", [:])
        switch type {
        case "ByteLevel": return
        case "Sequence":
            let list = (d["decoders"] as? [Any]) ?? []
            guard !list.isEmpty else { break }
            for (i, x) in list.enumerated() { try checkDecoder(x, field: "\(field).decoders[\(i)]", path: path) }
            return
        default: break
        }
        throw TokenizerFileError.unsupported(path: path, field: field + ".type", value: describeJSON(type),
                                             supported: "\"ByteLevel\" (byte-level BPE)")
    }

    static func readPostProcessor(_ v: Any?, field: String, path: String, firstSpecial: inout String?) throws {
        guard let (type, d) = try typeOf(v, field, path: path) else { return }
        switch type {
        case "ByteLevel": return
        case "Sequence":
            for (i, x) in ((d["processors"] as? [Any]) ?? []).enumerated() {
                try readPostProcessor(x, field: "\(field).processors[\(i)]", path: path, firstSpecial: &firstSpecial)
            }
        case "TemplateProcessing":
            if let single = d["single"] as? [Any], let first = single.first as? [String: Any],
               let sp = first["SpecialToken"] as? [String: Any], let id = sp["id"] as? String {
                firstSpecial = id
            }
        default:
            throw TokenizerFileError.unsupported(path: path, field: field + ".type", value: describeJSON(type),
                                                 supported: "null, \"ByteLevel\", \"TemplateProcessing\", \"Sequence\"")
        }
    }
}
