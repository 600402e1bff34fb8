// Glue from the GGUF reader to `BPETokenizer`.

extension BPETokenizer {
    /// Reads the tokenizer from a GGUF file's metadata: `tokenizer.ggml.tokens`, `.merges`,
    /// `.token_type`, `.bos_token_id` (optional), `.eos_token_id`, `.padding_token_id` (optional),
    /// `.eot_token_id` / `.eom_token_id` (optional, more ids that end a generation),
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
