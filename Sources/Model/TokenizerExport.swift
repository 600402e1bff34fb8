import Foundation

// The tokenizer of an exported model, in both directions:
//   GGUF `tokenizer.ggml.*` → Hugging Face files (tokenizer.json with a byte-level BPE model, the
//     pre-tokenizer `tokenizer.ggml.pre` names, the ByteLevel decoder, added_tokens for control and
//     user-defined tokens; tokenizer_config.json with bos/eos/pad/unk and the chat template;
//     special_tokens_map.json; generation_config.json);
//   Hugging Face tokenizer.json (+ tokenizer_config.json) → GGUF `tokenizer.ggml.*`, as llama.cpp's
//     converter (`get_vocab_base`, `SpecialVocab`) writes them.
// A Hugging Face source directory's own tokenizer files are carried over byte for byte.

/// A file of a Hugging Face model directory besides model.safetensors and config.json.
public struct HFSideFile: Equatable, Sendable {
    public var name: String
    public var bytes: [UInt8]

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}

/// Why a tokenizer could not be exported; names the file or key and what was expected.
public struct TokenizerExportError: Error, CustomStringConvertible, LocalizedError {
    public var description: String
    public var errorDescription: String? { description }

    public init(_ description: String) { self.description = description }
}

/// A pre-tokenizer both formats know: llama.cpp's `tokenizer.ggml.pre` name and the Hugging Face
/// `pre_tokenizer` (and normalizer) that goes with it.
public struct PreTokenizerFamily: Sendable {
    /// `tokenizer.ggml.pre`.
    public var gguf: String
    /// The pre-tokenizer steps, each in the canonical form `PreTokenizerFamily.steps(of:)` gives.
    public var steps: [String]
    /// tokenizer.json `pre_tokenizer` and `normalizer` values (JSON text).
    public var preTokenizerJSON: String
    public var normalizerJSON: String
    /// tokenizer.json `model.ignore_merges` (Llama 3 looks whole pieces up before merging).
    public var ignoreMerges: Bool

    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    static func splitThenBytes(_ regex: String) -> String {
        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\(jsonQuoted(regex))},"
            + "\"behavior\":\"Isolated\",\"invert\":false},"
            + "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}"
    }

    /// SmolLM2 (`smollm`), Llama 3 (`llama-bpe`), Qwen2/2.5/3 (`qwen2`).
    public static let all: [PreTokenizerFamily] = [
        PreTokenizerFamily(
            gguf: "smollm",
            steps: ["Digits(individual_digits=true)", "ByteLevel(add_prefix_space=false,use_regex=true)"],
            preTokenizerJSON: "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                + "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]}",
            normalizerJSON: "null", ignoreMerges: false),
        PreTokenizerFamily(
            gguf: "llama-bpe",
            steps: ["Split(\(llama3Regex),Isolated,invert=false)", "ByteLevel(add_prefix_space=false,use_regex=false)"],
            preTokenizerJSON: splitThenBytes(llama3Regex), normalizerJSON: "null", ignoreMerges: true),
        PreTokenizerFamily(
            gguf: "qwen2",
            steps: ["Split(\(qwen2Regex),Isolated,invert=false)", "ByteLevel(add_prefix_space=false,use_regex=false)"],
            preTokenizerJSON: splitThenBytes(qwen2Regex), normalizerJSON: "{\"type\":\"NFC\"}", ignoreMerges: false),
    ]

    public static func named(gguf: String) -> PreTokenizerFamily? { all.first { $0.gguf == gguf } }

    /// The canonical steps of a tokenizer.json `pre_tokenizer` value (a Sequence or one step);
    /// nil for a step kind not listed here.
    public static func steps(of value: Any) -> [String]? {
        guard let d = value as? [String: Any], let type = d["type"] as? String else { return nil }
        func flag(_ k: String, _ def: Bool) -> Bool { (d[k] as? NSNumber)?.boolValue ?? def }
        switch type {
        case "Sequence":
            guard let items = d["pretokenizers"] as? [Any] else { return nil }
            var out: [String] = []
            for i in items {
                guard let s = steps(of: i) else { return nil }
                out += s
            }
            return out
        case "Digits": return ["Digits(individual_digits=\(flag("individual_digits", false)))"]
        case "ByteLevel":
            return ["ByteLevel(add_prefix_space=\(flag("add_prefix_space", true)),use_regex=\(flag("use_regex", true)))"]
        case "Split":
            guard let p = d["pattern"] as? [String: Any], let r = (p["Regex"] ?? p["String"]) as? String else { return nil }
            let kind = p["Regex"] != nil ? r : "String:" + r
            return ["Split(\(kind),\(d["behavior"] as? String ?? "?"),invert=\(flag("invert", false)))"]
        default: return nil
        }
    }
}

public enum TokenizerExport {
    /// Tokenizer and generation files carried over verbatim from a Hugging Face source directory.
    public static let carriedFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                      "chat_template.jinja", "added_tokens.json", "vocab.json", "merges.txt",
                                      "generation_config.json"]

    // MARK: tokenizer source

    /// The tokenizer files of a model source: built from a GGUF file's `tokenizer.ggml.*`, or a
    /// Hugging Face directory's own (`hfFiles(directory:)`); nil for a Hugging Face directory
    /// without tokenizer.json. `contextLength` goes into tokenizer_config.json's `model_max_length`.
    public static func hfFiles(source path: String, contextLength: Int) throws -> [HFSideFile]? {
        switch try ModelSource.kind(of: path) {
        case .gguf: return try hfFiles(gguf: GGUFFile(path: path), contextLength: contextLength)
        case .huggingFace:
            guard FileManager.default.fileExists(atPath: path + "/tokenizer.json") else { return nil }
            return try hfFiles(directory: path)
        }
    }

    /// The GGUF tokenizer metadata of a model source: a GGUF file's own `tokenizer.*` keys, or
    /// converted from a Hugging Face directory's tokenizer.json (token lists padded to the
    /// model's `vocabSize` as llama.cpp does); nil for a directory without tokenizer.json.
    public static func ggufMetadata(source path: String, vocabSize: Int) throws -> [(key: String, value: GGUFValue)]? {
        switch try ModelSource.kind(of: path) {
        case .gguf: return try ggufMetadata(gguf: GGUFFile(path: path))
        case .huggingFace:
            guard FileManager.default.fileExists(atPath: path + "/tokenizer.json") else { return nil }
            return try ggufMetadata(directory: path, vocabSize: vocabSize)
        }
    }

    /// The side files of a training checkpoint for a run whose `model` is `spec` (RunContext's
    /// `modelPath`): the tokenizer the run encodes with. A `random:` model and a Hugging Face
    /// directory without tokenizer.json are tokenised with the installed SmolLM2's vocabulary.
    public static func sideFiles(runModel spec: String, contextLength: Int) throws -> [HFSideFile] {
        if !spec.hasPrefix("random:"), !spec.isEmpty, let files = try hfFiles(source: spec, contextLength: contextLength) {
            return files
        }
        return try hfFiles(gguf: GGUFFile(path: try ModelLocator.defaultGGUF()), contextLength: contextLength)
    }

    /// Writes `files` into `directory` (each atomically).
    public static func write(_ files: [HFSideFile], directory: String) throws {
        for f in files { try writeFileAtomically(directory + "/" + f.name, f.bytes) }
    }

    // MARK: Hugging Face directory → files

    /// The `carriedFiles` present in `directory`, byte for byte; generation_config.json is made
    /// from config.json's token ids when the directory has none.
    public static func hfFiles(directory: String) throws -> [HFSideFile] {
        var out: [HFSideFile] = []
        for name in carriedFiles {
            let p = directory + "/" + name
            guard FileManager.default.fileExists(atPath: p) else { continue }
            guard let d = FileManager.default.contents(atPath: p) else {
                throw TokenizerExportError("\(p): cannot read")
            }
            out.append(HFSideFile(name: name, bytes: [UInt8](d)))
        }
        if !out.contains(where: { $0.name == "generation_config.json" }) {
            let ids = try configTokenIDs(directory)
            if let eos = ids.eos { out.append(generationConfig(bos: ids.bos, eos: eos, pad: nil)) }
        }
        return out
    }

    /// config.json's `bos_token_id` and `eos_token_id` (the first of a list), read without
    /// interpreting the rest of the file (any family).
    static func configTokenIDs(_ directory: String) throws -> (bos: Int?, eos: Int?) {
        let c = try readJSONObject(directory + "/" + ParameterStore.hfConfigFile)
        func id(_ key: String) -> Int? {
            if let n = c[key] as? NSNumber { return n.intValue }
            return (c[key] as? [NSNumber])?.first?.intValue
        }
        return (id("bos_token_id"), id("eos_token_id"))
    }

    static func generationConfig(bos: Int?, eos: Int, pad: Int?) -> HFSideFile {
        var fields = ["  \"_from_model_config\": true"]
        if let bos { fields.append("  \"bos_token_id\": \(bos)") }
        fields.append("  \"eos_token_id\": \(eos)")
        if let pad { fields.append("  \"pad_token_id\": \(pad)") }
        return HFSideFile(name: "generation_config.json", bytes: Array(("{\n" + fields.joined(separator: ",\n") + "\n}\n").utf8))
    }

    // MARK: GGUF → Hugging Face files

    /// tokenizer.json, tokenizer_config.json, special_tokens_map.json and generation_config.json
    /// for the tokenizer in `gguf`'s metadata (`tokenizer.ggml.model` must be `gpt2`, the
    /// pre-tokenizer one of `PreTokenizerFamily.all`).
    public static func hfFiles(gguf g: GGUFFile, contextLength: Int) throws -> [HFSideFile] {
        let model = try g.string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw TokenizerExportError("GGUF file \(g.path): tokenizer.ggml.model is '\(model)'; only 'gpt2' (byte-level BPE) can be exported")
        }
        let preName = g.metadata["tokenizer.ggml.pre"] == nil ? "default" : try g.string("tokenizer.ggml.pre")
        guard let pre = PreTokenizerFamily.named(gguf: preName) else {
            throw TokenizerExportError("GGUF file \(g.path): tokenizer.ggml.pre is '\(preName)'; supported: "
                                       + PreTokenizerFamily.all.map(\.gguf).joined(separator: ", "))
        }
        let tokens = try g.stringArray("tokenizer.ggml.tokens")
        let merges = try g.stringArray("tokenizer.ggml.merges")
        let types = g.metadata["tokenizer.ggml.token_type"] == nil
            ? [Int](repeating: TokenType.normal.rawValue, count: tokens.count) : try g.intArray("tokenizer.ggml.token_type")
        guard types.count == tokens.count else {
            throw TokenizerExportError("GGUF file \(g.path): \(tokens.count) tokens but \(types.count) token types")
        }
        func optionalID(_ key: String) throws -> Int? {
            guard g.metadata[key] != nil else { return nil }
            let id = try g.int(key)
            guard tokens.indices.contains(id) else {
                throw TokenizerExportError("GGUF file \(g.path): \(key) = \(id) is outside the vocabulary (0..<\(tokens.count))")
            }
            return id
        }
        let bos = try optionalID("tokenizer.ggml.bos_token_id")
        guard let eos = try optionalID("tokenizer.ggml.eos_token_id") else {
            throw GGUFError.missingKey(path: g.path, key: "tokenizer.ggml.eos_token_id")
        }
        let pad = try optionalID("tokenizer.ggml.padding_token_id")
        let unk = try optionalID("tokenizer.ggml.unknown_token_id")
        let addBOS = g.metadata["tokenizer.ggml.add_bos_token"] == nil ? false : try g.bool("tokenizer.ggml.add_bos_token")
        let addEOS = g.metadata["tokenizer.ggml.add_eos_token"] == nil ? false : try g.bool("tokenizer.ggml.add_eos_token")
        let chat = g.metadata["tokenizer.chat_template"] == nil ? nil : try g.string("tokenizer.chat_template")
        if addBOS && bos == nil {
            throw TokenizerExportError("GGUF file \(g.path): tokenizer.ggml.add_bos_token is true but there is no tokenizer.ggml.bos_token_id")
        }

        let added = tokens.indices.filter {
            types[$0] == TokenType.control.rawValue || types[$0] == TokenType.userDefined.rawValue
        }
        func addedJSON(_ i: Int, withID: Bool) -> String {
            (withID ? "{\"id\":\(i)," : "{") + "\"content\":\(jsonQuoted(tokens[i])),\"single_word\":false,\"lstrip\":false,"
                + "\"rstrip\":false,\"normalized\":false,\"special\":\(types[i] == TokenType.control.rawValue)}"
        }
        // tokenizer.json
        var t = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
        t += added.map { addedJSON($0, withID: true) }.joined(separator: ",")
        t += "],\"normalizer\":\(pre.normalizerJSON),\"pre_tokenizer\":\(pre.preTokenizerJSON),"
        let byteLevelPost = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true}"
        if addBOS || addEOS {
            // Llama-3 style: BOS (and/or EOS) around every sequence.
            func special(_ id: Int) -> String { "{\"SpecialToken\":{\"id\":\(jsonQuoted(tokens[id])),\"type_id\":0}}" }
            func seq(_ s: String) -> String { "{\"Sequence\":{\"id\":\"\(s)\",\"type_id\":0}}" }
            let front = addBOS ? [special(bos!)] : [], back = addEOS ? [special(eos)] : []
            let single = (front + [seq("A")] + back).joined(separator: ",")
            let pair = (front + [seq("A")] + back + front + [seq("B")] + back).joined(separator: ",")
            let ids = Set((addBOS ? [bos!] : []) + (addEOS ? [eos] : [])).sorted()
            let specials = ids.map { "\(jsonQuoted(tokens[$0])):{\"id\":\(jsonQuoted(tokens[$0])),\"ids\":[\($0)],\"tokens\":[\(jsonQuoted(tokens[$0]))]}" }
            t += "\"post_processor\":{\"type\":\"Sequence\",\"processors\":[\(byteLevelPost),{\"type\":\"TemplateProcessing\","
                + "\"single\":[\(single)],\"pair\":[\(pair)],\"special_tokens\":{\(specials.joined(separator: ","))}}]},"
        } else {
            t += "\"post_processor\":\(byteLevelPost),"
        }
        t += "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
        t += "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
            + "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":\(pre.ignoreMerges),"
        t += "\"vocab\":{"
        t.reserveCapacity(t.utf8.count + 24 * tokens.count + 24 * merges.count)
        for (i, tok) in tokens.enumerated() {
            if i > 0 { t += "," }
            t += jsonQuoted(tok) + ":" + String(i)
        }
        t += "},\"merges\":["
        for (i, m) in merges.enumerated() {
            let parts = m.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw TokenizerExportError("GGUF file \(g.path): tokenizer.ggml.merges[\(i)] = \(String(reflecting: m)) is not two tokens separated by one space")
            }
            if i > 0 { t += "," }
            t += "[" + jsonQuoted(String(parts[0])) + "," + jsonQuoted(String(parts[1])) + "]"
        }
        t += "]}}\n"

        // tokenizer_config.json
        var c: [String] = [
            "  \"add_bos_token\": \(addBOS)",
            "  \"add_eos_token\": \(addEOS)",
            "  \"added_tokens_decoder\": {\n" + added.map { "    \"\($0)\": " + addedJSON($0, withID: false) }.joined(separator: ",\n") + "\n  }",
        ]
        var specials: [String] = []
        for (name, id) in [("bos_token", bos), ("eos_token", eos as Int?), ("pad_token", pad), ("unk_token", unk)] {
            guard let id else { continue }
            c.append("  \"\(name)\": \(jsonQuoted(tokens[id]))")
            specials.append("  \"\(name)\": \(jsonQuoted(tokens[id]))")
        }
        if let chat { c.append("  \"chat_template\": \(jsonQuoted(chat))") }
        c += ["  \"clean_up_tokenization_spaces\": false", "  \"model_max_length\": \(contextLength)",
              "  \"tokenizer_class\": \"PreTrainedTokenizerFast\""]
        let config = "{\n" + c.joined(separator: ",\n") + "\n}\n"
        let map = "{\n" + specials.joined(separator: ",\n") + "\n}\n"
        return [HFSideFile(name: "tokenizer.json", bytes: Array(t.utf8)),
                HFSideFile(name: "tokenizer_config.json", bytes: Array(config.utf8)),
                HFSideFile(name: "special_tokens_map.json", bytes: Array(map.utf8)),
                generationConfig(bos: bos, eos: eos, pad: pad)]
    }

    // MARK: GGUF tokenizer metadata

    /// Every `tokenizer.*` key of `gguf`, in file order.
    public static func ggufMetadata(gguf g: GGUFFile) throws -> [(key: String, value: GGUFValue)] {
        g.metadataKeys.filter { $0.hasPrefix("tokenizer.") }.map { ($0, g.metadata[$0]!) }
    }

    /// `tokenizer.ggml.*` (and `tokenizer.chat_template`) for a Hugging Face directory's
    /// tokenizer.json + tokenizer_config.json, as llama.cpp's converter writes them: tokens by id,
    /// padded to `vocabSize` with `[PAD<i>]` (type unused); added tokens control (special) or
    /// user-defined; merges as "left right"; bos/eos/pad/unk ids from tokenizer_config.json
    /// (else config.json's bos_token_id/eos_token_id); add_bos_token from tokenizer_config.json or from a
    /// TemplateProcessing post-processor that starts with the BOS token.
    public static func ggufMetadata(directory dir: String, vocabSize: Int) throws -> [(key: String, value: GGUFValue)] {
        let path = dir + "/tokenizer.json"
        func bad(_ s: String) -> TokenizerExportError { TokenizerExportError("\(path): \(s)") }
        let root = try readJSONObject(path)
        guard let model = root["model"] as? [String: Any] else { throw bad("no 'model' object") }
        guard (model["type"] as? String) == "BPE" else {
            throw bad("model.type is \(model["type"] ?? "missing"); only byte-level BPE can be written to GGUF")
        }
        if (model["byte_fallback"] as? NSNumber)?.boolValue == true {
            throw bad("model.byte_fallback is true (a SentencePiece-style BPE); only byte-level BPE can be written to GGUF")
        }
        guard let preValue = root["pre_tokenizer"], let steps = PreTokenizerFamily.steps(of: preValue),
              let pre = PreTokenizerFamily.all.first(where: { $0.steps == steps }) else {
            throw bad("the pre_tokenizer is not one of the known ones (" + PreTokenizerFamily.all.map(\.gguf).joined(separator: ", ")
                      + "): \(root["pre_tokenizer"].map { "\($0)" } ?? "none")")
        }
        guard let vocab = model["vocab"] as? [String: Any] else { throw bad("model.vocab is not an object") }
        var byID: [Int: String] = [:]
        for (tok, v) in vocab {
            guard let id = (v as? NSNumber)?.intValue, id >= 0 else { throw bad("model.vocab[\(String(reflecting: tok))] is not an id") }
            if let other = byID[id] { throw bad("id \(id) is used by \(String(reflecting: other)) and \(String(reflecting: tok))") }
            byID[id] = tok
        }
        var special: [Int: Bool] = [:]
        for a in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (a["id"] as? NSNumber)?.intValue, let content = a["content"] as? String else {
                throw bad("an added_tokens entry has no id/content: \(a)")
            }
            if let other = byID[id], other != content {
                throw bad("added token id \(id) is \(String(reflecting: content)) but the vocabulary has \(String(reflecting: other))")
            }
            byID[id] = content
            special[id] = (a["special"] as? NSNumber)?.boolValue ?? false
        }
        let maxID = byID.keys.max() ?? -1
        guard maxID < vocabSize else {
            throw bad("token id \(maxID) is outside the model's vocabulary (vocab_size \(vocabSize))")
        }
        var tokens: [GGUFValue] = [], types: [GGUFValue] = []
        tokens.reserveCapacity(vocabSize)
        types.reserveCapacity(vocabSize)
        for i in 0..<vocabSize {
            if let tok = byID[i] {
                tokens.append(.string(tok))
                let type: TokenType = special[i].map { $0 ? .control : .userDefined } ?? .normal
                types.append(.int32(Int32(type.rawValue)))
            } else {
                tokens.append(.string("[PAD\(i)]"))
                types.append(.int32(Int32(TokenType.unused.rawValue)))
            }
        }
        var merges: [GGUFValue] = []
        for (i, m) in (model["merges"] as? [Any] ?? []).enumerated() {
            if let s = m as? String {
                merges.append(.string(s))
            } else if let pair = m as? [String], pair.count == 2 {
                merges.append(.string(pair[0] + " " + pair[1]))
            } else {
                throw bad("model.merges[\(i)] is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }

        // Special tokens: tokenizer_config.json, else config.json.
        let configPath = dir + "/tokenizer_config.json"
        let tc = FileManager.default.fileExists(atPath: configPath) ? try readJSONObject(configPath) : [:]
        let tokenToID = Dictionary(byID.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        func id(_ key: String) throws -> Int? {
            var content: String?
            if let s = tc[key] as? String { content = s }
            if let d = tc[key] as? [String: Any] { content = d["content"] as? String }
            guard let content else { return nil }
            guard let i = tokenToID[content] else {
                throw TokenizerExportError("\(configPath): \(key) \(String(reflecting: content)) is not in \(path)")
            }
            return i
        }
        let fallback = try configTokenIDs(dir)
        let bos = try id("bos_token") ?? fallback.bos
        guard let eos = try id("eos_token") ?? fallback.eos else {
            throw TokenizerExportError("\(configPath): no eos_token (nor eos_token_id in config.json)")
        }
        var addBOS = false
        if let post = root["post_processor"] as? [String: Any] {
            let processors = (post["type"] as? String) == "Sequence" ? post["processors"] as? [[String: Any]] ?? [] : [post]
            for p in processors where (p["type"] as? String) == "TemplateProcessing" {
                if let first = (p["single"] as? [[String: Any]])?.first, first["SpecialToken"] != nil { addBOS = true }
            }
        }
        if let b = tc["add_bos_token"] as? NSNumber { addBOS = b.boolValue }
        var chat = tc["chat_template"] as? String
        let jinja = dir + "/chat_template.jinja"
        if chat == nil, let d = FileManager.default.contents(atPath: jinja) { chat = String(decoding: d, as: UTF8.self) }

        var m: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(pre.gguf)),
            ("tokenizer.ggml.tokens", .array(tokens)),
            ("tokenizer.ggml.token_type", .array(types)),
            ("tokenizer.ggml.merges", .array(merges)),
        ]
        if let bos { m.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        m.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos))))
        if let unk = try id("unk_token") { m.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unk)))) }
        if let pad = try id("pad_token") { m.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(pad)))) }
        m.append(("tokenizer.ggml.add_bos_token", .bool(addBOS)))
        if let chat { m.append(("tokenizer.chat_template", .string(chat))) }
        return m
    }

    /// The top-level object of the JSON file at `path`.
    public static func readJSONObject(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerExportError("\(path): cannot read (missing or unreadable)")
        }
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data, options: []) } catch {
            throw TokenizerExportError("\(path): not valid JSON (\(error.localizedDescription))")
        }
        guard let d = any as? [String: Any] else { throw TokenizerExportError("\(path): the top level is not a JSON object") }
        return d
    }
}
