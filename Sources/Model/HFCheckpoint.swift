import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A Hugging Face Llama directory for the flat parameters:
//   DIR/model.safetensors  F32 tensors named as `LlamaForCausalLM.state_dict()` names them
//                          (q_proj/k_proj rows in HF's rotate-half order; no lm_head when the
//                          embeddings are tied), `__metadata__` {"format": "pt", ...}
//   DIR/config.json        `LlamaForCausalLM` config for the same shape.
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
        case let .badConfig(path, problem): return "\(path): invalid Llama config.json: \(problem)"
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

extension HFLlama.Config {
    /// The `config.json` values for a `ModelConfig`. Float32 eps/theta are written through their
    /// shortest decimal form (1e-05, not 9.99999974e-06), which reads back to the same Float.
    public init(model c: ModelConfig, maxPositionEmbeddings: Int = 8192, bosTokenID: Int = 1, eosTokenID: Int = 2) {
        func decimal(_ x: Float) -> Double { Double("\(x)") ?? Double(x) }
        self.init(hiddenSize: c.dim, intermediateSize: c.ffnDim, numAttentionHeads: c.heads,
                  numKeyValueHeads: c.kvHeads, numHiddenLayers: c.layers, rmsNormEps: decimal(c.normEps),
                  ropeTheta: decimal(c.ropeBase), vocabSize: c.vocabSize,
                  maxPositionEmbeddings: maxPositionEmbeddings, bosTokenID: bosTokenID, eosTokenID: eosTokenID,
                  tieWordEmbeddings: c.tiedEmbeddings)
    }
}

/// A parsed Hugging Face Llama `config.json`.
public struct HFModelConfig: Equatable, Sendable {
    /// The shape of the model (what the flat parameter layout needs).
    public var model: ModelConfig
    /// All values as `HFLlama.Config` (token ids, context length).
    public var hf: HFLlama.Config

    /// Reads and validates `path` (a `config.json`).
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HFCheckpointError.notFound(path: path, reason: "cannot read config.json (missing or unreadable)")
        }
        try self.init(json: data, path: path)
    }

    /// Parses `config.json` text; `path` only names the file in errors.
    public init(json data: Data, path: String) throws {
        func bad(_ s: String) -> HFCheckpointError { .badConfig(path: path, problem: s) }
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data, options: []) } catch {
            throw bad("not valid JSON (\(error.localizedDescription))")
        }
        guard let d = any as? [String: Any] else { throw bad("the top level is not a JSON object") }
        if let t = d["model_type"], (t as? String) != "llama" {
            throw bad("model_type is \(t), only \"llama\" is supported")
        }
        func number(_ key: String) -> NSNumber? {
            guard let n = d[key] as? NSNumber, !isJSONBool(n) else { return nil }
            return n
        }
        func int(_ key: String, default def: Int? = nil) throws -> Int {
            guard d[key] != nil, !(d[key] is NSNull) else {
                if let v = def { return v }
                throw bad("'\(key)' is missing")
            }
            guard let n = number(key), n.doubleValue.rounded() == n.doubleValue, abs(n.doubleValue) < 9e15 else {
                throw bad("'\(key)' is \(d[key]!), not an integer")
            }
            return n.intValue
        }
        func double(_ key: String, default def: Double? = nil) throws -> Double {
            guard d[key] != nil, !(d[key] is NSNull) else {
                if let v = def { return v }
                throw bad("'\(key)' is missing")
            }
            guard let n = number(key) else { throw bad("'\(key)' is \(d[key]!), not a number") }
            return n.doubleValue
        }
        let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
        guard hidden > 0 else { throw bad("hidden_size is \(hidden); expected a positive integer") }
        guard heads > 0 else { throw bad("num_attention_heads is \(heads); expected a positive integer") }
        let kv = try int("num_key_value_heads", default: heads)
        guard kv > 0 else { throw bad("num_key_value_heads is \(kv); expected a positive integer") }
        if d["head_dim"] == nil || d["head_dim"] is NSNull, hidden % heads != 0 {
            throw bad("hidden_size \(hidden) is not a multiple of num_attention_heads \(heads) (and head_dim is absent)")
        }
        let headDim = try int("head_dim", default: hidden / heads)
        var tied = true
        if let t = d["tie_word_embeddings"], !(t is NSNull) {
            guard let n = t as? NSNumber, isJSONBool(n) else {
                throw bad("'tie_word_embeddings' is \(t), not true/false")
            }
            tied = n.boolValue
        } else {
            tied = false // transformers' LlamaConfig default
        }
        if let scaling = d["rope_scaling"], !(scaling is NSNull) {
            throw bad("rope_scaling \(scaling) is not supported")
        }
        func intOrFirst(_ key: String, default def: Int) throws -> Int {
            if let a = d[key] as? [NSNumber], let f = a.first { return f.intValue } // eos may be a list
            return try int(key, default: def)
        }
        hf = HFLlama.Config(hiddenSize: hidden, intermediateSize: try int("intermediate_size"),
                            numAttentionHeads: heads, numKeyValueHeads: kv,
                            numHiddenLayers: try int("num_hidden_layers"),
                            rmsNormEps: try double("rms_norm_eps", default: 1e-6),
                            ropeTheta: try double("rope_theta", default: 10000),
                            vocabSize: try int("vocab_size"),
                            maxPositionEmbeddings: try int("max_position_embeddings", default: 2048),
                            bosTokenID: try intOrFirst("bos_token_id", default: 1),
                            eosTokenID: try intOrFirst("eos_token_id", default: 2),
                            tieWordEmbeddings: tied)
        guard hf.maxPositionEmbeddings > 0, hf.maxPositionEmbeddings <= 1 << 30 else {
            throw bad("max_position_embeddings is \(hf.maxPositionEmbeddings); expected a positive integer")
        }
        guard hf.rmsNormEps > 0, hf.rmsNormEps < 1 else {
            throw bad("rms_norm_eps is \(hf.rmsNormEps); expected a number in (0, 1)")
        }
        guard hf.ropeTheta > 1, hf.ropeTheta.isFinite else {
            throw bad("rope_theta is \(hf.ropeTheta); expected a number > 1")
        }
        model = ModelConfig(dim: hidden, layers: hf.numHiddenLayers, heads: heads, kvHeads: kv, headDim: headDim,
                            ffnDim: hf.intermediateSize, vocabSize: hf.vocabSize, ropeBase: Float(hf.ropeTheta),
                            normEps: Float(hf.rmsNormEps), tiedEmbeddings: tied)
        do { try model.validate() } catch { throw bad("\(error)") }
    }

    /// `config.json` text for `model` (HFLlama.configJSON, plus the real head_dim when it is not
    /// hidden_size / num_attention_heads).
    public static func json(model: ModelConfig, maxPositionEmbeddings: Int = 8192, bosTokenID: Int = 1,
                            eosTokenID: Int = 2) -> String {
        let hf = HFLlama.Config(model: model, maxPositionEmbeddings: maxPositionEmbeddings,
                                bosTokenID: bosTokenID, eosTokenID: eosTokenID)
        var text = HFLlama.configJSON(hf)
        if hf.headDim != model.headDim {
            text = text.replacingOccurrences(of: "\"head_dim\": \(hf.headDim),", with: "\"head_dim\": \(model.headDim),")
        }
        return text
    }
}

extension ParameterStore {
    /// Names of the files in a Hugging Face model directory.
    public static let hfWeightsFile = "model.safetensors"
    public static let hfConfigFile = "config.json"

    /// Writes `directory/model.safetensors` (Hugging Face Llama names, `dtype` F32 or BF16, q/k
    /// rows in HF's rotate-half order, no `lm_head` when embeddings are tied; metadata `format: pt`
    /// plus `extraMetadata`) and `directory/config.json`. Each file is written atomically (temporary
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
            if let heads = ExportArchitecture.rotaryHeads(ggufName: v.name, config: c) {
                HFLlama.permuteGGUFToHF(src, into: scratch, rows: v.shape[0], cols: v.count / v.shape[0], heads: heads)
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

    /// Reads a Hugging Face Llama directory written by `saveHF` (or by transformers, F32/F16/BF16
    /// weights in one `model.safetensors`): the shape from `config.json`, tensors mapped back to
    /// GGUF names and q/k rows back to the interleaved order. Every parameter must be present;
    /// an unknown tensor (including `lm_head.weight` when config.json says the embeddings are
    /// tied) is an error; rotary `inv_freq` buffers are ignored. A training checkpoint (a
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
    /// `model.safetensors`' header against it (every tensor present with its shape, none of a
    /// layer past `num_hidden_layers`, F32/F16/BF16 only). Returns the parsed config.
    @discardableResult
    public static func validateHF(directory: String) throws -> HFModelConfig {
        let cfg = try HFModelConfig(path: directory + "/" + hfConfigFile)
        try checkHFTensors(try openHFWeights(directory: directory), config: cfg.model)
        return cfg
    }

    private static func openHFWeights(directory: String) throws -> SafeTensorsFile {
        let path = directory + "/" + Self.hfWeightsFile
        do { return try SafeTensorsFile(path: path) } catch let e as SafeTensorsError {
            if case .cannotOpen = e, !FileManager.default.fileExists(atPath: path) {
                throw HFCheckpointError.notFound(path: path, reason: "missing (a Hugging Face model directory needs model.safetensors and config.json)")
            }
            throw e
        }
    }

    /// The header of `file` against `config` (see `validateHF`); allocates nothing that grows
    /// with the config's sizes.
    private static func checkHFTensors(_ file: SafeTensorsFile, config: ModelConfig) throws {
        let path = file.path
        var table: [(name: String, shape: [Int])] = []
        for t in file.tensors {
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
    /// `contextLength` from its `max_position_embeddings`; every tensor is checked for NaN/±∞ as
    /// it is read.
    public func readHFWeights(directory: String) throws {
        let configPath = directory + "/" + Self.hfConfigFile
        let cfg = try HFModelConfig(path: configPath)
        if cfg.model != config {
            throw HFCheckpointError.configMismatch(path: configPath, expected: config, found: cfg.model)
        }
        let file = try Self.openHFWeights(directory: directory)
        let path = file.path
        // Check every name and shape first: nothing is written unless the whole file fits.
        try Self.checkHFTensors(file, config: config)
        var plan: [(tensor: String, view: TensorView)] = []
        for t in file.tensors where !t.name.hasSuffix(".rotary_emb.inv_freq") {
            plan.append((t.name, view(HFLlama.ggufName(fromHF: t.name)!)!))
        }
        contextLength = cfg.hf.maxPositionEmbeddings
        let maxRows = max(config.qDim, config.kvDim)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, maxRows * config.dim))
        defer { scratch.deallocate() }
        for (name, v) in plan {
            let dst = pointer + v.offset
            switch HFLlama.qkRole(ggufName: v.name) {
            case nil:
                try file.read(name, into: dst)
            case let role?:
                try file.read(name, into: scratch)
                HFLlama.permuteHFToGGUF(UnsafePointer(scratch), into: dst, rows: v.shape[0], cols: v.shape[1],
                                        heads: role == .query ? config.heads : config.kvHeads)
            }
            try NonFiniteWeightsError.check(dst, count: v.count, tensor: name, path: path)
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
private func isJSONBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

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
        case .huggingFace: return try ParameterStore.loadHF(directory: path, log: log)
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
