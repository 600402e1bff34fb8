// Glue from the GGUF reader to `BPETokenizer`.

extension BPETokenizer {
    /// Reads the tokenizer from a GGUF file's metadata: `tokenizer.ggml.tokens`, `.merges`,
    /// `.token_type`, `.bos_token_id` (optional), `.eos_token_id`, `.padding_token_id` (optional), and
    /// `tokenizer.chat_template` (optional; picks `chatFormat`).
    /// Only GPT-2-style byte-level BPE with SmolLM2's pre-tokeniser is implemented
    /// (`tokenizer.ggml.model = gpt2`, `tokenizer.ggml.pre = smollm`).
    public convenience init(gguf: GGUFFile) throws {
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
        try self.init(tokens: tokens, merges: merges, tokenTypes: types,
                      bos: try optionalInt("tokenizer.ggml.bos_token_id"),
                      eos: try gguf.int("tokenizer.ggml.eos_token_id"),
                      pad: try optionalInt("tokenizer.ggml.padding_token_id"),
                      chatTemplate: gguf.metadata["tokenizer.chat_template"] == nil
                        ? nil : try gguf.string("tokenizer.chat_template"))
    }

    /// Convenience: open `path` and read its tokenizer.
    public convenience init(ggufPath path: String) throws {
        try self.init(gguf: try GGUFFile(path: path))
    }
}


