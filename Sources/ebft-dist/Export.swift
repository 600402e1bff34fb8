import ArgumentParser
import Foundation
import Learner
import Model

/// `ebft-dist export`: a GGUF file, a checkpoint or a run's latest checkpoint → a Hugging Face
/// directory (model.safetensors, config.json, generation_config.json, tokenizer files) or a GGUF
/// file.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as a Hugging Face directory (with its tokenizer) or as a GGUF file.",
        discussion: """
        --model is a GGUF file, a Hugging Face directory (every training checkpoint \
        RUN/checkpoints/step-N is one) or a run directory (its latest checkpoint).

        --format hf (default): OUT is a directory that transformers loads with \
        AutoModelForCausalLM and AutoTokenizer: model.safetensors (--dtype f32 or bf16; q_proj/k_proj \
        rows in Hugging Face's rotate-half order; tied embeddings give no lm_head), config.json, \
        generation_config.json and the tokenizer files: carried over byte for byte from a Hugging Face \
        source, or built from the GGUF vocabulary (tokenizer.json, tokenizer_config.json with the chat \
        template, special_tokens_map.json).

        --format gguf: OUT is a GGUF v3 file as llama.cpp's converter writes it (--dtype f32, f16 or \
        q8_0; norms stay F32) with the architecture and tokenizer metadata.

        A source without tokenizer files (an older checkpoint) needs --tokenizer: a GGUF file or \
        Hugging Face directory whose tokenizer to use.

        A LoRA checkpoint (or any PEFT adapter directory) is its base model plus the adapters: \
        --merge writes the merged model W + (alpha/r)·B·A in the base model's family and config.
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case hf, gguf }

    @Option(help: "GGUF file, HF/checkpoint directory or run directory; default: the installed SmolLM2.")
    var model: String?

    @Option(help: "Output directory (--format hf) or file (--format gguf); files are replaced atomically.")
    var out: String

    @Option(help: "hf or gguf.")
    var format: Format = .hf

    @Option(help: "Tensor type: f32 or bf16 (hf); f32, f16 or q8_0 (gguf).")
    var dtype: String = "f32"

    @Option(help: "Take the tokenizer from this GGUF file or HF directory instead of the model source.")
    var tokenizer: String?

    @Flag(help: "Merge a LoRA checkpoint's adapters into its base model (required for an adapter source).")
    var merge = false

    func validate() throws {
        switch format {
        case .hf where HFOutputDType(rawValue: dtype) == nil:
            throw ValidationError("--dtype \(dtype) is not an hf tensor type (f32, bf16)")
        case .gguf where GGUFOutputType(rawValue: dtype) == nil:
            throw ValidationError("--dtype \(dtype) is not a gguf tensor type (f32, f16, q8_0)")
        default: break
        }
    }

    func run() throws {
        do {
            let source = try resolveModelPath(model)
            let isAdapter = LoRAFiles.isAdapter(source)
            if isAdapter && !merge {
                throw ValidationError("\(source) is a LoRA adapter: pass --merge to write its base model with the adapters merged")
            }
            if merge && !isAdapter {
                throw ValidationError("--merge needs a LoRA checkpoint or PEFT adapter directory; \(source) is a whole model")
            }
            // An adapter's config (family, context, bos/eos) is its base model's.
            let configSource = isAdapter ? try LoRAFiles.baseModel(of: source) : source
            if RandomModelSpec.matches(configSource) {
                throw ValidationError("\(source): the base model \(configSource) is random; there is no config to export it with")
            }
            let start = Date()
            // Loading first: a checkpoint is verified before anything of it is used.
            let store = try ModelSource.load(source, log: { emitError("warning: " + $0) })
            let hf: HFLlama.Config
            let archName: String
            switch try ModelSource.kind(of: configSource) {
            case .gguf:
                let g = try GGUFFile(path: configSource)
                hf = try HFLlama.Config(gguf: g)
                archName = try g.string("general.architecture")
            case .huggingFace:
                let path = configSource + "/" + ParameterStore.hfConfigFile
                hf = try HFModelConfig(path: path).hf
                archName = (try? readJSONObject(path))?["model_type"] as? String ?? "llama"
            }
            guard ExportArchitecture.named(archName) != nil || archName == "mistral" else {
                throw TokenizerExportError("\(source): architecture '\(archName)' cannot be exported (known: "
                                           + ExportArchitecture.all.map(\.gguf).joined(separator: ", ") + ", mistral)")
            }
            // The network the store holds decides the family written (its options were read in full).
            let arch = ParameterStore.exportArchitecture(store.config.architecture)
            let c = store.config
            emit("read \(source): \(arch.gguf), \(c.layers) layers, dim \(c.dim), heads \(c.heads)/\(c.kvHeads), ffn \(c.ffnDim), "
                 + "vocab \(c.vocabSize), \(c.parameterCount) parameters\(c.tiedEmbeddings ? " (tied embeddings)" : "")")
            let ownTokenizer = !isAdapter || FileManager.default.fileExists(atPath: source + "/tokenizer.json")
            let tokSource = tokenizer ?? (ownTokenizer ? source : configSource)
            func noTokenizer() -> Error {
                TokenizerExportError("\(tokSource): no tokenizer.json; pass --tokenizer with the GGUF file or "
                                     + "Hugging Face directory whose tokenizer this model uses")
            }
            switch format {
            case .hf:
                let dt = HFOutputDType(rawValue: dtype)!
                let files = try store.saveHF(directory: out, extraMetadata: ["ebft.source": source],
                                             maxPositionEmbeddings: hf.maxPositionEmbeddings,
                                             bosTokenID: hf.bosTokenID, eosTokenID: hf.eosTokenID, dtype: dt)
                guard let tok = try TokenizerExport.hfFiles(source: tokSource, contextLength: hf.maxPositionEmbeddings) else {
                    throw noTokenizer()
                }
                try TokenizerExport.write(tok, directory: out)
                emit("wrote \(files.weights) (\(store.layout.views.count) \(dt.safetensors) tensors, \(size(files.weights)) bytes)")
                emit("wrote \(files.config) (bos \(hf.bosTokenID), eos \(hf.eosTokenID), max positions \(hf.maxPositionEmbeddings))")
                emit("wrote " + tok.map(\.name).joined(separator: ", ")
                     + (tokenizer == nil ? "" : " (tokenizer of \(tokSource))"))
            case .gguf:
                let type = GGUFOutputType(rawValue: dtype)!
                guard let tok = try TokenizerExport.ggufMetadata(source: tokSource, vocabSize: c.vocabSize) else {
                    throw noTokenizer()
                }
                try store.saveGGUF(path: out, architecture: arch, type: type, tokenizer: tok,
                                   name: URL(fileURLWithPath: source).lastPathComponent,
                                   contextLength: hf.maxPositionEmbeddings)
                emit("wrote \(out) (GGUF v3, \(arch.gguf), \(store.layout.views.count) tensors \(dtype.uppercased()), "
                     + "\(tok.count) tokenizer keys, \(size(out)) bytes)")
            }
            emit(String(format: "done in %.2f s", Date().timeIntervalSince(start)))
        } catch let e as ValidationError {
            throw e
        } catch {
            emitError("error: \(error)")
            throw ExitCode(1)
        }
    }

    private func size(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)??.intValue ?? 0
    }
}
