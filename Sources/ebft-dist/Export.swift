import ArgumentParser
import Foundation
import Learner
import Model

/// `ebft-dist export`: a GGUF file, a checkpoint or a run's latest checkpoint → a Hugging Face
/// Llama directory (model.safetensors + config.json).
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as a Hugging Face Llama directory (model.safetensors, F32, + config.json).",
        discussion: """
        --model is a GGUF file, a Hugging Face directory (every training checkpoint \
        RUN/checkpoints/step-N is one) or a run directory (its latest checkpoint). q_proj/k_proj \
        rows are written in Hugging Face's rotate-half order; tied embeddings give no lm_head. \
        Tokenizer files are not written.
        """)

    @Option(help: "GGUF file, HF/checkpoint directory or run directory; default: the installed SmolLM2.")
    var model: String?

    @Option(help: "Output directory (created; model.safetensors and config.json are replaced atomically).")
    var out: String

    func run() throws {
        do {
            let source = try resolveModelPath(model)
            let start = Date()
            // Loading first: a checkpoint is verified before anything of it is used.
            let store = try ModelSource.load(source, log: { emitError("warning: " + $0) })
            let hf: HFLlama.Config
            switch try ModelSource.kind(of: source) {
            case .gguf: hf = try HFLlama.Config(gguf: try GGUFFile(path: source))
            case .huggingFace: hf = try HFModelConfig(path: source + "/" + ParameterStore.hfConfigFile).hf
            }
            let files = try store.saveHF(directory: out, extraMetadata: ["ebft.source": source],
                                         maxPositionEmbeddings: hf.maxPositionEmbeddings,
                                         bosTokenID: hf.bosTokenID, eosTokenID: hf.eosTokenID)
            let c = store.config
            let bytes = (try? FileManager.default.attributesOfItem(atPath: files.weights)[.size] as? NSNumber)??.intValue ?? 0
            emit("read \(source): \(c.layers) layers, dim \(c.dim), heads \(c.heads)/\(c.kvHeads), ffn \(c.ffnDim), "
                 + "vocab \(c.vocabSize), \(c.parameterCount) parameters\(c.tiedEmbeddings ? " (tied embeddings)" : "")")
            emit("wrote \(files.weights) (\(store.layout.views.count) F32 tensors, \(bytes) bytes)")
            emit("wrote \(files.config) (bos \(hf.bosTokenID), eos \(hf.eosTokenID), max positions \(hf.maxPositionEmbeddings))")
            emit(String(format: "done in %.2f s", Date().timeIntervalSince(start)))
        } catch let e as ValidationError {
            throw e
        } catch {
            emitError("error: \(error)")
            throw ExitCode(1)
        }
    }
}
