import Foundation

// The tokenizer of an exported model. Its one data model is the `BPETokenizer` the model is run
// with (`BPETokenizer.forModel(at:)`): GGUF `tokenizer.ggml.*` are written from it
// (`BPETokenizer.ggufMetadata`), and so are the Hugging Face files of a GGUF source
// (`BPETokenizer.huggingFaceFiles`). A Hugging Face source directory's own tokenizer files are
// carried over byte for byte.

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

public enum TokenizerExport {
    /// Tokenizer and generation files carried over verbatim from a Hugging Face source directory.
    public static let carriedFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                      "chat_template.jinja", "added_tokens.json", "vocab.json", "merges.txt",
                                      "generation_config.json"]

    // MARK: tokenizer source

    /// The tokenizer files of a model source: written from the tokenizer of a GGUF file
    /// (`BPETokenizer.huggingFaceFiles`), or a Hugging Face directory's own (`hfFiles(directory:)`);
    /// nil for a Hugging Face directory without tokenizer.json. `contextLength` goes into
    /// tokenizer_config.json's `model_max_length`.
    public static func hfFiles(source path: String, contextLength: Int) throws -> [HFSideFile]? {
        switch try ModelSource.kind(of: path) {
        case .gguf: return try BPETokenizer(gguf: GGUFFile(path: path)).huggingFaceFiles(contextLength: contextLength)
        case .huggingFace:
            guard FileManager.default.fileExists(atPath: path + "/tokenizer.json") else { return nil }
            return try hfFiles(directory: path)
        }
    }

    /// The GGUF tokenizer metadata of a model source, written from the tokenizer the model is
    /// run with (`BPETokenizer.forModel(at:)`, `BPETokenizer.ggufMetadata`; token lists padded
    /// to the model's `vocabSize` and, for a Hugging Face directory whose tokenizer names no
    /// BOS, config.json's `bos_token_id`, as llama.cpp does); nil for a directory without
    /// tokenizer.json.
    public static func ggufMetadata(source path: String,
                                    vocabSize: Int) throws -> [(key: String, value: GGUFValue)]? {
        var bos: Int? = nil
        if try ModelSource.kind(of: path) == .huggingFace {
            guard FileManager.default.fileExists(atPath: path + "/" + BPETokenizer.tokenizerJSONFile) else { return nil }
            bos = try configTokenIDs(path).bos
        }
        return try BPETokenizer.forModel(at: path).ggufMetadata(vocabSize: vocabSize, bosFallback: bos)
    }

    /// The side files of a training checkpoint for a run whose `model` is `spec` (RunContext's
    /// `modelPath`): the tokenizer the run encodes with. A `random:` model and a Hugging Face
    /// directory without tokenizer.json are tokenised with the installed SmolLM2's vocabulary.
    public static func sideFiles(runModel spec: String, contextLength: Int) throws -> [HFSideFile] {
        if !spec.hasPrefix("random:"), !spec.isEmpty, let files = try hfFiles(source: spec, contextLength: contextLength) {
            return files
        }
        return try BPETokenizer(ggufPath: try ModelLocator.defaultGGUF()).huggingFaceFiles(contextLength: contextLength)
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
            if let eos = ids.eos { out.append(generationConfig(bos: ids.bos, eos: eos)) }
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

    static func generationConfig(bos: Int?, eos: Int) -> HFSideFile {
        var fields = ["  \"_from_model_config\": true"]
        if let bos { fields.append("  \"bos_token_id\": \(bos)") }
        fields.append("  \"eos_token_id\": \(eos)")
        return HFSideFile(name: "generation_config.json", bytes: Array(("{\n" + fields.joined(separator: ",\n") + "\n}\n").utf8))
    }
}
