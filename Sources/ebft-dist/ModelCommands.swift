import ArgumentParser
import Foundation
import Learner
import Model

/// `--model` of the commands that read a model: a GGUF file or a Hugging Face / checkpoint
/// directory as given; a run directory (or its `checkpoints/`) → its latest checkpoint, saying
/// why when a damaged later one was passed over. Default: the installed SmolLM2.
func resolveModelPath(_ path: String?) throws -> String {
    let p = try path ?? ModelLocator.defaultGGUF()
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue,
          !fm.fileExists(atPath: p + "/" + ParameterStore.hfConfigFile),
          fm.fileExists(atPath: Checkpoint.checkpointsDirectory(runDir: p))
            || (p as NSString).lastPathComponent == Checkpoint.directoryName else { return p }
    let found = try Checkpoint.resolve(resume: p)
    if let f = found.fallback { emitError(f) }
    return found.directory
}

/// A model and its tokenizer: a GGUF file (default: the installed SmolLM2) with its own
/// tokenizer, or a Hugging Face / checkpoint / run directory (see `resolveModelPath`; a
/// checkpoint is verified against its checksums) with its own tokenizer.json
/// (`BPETokenizer.forModel`).
struct LoadedModel {
    let path: String
    let tokenizer: BPETokenizer
    let model: Transformer

    init(path: String?) throws {
        let p = try resolveModelPath(path)
        self.path = p
        if try ModelSource.kind(of: p) == .gguf {
            let gguf = try GGUFFile(path: p)
            tokenizer = try BPETokenizer(gguf: gguf)
            model = Transformer(parameters: try ParameterStore.load(gguf: gguf))
        } else {
            model = Transformer(parameters: try ModelSource.load(p, log: { emitError("warning: " + $0) }))
            tokenizer = try BPETokenizer.forModel(at: p, log: { emitError("warning: " + $0) })
            try tokenizer.checkFits(modelVocabulary: model.config.vocabSize, model: p)
        }
    }
}

/// A command's failure, printed as "Error: <description>" (exit 1, without the usage text).
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
}

/// The bytes of a UTF-8 text file given as `option`. Invalid UTF-8 is kept (the tokenizer
/// reads it as U+FFFD), with a warning on stderr naming the byte offset of the first invalid
/// sequence and how many there are.
func readTextFile(_ path: String, option: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read \(option) \(path)")
    }
    let bytes = [UInt8](data)
    if let bad = UTF8Validation.invalidSequences(bytes) {
        emitError("warning: \(option) \(path) is not valid UTF-8: \(bad.count) invalid byte sequence"
                  + "\(bad.count == 1 ? "" : "s"), the first at byte offset \(bad.firstOffset); "
                  + "each is read as U+FFFD (the replacement character)")
    }
    return bytes
}

/// `ebft-dist score`: teacher-forced log-probabilities of a text's tokens.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Token ids of a text and, for each token after the first, its log-probability given the preceding tokens (T = 1).")

    @Option(help: "Model: GGUF file, checkpoint or run directory; default: the installed SmolLM2.") var model: String?
    @Option(help: "The text to score (UTF-8 file).") var textFile: String
    @Flag(help: "Print JSON: {\"tokens\": [...], \"logprobs\": [...]} (logprobs[i] belongs to tokens[i+1]).") var json = false
    @Flag(help: "Treat special-token text such as <|im_start|> as special tokens.") var allowSpecial = false

    func run() throws {
        let data = try readTextFile(textFile, option: "--text-file")
        let m = try LoadedModel(path: model)
        let ids = m.tokenizer.encode(utf8: data, allowSpecial: allowSpecial)
        guard ids.count >= 1 else { throw ValidationError("\(textFile) has no tokens") }
        let predictions = ids.count - 1
        var logp: [Float] = []
        // Long texts go in windows of at most 2048 tokens and never more than the model's
        // context length (positions restart per window); the note says so.
        let window = min(2048, m.model.contextLength ?? 2048)
        guard window >= 2 else { throw ValidationError("the model's context length \(window) is too short to score") }
        if ids.count > window {
            let windows = (predictions + window - 2) / (window - 1)
            emitError("note: \(textFile) has \(ids.count) tokens, more than the window of \(window) "
                      + "(\(window == m.model.contextLength ? "the model's context length" : "at most 2048")); "
                      + "scored in \(windows) windows with positions restarting at 0 in each, so the first tokens "
                      + "of each window are predicted without the text before it")
        }
        var start = 0
        while start < predictions {
            let end = min(predictions, start + window - 1)
            let toks = Array(ids[start...end])
            let p = (start..<end).map { Prediction(row: $0 - start, target: ids[$0 + 1]) }
            logp += m.model.logProbs(tokens: toks, layout: .causal(length: toks.count), predictions: p)
            start = end
        }
        if let bad = logp.firstIndex(where: { !$0.isFinite }) {
            throw CommandFailure(description: "the log-probability of token \(bad + 1) (id \(ids[bad + 1])) is "
                                 + "\(logp[bad]): the model's output is not finite")
        }
        if json {
            let obj: [String: Any] = ["tokens": ids.map(Int.init), "logprobs": logp.map(Double.init)]
            let d = try JSONSerialization.data(withJSONObject: obj)
            print(String(decoding: d, as: UTF8.self))
        } else {
            let total = logp.reduce(0.0) { $0 + Double($1) }
            for (i, id) in ids.enumerated() {
                let piece = (try? m.tokenizer.decode([id])) ?? "?"
                let lp = i == 0 ? "" : String(format: "%.4f", logp[i - 1])
                print("\(id)\t\(lp)\t\(piece.debugDescription)")
            }
            print(String(format: "%d tokens, total log-prob %.4f, mean NLL %.4f", ids.count, total,
                         -total / Double(max(1, logp.count))))
        }
    }
}

/// `ebft-dist generate`: sample or greedily decode a continuation with the KV cache.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt (greedy with --temperature 0).")

    @Option(help: "Model: GGUF file, checkpoint or run directory; default: the installed SmolLM2.") var model: String?
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "Read the prompt from this UTF-8 file instead.") var promptFile: String?
    @Flag(help: "Wrap the prompt as a user message in the model's chat format (ChatML or Llama-3) and stop at the end of the turn.")
    var chat = false
    @Option(help: "Tokens to generate at most.") var maxNewTokens = 64
    @Option(help: "Sampling temperature; 0 = greedy.") var temperature: Float = 0.6
    @Option(help: "Nucleus (top-p) mass.") var topP: Float = 0.95
    @Option(help: "Random seed.") var seed: UInt64 = 43
    @Flag(help: "Print the token ids instead of text.") var ids = false

    func validate() throws {
        guard (prompt == nil) != (promptFile == nil) else { throw ValidationError("give either --prompt or --prompt-file") }
        guard maxNewTokens >= 0 else { throw ValidationError("--max-new-tokens must be ≥ 0") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
    }

    func run() throws {
        let text = try promptFile.map { String(decoding: try readTextFile($0, option: "--prompt-file"), as: UTF8.self) }
            ?? prompt ?? ""
        let m = try LoadedModel(path: model)
        let tok = m.tokenizer
        let format = chat ? try tok.requireChatFormat() : nil
        let input = format?.encode(messages: [(role: "user", content: text)], addGenerationPrompt: true, tokenizer: tok)
            ?? tok.encodePrompt(text)
        guard !input.isEmpty else { throw ValidationError("the prompt has no tokens") }
        try m.model.checkContext(promptTokens: input.count, newTokens: maxNewTokens, what: "the prompt")
        let stop = format?.stopTokens(tok) ?? tok.stopTokens
        var stream = TokenStreamDecoder(tokenizer: tok)
        var out: [Int32] = []
        if maxNewTokens > 0 {
            let n = input.count
            let prefix = m.model.prefill(tokens: Array(input.dropLast()))
            let batch = DecodeBatch(model: m.model, prefix: prefix,
                                    streams: [DecodeStream(prefixLength: n - 1, firstPosition: n - 1)],
                                    maxNewTokens: maxNewTokens)
            var next = input[n - 1]
            for position in 0..<maxNewTokens {
                let logits = batch.step(tokens: [next])
                let u = CounterRNG.uniform(seed: seed, 0, 0, 0, UInt64(position))
                next = logits.withUnsafeBufferPointer {
                    Sampling.pick(logits: $0.baseAddress!, vocab: $0.count, temperature: temperature, topP: topP, uniform: u).token
                }
                if stop.contains(next) { break }
                out.append(next)
                if !ids, let text = try? stream.append(next) { FileHandle.standardOutput.write(Data(text.utf8)) }
            }
        }
        if ids {
            print(out.map(String.init).joined(separator: " "))
        } else {
            FileHandle.standardOutput.write(Data((stream.finish() + "\n").utf8))
        }
    }
}
