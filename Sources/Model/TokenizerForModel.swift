/// The tokenizer of a model path (GGUF file, Hugging Face directory, LoRA adapter or training
/// checkpoint), and the checks that tie a tokenizer to its model.

import Foundation

extension BPETokenizer {
    /// The tokenizer of the model at `path`: a GGUF file's own vocabulary; a Hugging Face
    /// directory's `tokenizer.json` (with `tokenizer_config.json` / `generation_config.json`).
    /// A Hugging Face directory without `tokenizer.json` is an error, except a training
    /// checkpoint of ours (a directory with state.json) written before checkpoints carried
    /// tokenizer files: those are SmolLM2 runs, read with the installed SmolLM2's tokenizer (and
    /// a warning through `log`).
    public static func forModel(at path: String, log: (String) -> Void = CheckpointFiles.printWarning) throws -> BPETokenizer {
        switch try ModelSource.kind(of: path) {
        case .gguf:
            return try BPETokenizer(gguf: try GGUFFile(path: path))
        case .huggingFace:
            if FileManager.default.fileExists(atPath: path + "/" + tokenizerJSONFile) {
                return try BPETokenizer(huggingFaceDirectory: path)
            }
            // A LoRA adapter without tokenizer files: its base model's tokenizer.
            if LoRAFiles.isAdapter(path), let base = try? LoRAFiles.baseModel(of: path), !RandomModelSpec.matches(base) {
                return try forModel(at: base, log: log)
            }
            if CheckpointFiles.isCheckpoint(path) {
                let gguf = try ModelLocator.defaultGGUF()
                log("\(path): the checkpoint carries no \(tokenizerJSONFile); using the tokenizer of \(gguf) "
                    + "(checkpoints without tokenizer files are SmolLM2 runs)")
                return try BPETokenizer(gguf: try GGUFFile(path: gguf))
            }
            throw TokenizerFileError.missingTokenizer(
                directory: path, reason: "no \(tokenizerJSONFile): a Hugging Face model directory must carry its "
                    + "tokenizer (tokenizer.json, with tokenizer_config.json); copy them from the model's original "
                    + "directory")
        }
    }

    /// Checks that every token id has a row in a model of `vocabSize` rows (a model may have
    /// more rows than tokens, as Qwen2 pads its embedding).
    public func checkFits(modelVocabulary vocabSize: Int, model: String) throws {
        guard self.vocabSize <= vocabSize else {
            throw TokenizerFileError.invalid(
                path: model, field: "vocab_size",
                problem: "the model has \(vocabSize) token rows but its tokenizer has \(self.vocabSize) tokens; "
                    + "the tokenizer does not belong to this model")
        }
    }

    /// The chat format, or an error saying why `--chat` cannot be used.
    public func requireChatFormat() throws -> ChatFormat {
        guard let f = chatFormat else {
            throw ChatFormat.Unknown(hint: chatTemplate == nil
                ? "the tokenizer has no chat template and neither format's special tokens"
                : "its chat template uses neither format's special tokens")
        }
        return f
    }
}
