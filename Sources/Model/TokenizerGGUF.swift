// Glue from the GGUF reader to `BPETokenizer`.

extension BPETokenizer {
    /// Reads the tokenizer from a GGUF file's metadata: `tokenizer.ggml.tokens`, `.merges`,
    /// `.token_type`, `.bos_token_id` (optional), `.eos_token_id`, `.padding_token_id` (optional),
    /// `.unknown_token_id` (optional, named only: `unk`), `.eot_token_id` / `.eom_token_id` (optional, more ids that end a generation),
    /// `.add_bos_token` (optional), and `tokenizer.chat_template` (optional; picks `chatFormat`).
    /// Only GPT-2-style byte-level BPE (`tokenizer.ggml.model = gpt2`) is implemented, with the
    /// pre-tokenisers `tokenizer.ggml.pre` names (see `BPEOptions(ggufPre:path:)`).
    public convenience init(gguf: GGUFFile) throws {
        if gguf.metadata["tokenizer.ggml.model"] != nil {
            let model = try gguf.string("tokenizer.ggml.model")
            guard model == "gpt2" else {
                throw GGUFError.invalid(path: gguf.path, problem: "metadata 'tokenizer.ggml.model' is '\(model)'; only "
                                        + "'gpt2' (byte-level BPE) is supported")
            }
        }
        let tokens = try gguf.stringArray("tokenizer.ggml.tokens")
        let merges = try gguf.stringArray("tokenizer.ggml.merges")
        let types: [Int]
        if gguf.metadata["tokenizer.ggml.token_type"] != nil {
            types = try gguf.intArray("tokenizer.ggml.token_type")
        } else {
            types = Array(repeating: TokenType.normal.rawValue, count: tokens.count)
        }
        func optionalInt(_ key: String) throws -> Int? {
            gguf.metadata[key] == nil ? nil : try gguf.int(key)
        }
        var options = try BPEOptions(ggufPre: gguf.metadata["tokenizer.ggml.pre"] == nil
                                        ? nil : try gguf.string("tokenizer.ggml.pre"), path: gguf.path)
        if gguf.metadata["tokenizer.ggml.add_bos_token"] != nil {
            options.addsBOS = try gguf.bool("tokenizer.ggml.add_bos_token")
        }
        options.chatTemplate = gguf.metadata["tokenizer.chat_template"] == nil
            ? nil : try gguf.string("tokenizer.chat_template")
        options.extraStopTokens = try ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"].compactMap(optionalInt)
        options.unkToken = try optionalInt("tokenizer.ggml.unknown_token_id")
        try self.init(tokens: tokens, mergePairs: try Self.mergePairs(merges), tokenTypes: types,
                      bos: try optionalInt("tokenizer.ggml.bos_token_id"),
                      eos: try gguf.int("tokenizer.ggml.eos_token_id"),
                      pad: try optionalInt("tokenizer.ggml.padding_token_id"), options: options)
    }

    /// Convenience: open `path` and read its tokenizer.
    public convenience init(ggufPath path: String) throws {
        try self.init(gguf: try GGUFFile(path: path))
    }

    /// `"left right"` merge strings as pairs.
    static func mergePairs(_ merges: [String]) throws -> [(String, String)] {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(merges.count)
        for (rank, m) in merges.enumerated() {
            let parts = m.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.malformedMerge(index: rank, merge: m)
            }
            pairs.append((String(parts[0]), String(parts[1])))
        }
        return pairs
    }

    /// This tokenizer as GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`), as
    /// llama.cpp's converter writes it and `init(gguf:)` reads it back: the tokens by id, padded
    /// to the model's `vocabSize` rows with `[PAD<i>]` (type unused); the token types (an added
    /// token of tokenizer.json is control when special, else user-defined: GGUF keeps no other
    /// added-token flag); merges as "left right"; bos / eos / unk / pad; the stop tokens
    /// besides EOS as `eot_token_id` and `eom_token_id` (GGUF has no key for a third);
    /// `add_bos_token`; the chat template. `bosFallback` is the model's `bos_token_id`
    /// (config.json), written when the tokenizer names no BOS, as llama.cpp's converter does.
    /// A tokenizer GGUF cannot describe (a pre-tokenisation without a `tokenizer.ggml.pre`
    /// name, byte fallback, more tokens than rows) is refused.
    public func ggufMetadata(vocabSize rows: Int? = nil,
                             bosFallback: Int? = nil) throws -> [(key: String, value: GGUFValue)] {
        guard let pre = ggufPreTokenizer else {
            throw TokenizerExportError(
                "the tokenizer's pre-tokenisation (\(preTokenizerSteps), normalizer \(normalizer), ignore_merges "
                    + "\(ignoreMerges)) has no tokenizer.ggml.pre name; GGUF can hold those of SmolLM2 (smollm), "
                    + "Llama 3 (llama-bpe), Qwen2 (qwen2) and GPT-2 (gpt-2)")
        }
        guard byteFallbackIDs == nil else {
            throw TokenizerExportError("the tokenizer uses byte_fallback (a SentencePiece-style BPE); only byte-level "
                                       + "BPE can be written to GGUF")
        }
        let rows = rows ?? vocabSize
        guard vocabSize <= rows else {
            throw TokenizerExportError("the tokenizer has \(vocabSize) tokens but the model only \(rows) rows "
                                       + "(vocab_size): the tokenizer does not belong to this model")
        }
        var tokens: [GGUFValue] = self.tokens.map { .string($0) }
        var types: [GGUFValue] = tokenTypes.map { .int32($0) }
        for i in vocabSize..<rows {
            tokens.append(.string("[PAD\(i)]"))
            types.append(.int32(Int32(TokenType.unused.rawValue)))
        }
        var m: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(tokens)), ("tokenizer.ggml.token_type", .array(types)),
            ("tokenizer.ggml.merges", .array(mergePairs.map { .string($0.0 + " " + $0.1) })),
        ]
        func id(_ key: String, _ value: Int32?) {
            if let value { m.append(("tokenizer.ggml." + key, .uint32(UInt32(value)))) }
        }
        id("bos_token_id", bos ?? bosFallback.flatMap { (0..<rows).contains($0) ? Int32($0) : nil })
        id("eos_token_id", eos)
        id("unknown_token_id", unk)
        id("padding_token_id", pad)
        let stops = stopTokens.subtracting([eos]).sorted()
        id("eot_token_id", stops.first)
        id("eom_token_id", stops.dropFirst().first)
        m.append(("tokenizer.ggml.add_bos_token", .bool(addsBOS)))
        if let chatTemplate { m.append(("tokenizer.chat_template", .string(chatTemplate))) }
        return m
    }

    /// The `tokenizer.ggml.pre` name of this tokenizer's pre-tokenisation (normaliser, pipeline,
    /// `ignore_merges`), for writing a GGUF; nil when no llama.cpp name describes it.
    public var ggufPreTokenizer: String? {
        guard let steps = pipeline?.steps else { return normalizer == .none && !ignoreMerges ? "smollm" : nil }
        let byteLevel = PreTokenizerStep.byteLevel(addPrefixSpace: false, useRegex: false)
        switch (steps, normalizer, ignoreMerges) {
        case ([.split(.llama3, behavior: .isolated, invert: false), byteLevel], .none, true): return "llama-bpe"
        case ([.split(.qwen2, behavior: .isolated, invert: false), byteLevel], .nfc, false): return "qwen2"
        case ([.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)], .none, false): return "smollm"
        case ([.byteLevel(addPrefixSpace: false, useRegex: true)], .none, false): return "gpt-2"
        default: return nil
        }
    }
}

extension BPEOptions {
    /// The pre-tokenisation a GGUF's `tokenizer.ggml.pre` names (as llama.cpp reads it, with
    /// the Hugging Face tokenizer's normaliser): absent or `smollm`: SmolLM2's (Digits +
    /// GPT-2 pattern); `llama-bpe` / `llama3`: the Llama-3 Split with `ignore_merges`; `qwen2`:
    /// NFC and the Qwen2 Split; `gpt-2`: the GPT-2 pattern. Anything else is refused.
    public init(ggufPre pre: String?, path: String) throws {
        self.init()
        let byteLevel = PreTokenizerStep.byteLevel(addPrefixSpace: false, useRegex: false)
        switch pre {
        case nil, "smollm": break
        case "llama-bpe", "llama3":
            preTokenizer = [.split(.llama3, behavior: .isolated, invert: false), byteLevel]
            ignoreMerges = true
        case "qwen2":
            preTokenizer = [.split(.qwen2, behavior: .isolated, invert: false), byteLevel]
            normalizer = .nfc
        case "gpt-2", "gpt2":
            preTokenizer = [.byteLevel(addPrefixSpace: false, useRegex: true)]
        case let other?:
            throw GGUFError.invalid(path: path, problem: "metadata 'tokenizer.ggml.pre' is '\(other)'; supported: "
                                    + "smollm, llama-bpe (llama3), qwen2, gpt-2")
        }
    }
}
