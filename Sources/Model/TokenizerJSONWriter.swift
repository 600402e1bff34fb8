import Foundation

// Writing a tokenizer as Hugging Face files (`tokenizer.json`, `tokenizer_config.json`), so that
// a directory exported from a GGUF source carries its tokenizer: the `tokenizers` library and
// `BPETokenizer(huggingFaceDirectory:)` read them back to the same ids.

extension BPETokenizer {
    /// The merges as pairs of token spellings, lowest rank first.
    public var mergePairs: [(String, String)] {
        var ranked: [(rank: UInt64, key: UInt64)] = []
        ranked.reserveCapacity(merges.count)
        for (key, value) in merges { ranked.append((value >> 32, key)) }
        ranked.sort { $0.rank < $1.rank }
        return ranked.map { (tokens[Int($0.key >> 32)], tokens[Int($0.key & 0xFFFF_FFFF)]) }
    }

    /// The added tokens (matched in the text before pre-tokenisation) with their flags, by id.
    public var addedTokens: [AddedToken] {
        addedByFirstByte.joined().map(\.token).sorted { $0.id < $1.id }
    }

    /// The pre-tokenisation steps (SmolLM2's for a tokenizer read from its GGUF).
    public var preTokenizerSteps: [PreTokenizerStep] {
        pipeline?.steps ?? [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)]
    }

    /// `tokenizer.json`'s object for this tokenizer.
    public func tokenizerJSONObject() -> [String: Any] {
        let null = NSNull()
        func byteLevel(prefix: Bool, trim: Bool, regex: Bool) -> [String: Any] {
            ["type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": trim, "use_regex": regex]
        }
        var steps: [[String: Any]] = []
        for s in preTokenizerSteps {
            switch s {
            case let .split(pattern, behavior, invert):
                let p: [String: Any]
                switch pattern {
                case .llama3: p = ["Regex": SplitPattern.llama3Regex]
                case .qwen2: p = ["Regex": SplitPattern.qwen2Regex]
                case .gpt2: p = ["Regex": SplitPattern.gpt2Regex]
                case .literal(let v):
                    var u = String.UnicodeScalarView()
                    u.append(contentsOf: v.compactMap(Unicode.Scalar.init))
                    p = ["String": String(u)]
                }
                steps.append(["type": "Split", "pattern": p, "behavior": behavior.rawValue, "invert": invert])
            case let .digits(individual):
                steps.append(["type": "Digits", "individual_digits": individual])
            case let .byteLevel(prefix, regex):
                steps.append(byteLevel(prefix: prefix, trim: true, regex: regex))
            }
        }
        var vocab: [String: Int] = [:]
        for i in 0..<modelVocabularyEnd { vocab[tokens[i]] = i }
        let model: [String: Any] = [
            "type": "BPE", "dropout": null, "unk_token": unknown.map { tokens[Int($0)] as Any } ?? null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": fuseUnknown,
            "byte_fallback": byteFallbackIDs != nil, "ignore_merges": ignoreMerges, "vocab": vocab,
            "merges": mergePairs.map { [$0.0, $0.1] },
        ]
        let added: [[String: Any]] = addedTokens.map {
            ["id": $0.id, "content": $0.content, "single_word": $0.singleWord, "lstrip": $0.lstrip, "rstrip": $0.rstrip,
             "normalized": $0.normalized, "special": $0.special]
        }
        let post: [String: Any]
        if addsBOS, let bos {
            let b = tokens[Int(bos)]
            post = ["type": "TemplateProcessing",
                    "single": [["SpecialToken": ["id": b, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                    "pair": [["SpecialToken": ["id": b, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                             ["SpecialToken": ["id": b, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]]],
                    "special_tokens": [b: ["id": b, "ids": [Int(bos)], "tokens": [b]]]]
        } else {
            post = byteLevel(prefix: true, trim: false, regex: true)
        }
        return [
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
            "normalizer": normalizer == .nfc ? ["type": "NFC"] : null,
            "pre_tokenizer": steps.count == 1 ? steps[0] : ["type": "Sequence", "pretokenizers": steps],
            "post_processor": post, "decoder": byteLevel(prefix: true, trim: true, regex: true), "model": model,
        ]
    }

    /// `tokenizer_config.json`'s object: the special tokens, `add_bos_token`, the chat
    /// template, and the class `transformers` builds (`PreTrainedTokenizerFast`).
    public func tokenizerConfigObject() -> [String: Any] {
        var c: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false,
            "add_bos_token": addsBOS, "add_eos_token": false,
            "bos_token": bos.map { tokens[Int($0)] as Any } ?? NSNull(), "eos_token": tokens[Int(eos)],
            "pad_token": pad.map { tokens[Int($0)] as Any } ?? NSNull(),
        ]
        if let chatTemplate { c["chat_template"] = chatTemplate }
        var decoder: [String: Any] = [:]
        for a in addedTokens {
            decoder[String(a.id)] = ["content": a.content, "single_word": a.singleWord, "lstrip": a.lstrip,
                                     "rstrip": a.rstrip, "normalized": a.normalized, "special": a.special]
        }
        c["added_tokens_decoder"] = decoder
        return c
    }

    /// Writes `directory/tokenizer.json` and `directory/tokenizer_config.json` (atomically).
    /// Returns their paths.
    @discardableResult
    public func writeHuggingFaceFiles(directory: String) throws -> [String] {
        var out: [String] = []
        for (name, object) in [(Self.tokenizerJSONFile, tokenizerJSONObject()), ("tokenizer_config.json", tokenizerConfigObject())] {
            let data: Data
            do { data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) } catch {
                throw TokenizerFileError.invalid(path: directory + "/" + name, field: "(all)",
                                                 problem: "cannot encode as JSON: \(error.localizedDescription)")
            }
            let path = directory + "/" + name
            try writeFileAtomically(path, [UInt8](data))
            out.append(path)
        }
        return out
    }
}
