import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A Hugging Face directory (llama, qwen2, qwen3, mistral) for the flat parameters:
//   DIR/model.safetensors  F32 tensors named as `<Family>ForCausalLM.state_dict()` names them
//                          (q_proj/k_proj rows, their biases and q_norm/k_norm weights in HF's
//                          rotate-half order; no lm_head when the embeddings are tied),
//                          `__metadata__` {"format": "pt", ...}; or, when reading, the shards of
//                          model.safetensors.index.json, F32 / F16 / BF16
//   DIR/config.json        the family's config for the same shape.
// `saveHF` then `loadHF` gives back bit-identical parameters.

/// Everything that can be wrong with a Hugging Face model directory; the description names the
/// file and the problem.
public enum HFCheckpointError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var errorDescription: String? { description }

    case notFound(path: String, reason: String)
    case badConfig(path: String, problem: String)
    case missingTensor(path: String, tensor: String)
    case unexpectedTensor(path: String, tensor: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    case configMismatch(path: String, expected: ModelConfig, found: ModelConfig)
    case tensorTable(path: String, problem: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .notFound(path, reason): return "\(path): \(reason)"
        case let .badConfig(path, problem): return "\(path): invalid Hugging Face config.json: \(problem)"
        case let .missingTensor(path, t): return "\(path): tensor '\(t)' is missing"
        case let .unexpectedTensor(path, t):
            return "\(path): tensor '\(t)' is not a parameter of this Llama model (unknown name or not expected for this config)"
        case let .shapeMismatch(path, t, e, f): return "\(path): tensor '\(t)' has shape \(f), expected \(e)"
        case let .configMismatch(path, e, f):
            return "\(path): the model shape \(f) does not match the parameters' shape \(e)"
        case let .writeFailed(path, reason): return "\(path): write failed: \(reason)"
        case let .tensorTable(path, problem): return "\(path): \(problem)"
        }
    }
}

/// The safetensors files of a Hugging Face directory: `model.safetensors`, or the shards that
/// `model.safetensors.index.json` lists (each memory-mapped; a tensor is read straight from its
/// shard into the flat store).
public struct HFWeightFiles {
    public let files: [SafeTensorsFile]
    /// Every tensor with the index of its file.
    public let tensors: [(info: SafeTensorsInfo, file: Int)]
    /// What errors name: model.safetensors, or the index file.
    public let path: String

    /// Opens `directory/model.safetensors`, else the shards of `model.safetensors.index.json`
    /// (each listed tensor must be in its shard; a tensor in two shards, an unlisted tensor or a
    /// shard name with a path is an error).
    public init(directory: String) throws {
        let single = directory + "/" + ParameterStore.hfWeightsFile
        let index = directory + "/" + ParameterStore.hfIndexFile
        let fm = FileManager.default
        if fm.fileExists(atPath: single) || !fm.fileExists(atPath: index) {
            let f: SafeTensorsFile
            do { f = try SafeTensorsFile(path: single) } catch let e as SafeTensorsError {
                if case .cannotOpen = e, !fm.fileExists(atPath: single) {
                    throw HFCheckpointError.notFound(path: single, reason: "missing (a Hugging Face model directory needs "
                                                     + "model.safetensors or model.safetensors.index.json with its shards, "
                                                     + "and config.json)")
                }
                throw e
            }
            files = [f]
            tensors = f.tensors.map { ($0, 0) }
            path = single
            return
        }
        path = index
        func bad(_ s: String) -> HFCheckpointError { .tensorTable(path: index, problem: s) }
        guard let data = fm.contents(atPath: index),
              let d = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw bad("not a JSON object")
        }
        guard let map = d["weight_map"] as? [String: Any] else { throw bad("'weight_map' is missing or not an object") }
        var shardNames: [String] = []
        var wanted: [String: String] = [:]
        for (tensor, v) in map {
            guard let shard = v as? String else { throw bad("weight_map['\(tensor)'] is \(v), not a file name") }
            guard !shard.contains("/"), shard != "..", shard != ".", !shard.isEmpty else {
                throw bad("weight_map['\(tensor)'] is '\(shard)'; expected a file name in the same directory")
            }
            wanted[tensor] = shard
            if !shardNames.contains(shard) { shardNames.append(shard) }
        }
        shardNames.sort()
        var fs: [SafeTensorsFile] = []
        var all: [(SafeTensorsInfo, Int)] = []
        var seen: [String: String] = [:]
        for (i, shard) in shardNames.enumerated() {
            let f = try SafeTensorsFile(path: directory + "/" + shard)
            for t in f.tensors {
                if let other = seen[t.name] { throw bad("tensor '\(t.name)' is in both \(other) and \(shard)") }
                guard wanted[t.name] == shard else {
                    throw bad("tensor '\(t.name)' of \(shard) is "
                              + (wanted[t.name].map { "listed under \($0)" } ?? "not in weight_map"))
                }
                seen[t.name] = shard
                all.append((t, i))
            }
            fs.append(f)
        }
        if let missing = wanted.keys.sorted().first(where: { seen[$0] == nil }) {
            throw bad("tensor '\(missing)' is listed under \(wanted[missing]!) but that shard does not hold it")
        }
        files = fs
        tensors = all
    }

    /// Reads tensor `k` of `tensors` as Float32 into `out`.
    func read(_ k: Int, into out: UnsafeMutablePointer<Float>) throws {
        try files[tensors[k].file].read(tensors[k].info.name, into: out)
    }
}

extension ParameterStore {
    /// Names of the files in a Hugging Face model directory.
    public static let hfWeightsFile = "model.safetensors"
    public static let hfIndexFile = "model.safetensors.index.json"
    public static let hfConfigFile = "config.json"

    /// The number of heads whose rows a tensor's Hugging Face ↔ GGUF permutation works on
    /// (`HFLlama.qkRole`): n_head for q, n_kv_head for k, 1 for the per-head q/k norms.
    func permutationHeads(_ role: HFLlama.QKRole) -> Int {
        switch role {
        case .query: return config.heads
        case .key: return config.kvHeads
        case .headNorm: return 1
        }
    }

    /// Writes `directory/model.safetensors` (Hugging Face names of the model's family, `dtype`
    /// F32 or BF16, q/k rows — and their biases and norm weights — in HF's rotate-half order,
    /// no `lm_head` when embeddings are tied; metadata `format: pt` plus `extraMetadata`) and
    /// `directory/config.json`. Each file is written atomically (temporary
    /// file, fsync, rename, fsync of the directory); the directory is created if needed.
    /// `max_position_embeddings` is `maxPositionEmbeddings`, else this store's `contextLength`,
    /// else 8192. Returns the paths of the two files.
    @discardableResult
    public func saveHF(directory: String, extraMetadata: [String: String] = [:], maxPositionEmbeddings: Int? = nil,
                       bosTokenID: Int = 1, eosTokenID: Int = 2,
                       dtype: HFOutputDType = .f32) throws -> (weights: String, config: String) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw HFCheckpointError.writeFailed(path: directory, reason: "cannot create the directory: \(error.localizedDescription)")
        }
        let c = config
        if let r = c.ropeScaling, r.kind == .factors {
            throw HFCheckpointError.writeFailed(path: directory, reason: "the model's rope scaling is a list of per-frequency "
                + "factors (a GGUF rope_freqs tensor) that matches no Hugging Face rope_scaling type; export it as GGUF")
        }
        let weights = directory + "/" + Self.hfWeightsFile
        var entries: [(name: String, shape: [Int], count: Int)] = []
        for v in layout.views {
            guard let hf = HFLlama.hfName(fromGGUF: v.name) else {
                throw HFCheckpointError.unexpectedTensor(path: weights, tensor: v.name)
            }
            entries.append((hf, v.shape, v.count))
        }
        var meta = extraMetadata
        meta["format"] = "pt"
        let maxRows = max(c.qDim, c.kvDim)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, maxRows * c.dim))
        defer { scratch.deallocate() }
        let halves = UnsafeMutablePointer<UInt16>.allocate(capacity: dtype == .f32 ? 1 : layout.views.map(\.count).max() ?? 1)
        defer { halves.deallocate() }
        let views = layout.views
        let base = pointer
        try SafeTensors.writeImpl(entries: entries, metadata: meta, path: weights, dtype: dtype.safetensors) { i, put in
            let v = views[i]
            var src = UnsafePointer(base + v.offset)
            if let role = HFLlama.qkRole(ggufName: v.name) {
                HFLlama.permuteGGUFToHF(src, into: scratch, rows: v.shape[0], cols: v.count / v.shape[0],
                                        heads: self.permutationHeads(role))
                src = UnsafePointer(scratch)
            }
            switch dtype {
            case .f32:
                try put(UnsafeRawBufferPointer(start: src, count: 4 * v.count))
            case .bf16:
                for j in 0..<v.count { halves[j] = HFOutputDType.bf16Bits(src[j]).littleEndian }
                try put(UnsafeRawBufferPointer(start: halves, count: 2 * v.count))
            }
        }
        let configPath = directory + "/" + Self.hfConfigFile
        let positions = maxPositionEmbeddings ?? contextLength ?? 8192
        var text = HFModelConfig.json(model: c, maxPositionEmbeddings: positions, bosTokenID: bosTokenID, eosTokenID: eosTokenID)
        text = text.replacingOccurrences(of: "\"torch_dtype\": \"float32\"", with: "\"torch_dtype\": \"\(dtype.torch)\"")
        try writeFileAtomically(configPath, Array(text.utf8))
        return (weights, configPath)
    }

    /// Reads a Hugging Face directory of a supported family written by `saveHF` or by
    /// transformers (F32/F16/BF16 weights in `model.safetensors` or in the shards of
    /// `model.safetensors.index.json`, each converted straight into the flat store): the shape
    /// from `config.json`, tensors mapped back to GGUF names and q/k rows back to the
    /// interleaved order. Every parameter must be present; an unknown tensor (including
    /// `lm_head.weight` when config.json says the embeddings are tied) is an error; rotary
    /// `inv_freq` buffers are ignored. A training checkpoint (a
    /// directory with state.json) is verified first (`CheckpointFiles.verifyModel`: every file's
    /// size and XXH64); `log` gets the warning of an older checkpoint whose state is unverified.
    /// The directory is checked (`validateHF`) before the parameters are allocated.
    public static func loadHF(directory: String,
                              log: (String) -> Void = CheckpointFiles.printWarning) throws -> ParameterStore {
        if CheckpointFiles.isCheckpoint(directory), let w = try CheckpointFiles.verifyModel(directory) { log(w) }
        let cfg = try validateHF(directory: directory)
        let store = ParameterStore(config: cfg.model)
        try store.readHFWeights(directory: directory)
        return store
    }

    /// Checks a Hugging Face directory without allocating its parameters: `config.json`, then
    /// the safetensors headers against it (every tensor present with its shape, none of a
    /// layer past `num_hidden_layers`, F32/F16/BF16 only). Returns the parsed config.
    @discardableResult
    public static func validateHF(directory: String) throws -> HFModelConfig {
        let cfg = try HFModelConfig(path: directory + "/" + hfConfigFile)
        try checkHFTensors(try HFWeightFiles(directory: directory), config: cfg.model)
        return cfg
    }

    /// The headers of `weights` against `config` (see `validateHF`); allocates nothing that
    /// grows with the config's sizes.
    private static func checkHFTensors(_ weights: HFWeightFiles, config: ModelConfig) throws {
        var table: [(name: String, shape: [Int])] = []
        for (t, f) in weights.tensors {
            let path = weights.files[f].path
            if t.name.hasSuffix(".rotary_emb.inv_freq") { continue }
            guard let g = HFLlama.ggufName(fromHF: t.name) else {
                throw HFCheckpointError.unexpectedTensor(path: path, tensor: t.name)
            }
            if t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16" {
                throw SafeTensorsError.unsupportedDType(path: path, tensor: t.name, dtype: t.dtype)
            }
            table.append((g, t.shape))
        }
        guard let problem = config.tensorTableProblem(table) else { return }
        let path = weights.path
        func hf(_ g: String) -> String { HFLlama.hfName(fromGGUF: g) ?? g }
        switch problem {
        case let .missing(t): throw HFCheckpointError.missingTensor(path: path, tensor: hf(t))
        case let .shape(t, e, f): throw HFCheckpointError.shapeMismatch(path: path, tensor: hf(t), expected: e, found: f)
        case let .unexpected(t): throw HFCheckpointError.unexpectedTensor(path: path, tensor: hf(t))
        case .layerCount:
            let text = problem.describe(countKey: "config.json num_hidden_layers", name: hf)
            throw HFCheckpointError.tensorTable(path: path, problem: text)
        }
    }

    /// Fills this store from `directory` (see `loadHF`); the directory's config.json must describe
    /// exactly this store's shape. Checksums are not verified here (`Checkpoint.load` verifies
    /// before it calls this; `loadHF` does for a checkpoint used as a model). Sets
    /// `contextLength` from its `max_position_embeddings` (or its shorter sliding window);
    /// every tensor is checked for NaN/±∞ as it is read.
    public func readHFWeights(directory: String) throws {
        let configPath = directory + "/" + Self.hfConfigFile
        let cfg = try HFModelConfig(path: configPath)
        if cfg.model != config {
            throw HFCheckpointError.configMismatch(path: configPath, expected: config, found: cfg.model)
        }
        let weights = try HFWeightFiles(directory: directory)
        // Check every name and shape first: nothing is written unless the whole file fits.
        try Self.checkHFTensors(weights, config: config)
        var plan: [(tensor: Int, view: TensorView)] = []
        for (k, t) in weights.tensors.enumerated() where !t.info.name.hasSuffix(".rotary_emb.inv_freq") {
            plan.append((k, view(HFLlama.ggufName(fromHF: t.info.name)!)!))
        }
        contextLength = cfg.contextLength
        slidingWindow = cfg.slidingWindow
        let maxRows = max(config.qDim, config.kvDim)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, maxRows * config.dim))
        defer { scratch.deallocate() }
        for (k, v) in plan {
            let dst = pointer + v.offset
            if let role = HFLlama.qkRole(ggufName: v.name) {
                try weights.read(k, into: scratch)
                HFLlama.permuteHFToGGUF(UnsafePointer(scratch), into: dst, rows: v.shape[0], cols: v.count / v.shape[0],
                                        heads: permutationHeads(role))
            } else {
                try weights.read(k, into: dst)
            }
            let t = weights.tensors[k]
            try NonFiniteWeightsError.check(dst, count: v.count, tensor: t.info.name, path: weights.files[t.file].path)
        }
    }
}

extension SafeTensorsFile {
    /// Like `copy(_:into:)`, but F32 tensors are read with `pread` straight from the file (no
    /// page faults on the mapping: about twice as fast for large tensors).
    public func read(_ name: String, into out: UnsafeMutablePointer<Float>) throws {
        let info = try tensor(named: name)
        guard info.dtype == "F32" else { return try copy(name, into: out) }
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw SafeTensorsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let raw = UnsafeMutableRawPointer(out)
        var done = 0
        while done < info.byteCount {
            let r = pread(fd, raw + done, min(info.byteCount - done, 1 << 30), off_t(dataOffset + info.begin + done))
            if r < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError.cannotOpen(path: path, reason: "read of tensor '\(name)': \(String(cString: strerror(errno)))")
            }
            if r == 0 {
                throw SafeTensorsError.truncated(path: path, problem: "end of file inside tensor '\(name)'")
            }
            done += r
        }
    }
}

/// JSONSerialization gives true/false as NSNumbers of ObjC type "c" (char).

/// Where `ebft-dist` reads a model from: a GGUF file, or a Hugging Face directory (`saveHF`'s
/// output, which every training checkpoint directory also is).
public enum ModelSource {
    public enum Kind: Equatable, Sendable { case gguf, huggingFace }

    /// What `path` is: a regular file → GGUF; a directory with config.json → Hugging Face.
    public static func kind(of path: String) throws -> Kind {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw HFCheckpointError.notFound(path: path, reason: "no such file or directory (expected a GGUF file or a Hugging Face model directory)")
        }
        if !isDir.boolValue { return .gguf }
        // A PEFT adapter directory (a LoRA checkpoint): its base model plus the adapter.
        if LoRAFiles.isAdapter(path) { return .huggingFace }
        guard FileManager.default.fileExists(atPath: path + "/" + ParameterStore.hfConfigFile) else {
            throw HFCheckpointError.notFound(path: path, reason: "is a directory without config.json (expected a GGUF file or a Hugging Face model directory with config.json and model.safetensors)")
        }
        return .huggingFace
    }

    /// The parameters at `path` (GGUF file or Hugging Face directory), as Float32. A training
    /// checkpoint directory is verified against its checksums first (see `loadHF`).
    public static func load(_ path: String, log: (String) -> Void = CheckpointFiles.printWarning) throws -> ParameterStore {
        switch try kind(of: path) {
        case .gguf: return try ParameterStore.load(gguf: try GGUFFile(path: path))
        case .huggingFace:
            if LoRAFiles.isAdapter(path) { return try LoRAFiles.loadMerged(directory: path, log: log) }
            return try ParameterStore.loadHF(directory: path, log: log)
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// directory.
public func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
    func fail(_ what: String) -> HFCheckpointError {
        .writeFailed(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    if fd < 0 { throw fail("cannot create \(tmp)") }
    var closed = false, renamed = false
    defer {
        if !closed { close(fd) }
        if !renamed { unlink(tmp) }
    }
    try bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let w = write(fd, raw.baseAddress! + done, raw.count - done)
            if w < 0 {
                if errno == EINTR { continue }
                throw fail("write")
            }
            done += w
        }
    }
    if fsync(fd) != 0 { throw fail("fsync") }
    closed = true
    if close(fd) != 0 { throw fail("close") }
    if rename(tmp, path) != 0 { throw fail("rename") }
    renamed = true
    fsyncDirectory(dir)
}

/// fsync of a directory (makes renames and new entries in it durable); errors are ignored.
public func fsyncDirectory(_ dir: String) {
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}
