import Foundation

// Writing a tokenizer as Hugging Face files (`tokenizer.json`, `tokenizer_config.json`,
// `special_tokens_map.json`, `generation_config.json`), so that a directory exported from a GGUF
// source (or a checkpoint of a run on one) carries its tokenizer: `transformers`' AutoTokenizer,
// the `tokenizers` library and `BPETokenizer(huggingFaceDirectory:)` read them back to the same ids.

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

    /// The special tokens by name (`bos_token`, `eos_token`, `pad_token`, `unk_token`; null when
    /// there is none), as `tokenizer_config.json` and `special_tokens_map.json` name them.
    var specialTokensMap: [String: Any] {
        func name(_ id: Int32?) -> Any { id.map { tokens[Int($0)] as Any } ?? NSNull() }
        return ["bos_token": name(bos), "eos_token": name(eos), "pad_token": name(pad), "unk_token": name(unk)]
    }

    /// `tokenizer_config.json`'s object: the special tokens, `add_bos_token`, the chat
    /// template, `model_max_length` (`contextLength`, when given) and the class `transformers`
    /// builds (`PreTrainedTokenizerFast`).
    public func tokenizerConfigObject(contextLength: Int? = nil) -> [String: Any] {
        var c: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false,
            "add_bos_token": addsBOS, "add_eos_token": false,
        ]
        c.merge(specialTokensMap) { a, _ in a }
        if let chatTemplate { c["chat_template"] = chatTemplate }
        if let contextLength { c["model_max_length"] = contextLength }
        var decoder: [String: Any] = [:]
        for a in addedTokens {
            decoder[String(a.id)] = ["content": a.content, "single_word": a.singleWord, "lstrip": a.lstrip,
                                     "rstrip": a.rstrip, "normalized": a.normalized, "special": a.special]
        }
        c["added_tokens_decoder"] = decoder
        return c
    }

    /// `generation_config.json`'s object: bos, the stop tokens as `eos_token_id` (EOS first;
    /// a list when there are more), pad.
    public func generationConfigObject() -> [String: Any] {
        let stops = [Int(eos)] + stopTokens.subtracting([eos]).sorted().map(Int.init)
        var g: [String: Any] = ["_from_model_config": true, "eos_token_id": stops.count == 1 ? stops[0] as Any : stops]
        if let bos { g["bos_token_id"] = Int(bos) }
        if let pad { g["pad_token_id"] = Int(pad) }
        return g
    }

    /// tokenizer.json, tokenizer_config.json, special_tokens_map.json and generation_config.json
    /// for this tokenizer (`contextLength`: tokenizer_config.json's `model_max_length`).
    public func huggingFaceFiles(contextLength: Int? = nil) throws -> [HFSideFile] {
        let objects: [(String, [String: Any])] = [
            (Self.tokenizerJSONFile, tokenizerJSONObject()),
            ("tokenizer_config.json", tokenizerConfigObject(contextLength: contextLength)),
            ("special_tokens_map.json", specialTokensMap.filter { !($0.value is NSNull) }),
            ("generation_config.json", generationConfigObject()),
        ]
        return try objects.map { name, object in
            let bytes: [UInt8]
            do {
                let pretty = name != Self.tokenizerJSONFile  // the small files, for people to read
                bytes = try JSONText.encode(object, indent: pretty ? 2 : 0)
            } catch {
                throw TokenizerFileError.invalid(path: name, field: "(all)", problem: "cannot encode as JSON: \(error)")
            }
            return HFSideFile(name: name, bytes: bytes)
        }
    }

    /// Writes `huggingFaceFiles(contextLength:)` into `directory` (each atomically). Returns their paths.
    @discardableResult
    public func writeHuggingFaceFiles(directory: String, contextLength: Int? = nil) throws -> [String] {
        let files = try huggingFaceFiles(contextLength: contextLength)
        try TokenizerExport.write(files, directory: directory)
        return files.map { directory + "/" + $0.name }
    }
}
