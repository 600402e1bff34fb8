import Foundation

/// LoRA adapters on disk in the PEFT layout, which `peft.PeftModel.from_pretrained` loads onto
/// the base model:
///
///     adapter_config.json         peft_type LORA, r, lora_alpha, target_modules (HF names),
///                                 base_model_name_or_path, task_type CAUSAL_LM, lora_dropout 0,
///                                 bias none, fan_in_fan_out false
///     adapter_model.safetensors   base_model.model.model.layers.{i}.{self_attn|mlp}.{q_proj…}.lora_A.weight [r, in]
///                                 and ….lora_B.weight [out, r], F32
public enum LoRAFiles {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        init(_ path: String, _ problem: String) { description = "\(path): \(problem)" }
    }

    /// The PEFT tensor names of one adapter.
    public static func tensorNames(layer: Int, target: LoRATarget) -> (a: String, b: String) {
        let stem = "base_model.model.model.layers.\(layer).\(target.hfParent).\(target.hfName)"
        return (stem + ".lora_A.weight", stem + ".lora_B.weight")
    }

    /// Whether `path` is a directory holding a PEFT adapter.
    public static func isAdapter(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path + "/" + configFile)
    }

    /// What adapter_config.json says: the LoRA settings and the base model.
    public struct AdapterConfig: Equatable, Sendable {
        public var lora: LoRAConfig
        public var baseModel: String?
    }

    public static func readConfig(directory: String) throws -> AdapterConfig {
        let path = directory + "/" + configFile
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(path, "cannot read the file") }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw Failure(path, "not a JSON object")
        }
        if let t = obj["peft_type"] as? String, t != "LORA" { throw Failure(path, "peft_type \(t) is not LORA") }
        guard let r = (obj["r"] as? NSNumber)?.intValue, r >= 1 else { throw Failure(path, "no positive integer r") }
        let alpha = (obj["lora_alpha"] as? NSNumber)?.doubleValue ?? 8
        // lora_dropout only acts in training: any value describes the same adapter.
        if let b = obj["bias"] as? String, b != "none" { throw Failure(path, "bias \(b) is not supported (only none)") }
        if (obj["fan_in_fan_out"] as? Bool) == true { throw Failure(path, "fan_in_fan_out true is not supported") }
        if (obj["use_rslora"] as? Bool) == true { throw Failure(path, "use_rslora is not supported") }
        if (obj["use_dora"] as? Bool) == true { throw Failure(path, "use_dora is not supported") }
        if let p = obj["rank_pattern"] as? [String: Any], !p.isEmpty { throw Failure(path, "rank_pattern is not supported") }
        if let p = obj["alpha_pattern"] as? [String: Any], !p.isEmpty { throw Failure(path, "alpha_pattern is not supported") }
        var names: [String] = []
        if let list = obj["target_modules"] as? [String] { names = list } else if let s = obj["target_modules"] as? String {
            names = [s]
        }
        var targets: [LoRATarget] = []
        for n in names {
            if n == "all-linear" { targets = LoRATarget.allCases; continue }
            guard let t = LoRATarget(name: n) else {
                throw Failure(path, "target module \(n) is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj")
            }
            targets.append(t)
        }
        if targets.isEmpty { throw Failure(path, "no target_modules") }
        let cfg = LoRAConfig(rank: r, alpha: alpha, targets: targets)
        return AdapterConfig(lora: cfg, baseModel: obj["base_model_name_or_path"] as? String)
    }

    /// adapter_config.json's bytes for `config` on `baseModel`.
    public static func configJSON(_ config: LoRAConfig, baseModel: String) -> [UInt8] {
        let obj: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": config.rank, "lora_alpha": config.alpha,
            "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
            "target_modules": config.targets.map(\.hfName), "base_model_name_or_path": baseModel,
            "init_lora_weights": true, "modules_to_save": NSNull(), "use_rslora": false, "use_dora": false,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return Array(data) + [0x0A]
    }

    /// The head count by which B's rows are permuted between our order and Hugging Face's: q and
    /// k projections hold their rows in the interleaved RoPE order (`HFLlama.permuteHFToGGUF`,
    /// as the base weights are loaded), so B of q_proj / k_proj (its rows are the projection's
    /// outputs) is permuted the same way on the way out and in; A (inputs) never is.
    static func permutationHeads(_ t: LoRATarget, _ c: ModelConfig) -> Int? {
        switch t {
        case .q: return c.heads
        case .k: return c.kvHeads
        default: return nil
        }
    }

    /// Writes adapter_config.json and adapter_model.safetensors into `directory` (which exists).
    public static func save(_ lora: LoRAWeights, directory: String, baseModel: String,
                            metadata: [String: String] = [:]) throws {
        var tensors: [(name: String, shape: [Int], data: [Float])] = []
        let r = lora.config.rank
        for ad in lora.adapters {
            let (an, bn) = tensorNames(layer: ad.layer, target: ad.target)
            tensors.append((an, [r, ad.inDim], Array(UnsafeBufferPointer(start: lora.pointer + ad.a, count: r * ad.inDim))))
            var b = Array(UnsafeBufferPointer(start: lora.pointer + ad.b, count: r * ad.outDim))
            if let heads = permutationHeads(ad.target, lora.modelConfig) {
                b = HFLlama.permuteGGUFToHF(b, rows: ad.outDim, cols: r, heads: heads)
            }
            tensors.append((bn, [ad.outDim, r], b))
        }
        var meta = metadata
        meta["format"] = "pt"
        try SafeTensors.write(tensors: tensors, metadata: meta, to: directory + "/" + weightsFile)
        try writeFileAtomically(directory + "/" + configFile, configJSON(lora.config, baseModel: baseModel))
    }

    /// Reads the adapter in `directory` for a model of shape `model` (every tensor present with
    /// its shape, finite; an unexpected tensor is an error).
    public static func load(directory: String, model: ModelConfig) throws -> LoRAWeights {
        let cfg = try readConfig(directory: directory)
        let lora = LoRAWeights(config: cfg.lora, model: model)
        try read(directory: directory, into: lora)
        return lora
    }

    /// Fills `lora` (whose settings must be the directory's) from `directory`.
    public static func read(directory: String, into lora: LoRAWeights) throws {
        let cfg = try readConfig(directory: directory)
        guard cfg.lora == lora.config else {
            throw Failure(directory + "/" + configFile, "holds r=\(cfg.lora.rank), alpha=\(cfg.lora.alpha), targets "
                          + "\(cfg.lora.targets.map(\.rawValue)); expected r=\(lora.config.rank), alpha=\(lora.config.alpha), "
                          + "targets \(lora.config.targets.map(\.rawValue))")
        }
        let path = directory + "/" + weightsFile
        let file = try SafeTensorsFile(path: path)
        var expected = Set<String>()
        let r = lora.config.rank
        for ad in lora.adapters {
            let (an, bn) = tensorNames(layer: ad.layer, target: ad.target)
            for (name, shape, off) in [(an, [r, ad.inDim], ad.a), (bn, [ad.outDim, r], ad.b)] {
                expected.insert(name)
                let t: SafeTensorsInfo
                do { t = try file.tensor(named: name) } catch {
                    throw Failure(path, "missing tensor \(name) (the adapter is for another model shape?)")
                }
                guard t.shape == shape else { throw Failure(path, "tensor \(name) has shape \(t.shape), expected \(shape)") }
                if off == ad.b, let heads = permutationHeads(ad.target, lora.modelConfig) {
                    let hf = try file.floats(name)
                    hf.withUnsafeBufferPointer {
                        HFLlama.permuteHFToGGUF($0.baseAddress!, into: lora.pointer + off, rows: ad.outDim, cols: r, heads: heads)
                    }
                } else {
                    try file.copy(name, into: lora.pointer + off)
                }
                for i in 0..<(shape[0] * shape[1]) where !lora.pointer[off + i].isFinite {
                    throw Failure(path, "tensor \(name) holds a non-finite value")
                }
            }
        }
        if let extra = file.tensors.first(where: { !expected.contains($0.name) }) {
            throw Failure(path, "unexpected tensor \(extra.name) (a layer or module the model does not have)")
        }
    }

    /// The base model of the adapter in `directory`: adapter_config.json's
    /// base_model_name_or_path, or (for our checkpoints) state.json's recorded `info.model`.
    /// A relative path that does not exist from the working directory is tried relative to the
    /// adapter directory.
    public static func baseModel(of directory: String) throws -> String {
        let cfg = try readConfig(directory: directory)
        var base = cfg.baseModel ?? ""
        if base.isEmpty, let data = FileManager.default.contents(atPath: directory + "/" + CheckpointFiles.stateFile),
           let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
           let info = obj["info"] as? [String: String], let m = info["model"] {
            base = m
        }
        if base.isEmpty {
            throw Failure(directory + "/" + configFile, "names no base model (base_model_name_or_path is empty)")
        }
        if !base.hasPrefix("random:") && !base.hasPrefix("/") && !FileManager.default.fileExists(atPath: base)
            && FileManager.default.fileExists(atPath: directory + "/" + base) {
            base = directory + "/" + base
        }
        return base
    }

    /// The base model of a checkpoint whose base is `random:…` needs the vocabulary size, which
    /// state.json's model records.
    static func recordedVocabulary(_ directory: String) -> Int? {
        struct S: Decodable { var model: ModelConfig }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        guard let data = FileManager.default.contents(atPath: directory + "/" + CheckpointFiles.stateFile),
              let s = try? d.decode(S.self, from: data) else { return nil }
        return s.model.vocabSize
    }

    /// The base model of the adapter in `directory` with the adapter merged in: W + (α/r)·B·A
    /// (what a LoRA checkpoint given as a model means). A training checkpoint is verified first.
    public static func loadMerged(directory: String, log: (String) -> Void) throws -> ParameterStore {
        if CheckpointFiles.isCheckpoint(directory),
           let w = try CheckpointFiles.verifyModel(directory, required: [weightsFile, configFile]) { log(w) }
        let base = try baseModel(of: directory)
        let params: ParameterStore
        if RandomModelSpec.matches(base) {
            guard let v = recordedVocabulary(directory) else {
                throw Failure(directory, "the base model \(base) is random and no state.json records its vocabulary")
            }
            params = try RandomModelSpec.make(base, vocab: v)
        } else {
            // The base may itself be a LoRA checkpoint (a LoRA run on a merged model): recursive.
            params = try ModelSource.load(base, log: log)
        }
        let lora = try load(directory: directory, model: params.config)
        lora.merge(into: params)
        return params
    }
}
