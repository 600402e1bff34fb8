/// Byte-level BPE tokeniser as SmolLM2 uses it (GGUF `tokenizer.ggml.model = gpt2`,
/// `tokenizer.ggml.pre = smollm`).
///
/// Encoding: (optionally) split out control tokens written literally in the text, pre-tokenise
/// each remaining segment (see `PreTokenizer`), spell each piece's UTF-8 bytes with the GPT-2
/// byte characters, apply merges lowest rank first until none applies, and look the symbols up.
/// Decoding concatenates each token's bytes (control tokens give their literal text).
///
/// Token ids are `Int32` (the vocabulary has 49152 entries; half the memory of `Int` for the long
/// id sequences the trainer keeps).

import Foundation  // LocalizedError only

/// Why a tokeniser could not be built or an id could not be decoded.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case emptyVocabulary
    case vocabularyTooLarge(count: Int)
    case tooManyMerges(count: Int)
    case tokenTypeCountMismatch(tokens: Int, tokenTypes: Int)
    case duplicateToken(token: String, firstID: Int, secondID: Int)
    case malformedMerge(index: Int, merge: String)
    case mergeTokenNotInVocabulary(index: Int, merge: String, token: String)
    case mergeResultNotInVocabulary(index: Int, merge: String, result: String)
    case specialTokenOutOfRange(name: String, id: Int, vocabSize: Int)
    case invalidTokenID(id: Int, vocabSize: Int)

    public var description: String {
        switch self {
        case .emptyVocabulary:
            return "tokenizer: the vocabulary is empty"
        case .vocabularyTooLarge(let count):
            return "tokenizer: the vocabulary has \(count) tokens, more than Int32 ids can hold"
        case .tooManyMerges(let count):
            return "tokenizer: \(count) merges, more than ranks can hold (2^31 - 1)"
        case .tokenTypeCountMismatch(let tokens, let tokenTypes):
            return "tokenizer: \(tokens) tokens but \(tokenTypes) token types; the two lists must have the same length"
        case .duplicateToken(let token, let firstID, let secondID):
            return "tokenizer: token \(String(reflecting: token)) appears twice in the vocabulary (ids \(firstID) and \(secondID))"
        case .malformedMerge(let index, let merge):
            return "tokenizer: merge #\(index) \(String(reflecting: merge)) is malformed; expected two non-empty tokens separated by one space"
        case .mergeTokenNotInVocabulary(let index, let merge, let token):
            return "tokenizer: merge #\(index) \(String(reflecting: merge)) uses \(String(reflecting: token)), which is not in the vocabulary"
        case .mergeResultNotInVocabulary(let index, let merge, let result):
            return "tokenizer: merge #\(index) \(String(reflecting: merge)) produces \(String(reflecting: result)), which is not in the vocabulary"
        case .specialTokenOutOfRange(let name, let id, let vocabSize):
            return "tokenizer: \(name) token id \(id) is outside the vocabulary (0..<\(vocabSize))"
        case .invalidTokenID(let id, let vocabSize):
            return "tokenizer: token id \(id) is outside the vocabulary (0..<\(vocabSize))"
        }
    }
}

extension TokenizerError: LocalizedError {
    public var errorDescription: String? { description }
}

/// GGUF token types (`tokenizer.ggml.token_type`).
public enum TokenType: Int, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

public final class BPETokenizer: Sendable {
    /// Token spellings, indexed by id.
    public let tokens: [String]
    /// Raw GGUF token types, indexed by id (see `TokenType`).
    public let tokenTypes: [Int32]
    public let bos: Int32?
    public let eos: Int32
    public let pad: Int32?
    /// The unknown token named for other tools (`tokenizer_config.json`'s `unk_token`, GGUF
    /// `tokenizer.ggml.unknown_token_id`), else the BPE model's `unk_token`; `encode` produces
    /// it only in the latter case.
    public let unk: Int32?
    public var vocabSize: Int { tokens.count }

    private let tokenToID: [String: Int32]
    /// (left id << 32 | right id) -> (rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    /// Token id of each single byte; -1 where the vocabulary has no token for it.
    let byteIDs: [Int32]
    /// Bytes the vocabulary has no token for (SmolLM2: 0x04 0x06 0x13 0x14 0x16 0x1D, and 0xC0
    /// 0xC1 0xF1 0xF2 0xF5...0xFF, the last never in valid UTF-8). `encode` drops them, as the
    /// reference does (HF BPE without an unknown token; llama.cpp likewise), so text holding them
    /// does not round-trip; the neighbours of a dropped byte become adjacent for merging.
    public let unrepresentableBytes: [UInt8]
    /// The bytes each token decodes to: `decodedBytes[decodedOffsets[i] ..< decodedOffsets[i+1]]`.
    private let decodedBytes: [UInt8]
    private let decodedOffsets: [Int]
    /// Added tokens matched in the text before pre-tokenisation, grouped by first byte, longest
    /// first. From GGUF: the control / user-defined tokens, as special tokens (matched only when
    /// `allowSpecial`); from `tokenizer.json`: its `added_tokens` with their flags.
    let addedByFirstByte: [[AddedTokenEntry]]
    /// Whether any added token is matched without `allowSpecial` (not special), and whether any
    /// is matched in the normalised text (`normalized`).
    private let hasNonSpecialAdded: Bool
    private let hasNormalizedAdded: Bool
    /// The `tokenizer.json` pipeline; nil: SmolLM2's pre-tokeniser (`PreTokenizer`).
    let pipeline: PreTokenizerPipeline?
    public let normalizer: TextNormalizer
    /// BPE `ignore_merges`: a pre-token that is itself in the model vocabulary is one id.
    public let ignoreMerges: Bool
    /// Ids below this are the BPE model's own vocabulary (the rest are added tokens).
    let modelVocabularyEnd: Int
    /// BPE `unk_token` (with `fuse_unk`) and `byte_fallback`, for bytes without a token.
    let unknown: Int32?
    let fuseUnknown: Bool
    /// `<0xXX>` ids per byte when `byte_fallback` is on and all 256 exist.
    let byteFallbackIDs: [Int32]?
    /// Every id that ends a generation: `eos` plus `generation_config.json`'s `eos_token_id` list.
    public let stopTokens: Set<Int32>
    /// Whether the model expects BOS in front of a text (`add_bos_token`, or a post-processor
    /// template starting with it). `encode` never adds it; callers that build prompts do.
    public let addsBOS: Bool
    /// The chat prompt format the tokenizer's chat template / special tokens call for, if known.
    public let chatFormat: ChatFormat?
    /// The `chat_template` the format was read from, if any.
    public let chatTemplate: String?

    /// Builds a tokeniser from plain vocabulary arrays (as stored in GGUF).
    /// - Parameters:
    ///   - tokens: token spellings; id = index.
    ///   - merges: `"left right"` strings; rank = index (lower merges first).
    ///   - tokenTypes: one GGUF token type per token (1 normal, 3 control, 4 user-defined, ...).
    ///   - bos, eos, pad: special ids (`pad` defaults to none).
    public convenience init(tokens: [String], merges: [String], tokenTypes: [Int], bos: Int?, eos: Int,
                            pad: Int? = nil, chatTemplate: String? = nil) throws {
        var options = BPEOptions()
        options.chatTemplate = chatTemplate
        try self.init(tokens: tokens, mergePairs: try Self.mergePairs(merges), tokenTypes: tokenTypes, bos: bos, eos: eos,
                      pad: pad, options: options)
    }

    /// Builds a tokeniser from vocabulary arrays, merge pairs (rank = index) and `options` (the
    /// `tokenizer.json` pipeline; the defaults are SmolLM2's GGUF tokeniser).
    public init(tokens: [String], mergePairs merges: [(String, String)], tokenTypes: [Int], bos: Int?, eos: Int,
                pad: Int? = nil, options: BPEOptions) throws {
        guard !tokens.isEmpty else { throw TokenizerError.emptyVocabulary }
        guard tokens.count < Int(Int32.max) else { throw TokenizerError.vocabularyTooLarge(count: tokens.count) }
        guard merges.count < Int(Int32.max) else { throw TokenizerError.tooManyMerges(count: merges.count) }
        guard tokenTypes.count == tokens.count else {
            throw TokenizerError.tokenTypeCountMismatch(tokens: tokens.count, tokenTypes: tokenTypes.count)
        }
        for (name, id) in [("bos", bos), ("eos", eos as Int?), ("pad", pad)] {
            if let id = id, !(0..<tokens.count).contains(id) {
                throw TokenizerError.specialTokenOutOfRange(name: name, id: id, vocabSize: tokens.count)
            }
        }

        var tokenToID: [String: Int32] = [:]
        tokenToID.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            if let first = tokenToID[t] {
                throw TokenizerError.duplicateToken(token: t, firstID: Int(first), secondID: i)
            }
            tokenToID[t] = Int32(i)
        }

        var byteIDs = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            byteIDs[b] = tokenToID[String(Unicode.Scalar(ByteLevel.byteToScalar[b])!)] ?? -1
        }

        var mergeTable: [UInt64: UInt64] = [:]
        mergeTable.reserveCapacity(merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            let m = left + " " + right
            guard !left.isEmpty, !right.isEmpty else { throw TokenizerError.malformedMerge(index: rank, merge: m) }
            guard let l = tokenToID[left] else {
                throw TokenizerError.mergeTokenNotInVocabulary(index: rank, merge: m, token: left)
            }
            guard let r = tokenToID[right] else {
                throw TokenizerError.mergeTokenNotInVocabulary(index: rank, merge: m, token: right)
            }
            guard let result = tokenToID[left + right] else {
                throw TokenizerError.mergeResultNotInVocabulary(index: rank, merge: m, result: left + right)
            }
            let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
            if mergeTable[key] == nil {  // a repeated pair keeps its first (lowest) rank
                mergeTable[key] = UInt64(UInt32(rank)) << 32 | UInt64(UInt32(result))
            }
        }

        var decodedBytes: [UInt8] = []
        var decodedOffsets: [Int] = [0]
        decodedOffsets.reserveCapacity(tokens.count + 1)
        var added: [[AddedTokenEntry]] = Array(repeating: [], count: 256)
        if let list = options.addedTokens {
            for a in list {
                guard (0..<tokens.count).contains(a.id) else {
                    throw TokenizerError.specialTokenOutOfRange(name: "added token \(String(reflecting: a.content))",
                                                                id: a.id, vocabSize: tokens.count)
                }
                // A normalised token matches its normalised spelling in the normalised text.
                let bytes = Array((a.normalized ? options.normalizer.apply(a.content) : a.content).utf8)
                if !bytes.isEmpty { added[Int(bytes[0])].append(AddedTokenEntry(bytes: bytes, id: Int32(a.id), token: a)) }
            }
        }
        for (i, t) in tokens.enumerated() {
            let type = tokenTypes[i]
            let isAdded = type == TokenType.control.rawValue || type == TokenType.userDefined.rawValue
            if isAdded && options.addedTokens == nil {
                let bytes = Array(t.utf8)
                if !bytes.isEmpty {
                    let token = AddedToken(content: t, id: i, special: true, normalized: false)
                    added[Int(bytes[0])].append(AddedTokenEntry(bytes: bytes, id: Int32(i), token: token))
                }
            }
            if isAdded && !options.byteLevelDecodesAddedTokens {
                decodedBytes += Array(t.utf8)
            } else if let bytes = ByteLevel.decode(t) {
                decodedBytes += bytes
            } else {
                decodedBytes += Array(t.utf8)  // not byte-level spelled: take it literally
            }
            decodedOffsets.append(decodedBytes.count)
        }
        // Longest first; among equal lengths the first listed (the reference's leftmost-longest
        // matcher takes the first pattern of equal matches).
        for k in 0..<256 {
            added[k] = added[k].enumerated().sorted {
                $0.element.bytes.count != $1.element.bytes.count
                    ? $0.element.bytes.count > $1.element.bytes.count : $0.offset < $1.offset
            }.map(\.element)
        }
        let allAdded = added.joined()
        for u in [options.unknownToken, options.unkToken] {
            if let u, !(0..<tokens.count).contains(u) {
                throw TokenizerError.specialTokenOutOfRange(name: "unk", id: u, vocabSize: tokens.count)
            }
        }
        var fallback: [Int32]? = nil
        if options.byteFallback {
            let ids = (0..<256).map { tokenToID[String(format: "<0x%02X>", $0)] ?? -1 }
            if !ids.contains(-1) { fallback = ids }
        }
        let modelEnd = min(options.modelVocabularySize ?? tokens.count, tokens.count)
        var stops: Set<Int32> = [Int32(eos)]
        for s in options.extraStopTokens {
            guard (0..<tokens.count).contains(s) else {
                throw TokenizerError.specialTokenOutOfRange(name: "stop", id: s, vocabSize: tokens.count)
            }
            stops.insert(Int32(s))
        }

        self.tokens = tokens
        self.tokenTypes = tokenTypes.map { Int32(truncatingIfNeeded: $0) }
        self.bos = bos.map { Int32($0) }
        self.eos = Int32(eos)
        self.pad = pad.map { Int32($0) }
        self.unk = (options.unkToken ?? options.unknownToken).map { Int32($0) }
        self.tokenToID = tokenToID
        self.merges = mergeTable
        self.byteIDs = byteIDs
        self.unrepresentableBytes = (0..<256).filter { byteIDs[$0] < 0 }.map { UInt8($0) }
        self.decodedBytes = decodedBytes
        self.decodedOffsets = decodedOffsets
        self.addedByFirstByte = added
        self.hasNonSpecialAdded = allAdded.contains { !$0.token.special }
        self.hasNormalizedAdded = allAdded.contains { $0.token.normalized }
        self.pipeline = options.preTokenizer.map { PreTokenizerPipeline(steps: $0) }
        self.normalizer = options.normalizer
        self.ignoreMerges = options.ignoreMerges
        self.modelVocabularyEnd = modelEnd
        self.unknown = options.unknownToken.map { Int32($0) }
        self.fuseUnknown = options.fuseUnknown
        self.byteFallbackIDs = fallback
        self.stopTokens = stops
        self.addsBOS = options.addsBOS && bos != nil
        self.chatTemplate = options.chatTemplate
        self.chatFormat = ChatFormat.detect(template: options.chatTemplate, hasToken: { tokenToID[$0] != nil })
    }

    // MARK: Lookup

    /// The id of a token spelling (as in the vocabulary, e.g. `"Ġthe"` or `"<|im_start|>"`).
    public func id(of token: String) -> Int32? { tokenToID[token] }

    /// The vocabulary spelling of `id`, or nil when `id` is outside the vocabulary.
    public func token(_ id: Int32) -> String? {
        (0..<Int32(tokens.count)).contains(id) ? tokens[Int(id)] : nil
    }

    /// Whether `id` is a control or user-defined token (matched literally, decoded literally).
    public func isSpecial(_ id: Int32) -> Bool {
        guard (0..<Int32(tokens.count)).contains(id) else { return false }
        let t = tokenTypes[Int(id)]
        return t == Int32(TokenType.control.rawValue) || t == Int32(TokenType.userDefined.rawValue)
    }

    // MARK: Decoding

    /// The exact bytes `ids` stand for (may end inside a UTF-8 sequence).
    public func decodeBytes<S: Sequence>(_ ids: S) throws -> [UInt8] where S.Element: BinaryInteger {
        var out: [UInt8] = []
        for raw in ids {
            guard let id = Int(exactly: raw), id >= 0, id < tokens.count else {
                throw TokenizerError.invalidTokenID(id: Int(clamping: raw), vocabSize: tokens.count)
            }
            out += decodedBytes[decodedOffsets[id]..<decodedOffsets[id + 1]]
        }
        return out
    }

    /// The text `ids` stand for. Exact for complete sequences; a UTF-8 sequence split by the end
    /// of `ids` (or an invalid one) becomes U+FFFD. Use `decodeBytes` for streaming.
    public func decode<S: Sequence>(_ ids: S) throws -> String where S.Element: BinaryInteger {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }

    // MARK: Encoding

    /// Encodes `text`. With `allowSpecial`, literal control-token texts (e.g. `<|im_start|>`)
    /// become their ids (leftmost, longest first) and the text between them is encoded normally;
    /// without it they are ordinary text. No BOS is added (SmolLM2: `add_bos_token = false`).
    public func encode(_ text: String, allowSpecial: Bool = false) -> [Int32] {
        var text = text
        return text.withUTF8 { encode(utf8: $0, allowSpecial: allowSpecial) }
    }

    /// `text` as a model prompt: BOS first when the model expects it (`addsBOS`: Llama-3), then
    /// the text with special-token strings read as text.
    public func encodePrompt(_ text: String) -> [Int32] {
        let ids = encode(text, allowSpecial: false)
        guard addsBOS, let bos else { return ids }
        return [bos] + ids
    }

    /// Encodes UTF-8 `bytes`; invalid UTF-8 is first repaired to U+FFFD, as `String` would.
    public func encode(utf8 bytes: [UInt8], allowSpecial: Bool = false) -> [Int32] {
        encode(String(decoding: bytes, as: UTF8.self), allowSpecial: allowSpecial)
    }

    /// The pre-tokenisation pieces of `text` (no special-token handling, no normalisation), for
    /// inspection; a space added by `ByteLevel`'s `add_prefix_space` is included.
    public func preTokenize(_ text: String) -> [String] {
        var text = text
        if let pipeline {
            return text.withUTF8 { buf in
                var t = ScalarText()
                t.load(buf)
                var pieces: [String] = []
                pipeline.run(t) { s, e, prefixSpace in
                    let piece = UnsafeBufferPointer(rebasing: buf[t.offsets[s]..<t.offsets[e]])
                    pieces.append((prefixSpace ? " " : "") + String(decoding: piece, as: UTF8.self))
                }
                return pieces
            }
        }
        return text.withUTF8 { buf in
            var classes: [ScalarClass] = [], starts: [Int] = []
            var pieces: [String] = []
            PreTokenizer.split(buf, classes: &classes, starts: &starts) { a, b in
                pieces.append(String(decoding: UnsafeBufferPointer(rebasing: buf[a..<b]), as: UTF8.self))
            }
            return pieces
        }
    }

    private func encode(utf8 buf: UnsafeBufferPointer<UInt8>, allowSpecial: Bool) -> [Int32] {
        var ws = Workspace()
        var out: [Int32] = []
        out.reserveCapacity(buf.count / 3 + 8)
        // 1. Added tokens written literally in the raw text; 2. normalise each remaining segment
        // and match the normalised added tokens in it; 3. pre-tokenise and merge the rest (the
        // reference's `AddedVocabulary::extract_and_normalize`, then the model).
        splitOnAdded(buf, normalized: false, allowSpecial: allowSpecial, out: &out) { segment, out in
            if normalizer == .none || !normalizer.mayChange(segment) {
                splitOnAdded(segment, normalized: true, allowSpecial: allowSpecial, out: &out) { piece, out in
                    encodeOrdinary(piece, into: &out, ws: &ws)
                }
                return
            }
            var text = normalizer.apply(String(decoding: segment, as: UTF8.self))
            text.withUTF8 { normalized in
                splitOnAdded(normalized, normalized: true, allowSpecial: allowSpecial, out: &out) { piece, out in
                    encodeOrdinary(piece, into: &out, ws: &ws)
                }
            }
        }
        return out
    }

    /// The reference's `AddedVocabulary::find_matches`: leftmost-longest matches of the added
    /// tokens whose `normalized` flag is `normalized`; a special token without `allowSpecial`, or
    /// a `single_word` token touching a word character, is passed over (its text stays text);
    /// `lstrip` / `rstrip` swallow the whitespace beside the token. Calls `text` with each
    /// stretch between tokens and appends the token ids.
    private func splitOnAdded(_ buf: UnsafeBufferPointer<UInt8>, normalized: Bool, allowSpecial: Bool,
                              out: inout [Int32],
                              text: (UnsafeBufferPointer<UInt8>, inout [Int32]) -> Void) {
        let active = normalized ? hasNormalizedAdded : (allowSpecial || hasNonSpecialAdded)
        let n = buf.count
        guard active, n > 0 else {
            if n > 0 { text(buf, &out) }
            return
        }
        var startOffset = 0
        var p = 0
        while p < n {
            var matched: AddedTokenEntry? = nil
            for c in addedByFirstByte[Int(buf[p])] where c.bytes.count <= n - p && c.token.normalized == normalized {
                var k = 1
                while k < c.bytes.count && buf[p + k] == c.bytes[k] { k += 1 }
                if k == c.bytes.count { matched = c; break }
            }
            guard let m = matched else {
                p += 1
                continue
            }
            var start = p, stop = p + m.bytes.count
            p = stop
            if m.token.special && !allowSpecial { continue }
            if m.token.singleWord {
                if start > 0 && Self.isWordScalar(Self.scalar(before: start, in: buf)) { continue }
                if stop < n && Self.isWordScalar(Self.scalar(at: stop, in: buf)) { continue }
            }
            if m.token.lstrip {
                var s = start
                while s > 0 {
                    let (v, len) = Self.scalarAndLength(before: s, in: buf)
                    guard Self.isWhiteSpace(v) else { break }
                    s -= len
                }
                start = max(s, startOffset)
            }
            if m.token.rstrip {
                while stop < n {
                    let (v, len) = Self.scalarAndLength(at: stop, in: buf)
                    guard Self.isWhiteSpace(v) else { break }
                    stop += len
                }
            }
            guard start >= startOffset else { continue }  // overlaps a stripped stretch
            if startOffset < start { text(UnsafeBufferPointer(rebasing: buf[startOffset..<start]), &out) }
            out.append(m.id)
            startOffset = stop
            p = max(p, stop)
        }
        if startOffset < n { text(UnsafeBufferPointer(rebasing: buf[startOffset..<n]), &out) }
    }

    // Scalars around a byte offset of valid UTF-8 (for the added-token flags).
    static func scalarAndLength(at p: Int, in buf: UnsafeBufferPointer<UInt8>) -> (UInt32, Int) {
        let b0 = buf[p]
        if b0 < 0x80 { return (UInt32(b0), 1) }
        var value: UInt32, len: Int
        if b0 >= 0xF0 { value = UInt32(b0 & 0x07); len = 4 }
        else if b0 >= 0xE0 { value = UInt32(b0 & 0x0F); len = 3 }
        else { value = UInt32(b0 & 0x1F); len = 2 }
        len = max(1, min(len, buf.count - p))
        for k in 1..<len { value = (value << 6) | UInt32(buf[p + k] & 0x3F) }
        return (value, len)
    }

    static func scalarAndLength(before p: Int, in buf: UnsafeBufferPointer<UInt8>) -> (UInt32, Int) {
        var s = p - 1
        while s > 0 && p - s < 4 && buf[s] & 0xC0 == 0x80 { s -= 1 }
        return (scalarAndLength(at: s, in: buf).0, p - s)
    }

    static func scalar(at p: Int, in buf: UnsafeBufferPointer<UInt8>) -> UInt32 { scalarAndLength(at: p, in: buf).0 }
    static func scalar(before p: Int, in buf: UnsafeBufferPointer<UInt8>) -> UInt32 {
        scalarAndLength(before: p, in: buf).0
    }

    /// Rust regex `\s`: Unicode White_Space.
    static func isWhiteSpace(_ v: UInt32) -> Bool { Unicode.Scalar(v)?.properties.isWhitespace ?? false }

    /// Rust regex `\w` (Unicode): Alphabetic, marks, decimal numbers, connector punctuation,
    /// Join_Control.
    static func isWordScalar(_ v: UInt32) -> Bool {
        guard let s = Unicode.Scalar(v) else { return false }
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Scratch state of one `encode` call, including the per-piece cache.
    struct Workspace {
        var text = ScalarText()
        var prefixed: [UInt8] = []
        var classes: [ScalarClass] = []
        var starts: [Int] = []
        var symbols: [Int32] = []
        var pairs: [UInt64] = []
        /// Pieces of at most 15 bytes -> range in `cacheStore`.
        var cache: [PieceKey: UInt64] = [:]
        var cacheStore: [Int32] = []
        // Heap path buffers.
        var prev: [Int32] = []
        var next: [Int32] = []
        var heap: [UInt64] = []
    }

    /// A piece of at most 15 bytes packed into two words (length in the top byte).
    struct PieceKey: Hashable {
        var a: UInt64 = 0
        var b: UInt64 = 0
    }

    private func encodeOrdinary(_ buf: UnsafeBufferPointer<UInt8>, into out: inout [Int32], ws: inout Workspace) {
        guard let pipeline else {
            // The scratch buffers of the split are moved out of `ws` so that the closure below may
            // use `ws` freely (exclusive access).
            var classes = ws.classes, starts = ws.starts
            ws.classes = []; ws.starts = []
            defer { ws.classes = classes; ws.starts = starts }
            PreTokenizer.split(buf, classes: &classes, starts: &starts) { start, end in
                encodePiece(buf, start, end, into: &out, ws: &ws)
            }
            return
        }
        var text = ws.text
        ws.text = ScalarText()
        defer { ws.text = text }
        text.load(buf)
        pipeline.run(text) { s, e, prefixSpace in
            let a = text.offsets[s], b = text.offsets[e]
            if prefixSpace {
                var bytes = ws.prefixed
                ws.prefixed = []
                bytes.removeAll(keepingCapacity: true)
                bytes.append(0x20)
                bytes += buf[a..<b]
                bytes.withUnsafeBufferPointer { encodePiece($0, 0, $0.count, into: &out, ws: &ws) }
                ws.prefixed = bytes
            } else {
                encodePiece(buf, a, b, into: &out, ws: &ws)
            }
        }
    }

    /// One pre-token `buf[start..<end]`: its ids from the per-call cache, or merged.
    private func encodePiece(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int,
                             into out: inout [Int32], ws: inout Workspace) {
        let len = end - start
        if len == 1 {
            let id = byteIDs[Int(buf[start])]
            if id >= 0 {
                out.append(id)
            } else {
                var symbols: [Int32] = []
                appendMissingByte(buf[start], into: &symbols)
                out += symbols
            }
            return
        }
        if len <= 15 {
            var key = PieceKey()
            for k in 0..<len {
                let v = UInt64(buf[start + k])
                if k < 8 { key.a |= v << (8 * UInt64(k)) } else { key.b |= v << (8 * UInt64(k - 8)) }
            }
            key.b |= UInt64(len) << 56
            if let r = ws.cache[key] {
                let s = Int(r >> 32), c = Int(r & 0xFFFF_FFFF)
                out += ws.cacheStore[s..<s + c]
                return
            }
            let before = out.count
            mergeWord(UnsafeBufferPointer(rebasing: buf[start..<end]), into: &out, ws: &ws)
            let s = ws.cacheStore.count
            ws.cacheStore += out[before...]
            ws.cache[key] = UInt64(s) << 32 | UInt64(out.count - before)
            return
        }
        mergeWord(UnsafeBufferPointer(rebasing: buf[start..<end]), into: &out, ws: &ws)
    }

    /// `ignore_merges`: a pre-token in the model vocabulary is that one id; else the merges.
    private func mergeWord(_ piece: UnsafeBufferPointer<UInt8>, into out: inout [Int32], ws: inout Workspace) {
        if ignoreMerges, let id = tokenToID[ByteLevel.encode(piece)], Int(id) < modelVocabularyEnd {
            out.append(id)
            return
        }
        mergePiece(piece, into: &out, ws: &ws)
    }
}
