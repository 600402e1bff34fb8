import Foundation
import Model
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Training checkpoints.
//
//   RUN/checkpoints/step-000120/        one complete checkpoint (also a loadable HF model dir)
//       model.safetensors  config.json   ParameterStore.saveHF output
//       optimizer.safetensors            Adam moments: 1-D F32 tensors "adam.m", "adam.v" (flat,
//                                        parallel to the parameter buffer, padding included)
//       state.json                       counters, seed, roles, run config, per-file size + XXH64
//       state.json.xxh64                 the XXH64 of state.json (`CheckpointFiles`, in Model)
//   RUN/checkpoints/latest               "step-000120\n" (written by temp file + rename)
//
// Every byte is covered by a checksum: a checkpoint is verified whenever it is read, to resume
// (`load`) or as a model (`ParameterStore.loadHF`). Format version 1 had no state.json.xxh64;
// such a checkpoint is still read, with a warning that its state is unverified.
//
// A checkpoint is built in `step-000120.tmp-<pid>/`, every file fsynced, the directory fsynced,
// renamed to its final name, the parent fsynced, and only then is `latest` updated. So a crash
// leaves either the previous checkpoints untouched plus a `.tmp-<pid>` directory (ignored by
// `latest`, removed by the next `save`), or the new checkpoint complete.

/// What a checkpoint records besides tensors. `dataCursor` is `stepsDone`: the chunk order is a
/// pure function of (seed, step), so the next step's data is found from the step alone.
public struct CheckpointState: Equatable, Sendable {
    /// Training steps completed (the step index to run next).
    public var stepsDone: Int
    /// `AdamW.step` (set from the optimizer by `save`; what was stored, after `load`).
    public var adamStep: Int
    public var seed: UInt64
    /// The caller's world: MPI world size, number of learner ranks, colocated roles.
    public var worldSize: Int
    public var learners: Int
    public var colocate: Bool
    /// The whole run configuration (`TrainConfig.yaml()`).
    public var configYAML: String
    /// Free-form extra values (e.g. git commit, metrics at save time).
    public var info: [String: String]

    public var dataCursor: Int { stepsDone }

    public init(stepsDone: Int, adamStep: Int = 0, seed: UInt64, worldSize: Int = 1, learners: Int = 1,
                colocate: Bool = false, configYAML: String = "", info: [String: String] = [:]) {
        self.stepsDone = stepsDone
        self.adamStep = adamStep
        self.seed = seed
        self.worldSize = worldSize
        self.learners = learners
        self.colocate = colocate
        self.configYAML = configYAML
        self.info = info
    }
}

// `CheckpointError` is defined in Model (CheckpointFiles.swift), beside the verification.

public enum Checkpoint {
    public static let formatName = "ebft-dist-checkpoint"
    /// 2: state.json.xxh64 added. Version 1 is still read (see the file comment).
    public static let formatVersion = 2
    public static let stateFile = CheckpointFiles.stateFile
    public static let optimizerFile = "optimizer.safetensors"
    public static let latestFile = "latest"
    public static let directoryName = "checkpoints"
    /// The files every checkpoint has, besides state.json (which lists their checksums) and
    /// state.json.xxh64 (state.json's checksum).
    public static let dataFiles = [ParameterStore.hfWeightsFile, ParameterStore.hfConfigFile, optimizerFile]

    /// `step-%06d`.
    public static func name(step: Int) -> String {
        let s = String(step)
        return "step-" + String(repeating: "0", count: max(0, 6 - s.count)) + s
    }

    /// `RUN/checkpoints`.
    public static func checkpointsDirectory(runDir: String) -> String { runDir + "/" + directoryName }

    // MARK: save

    /// Writes `RUN/checkpoints/step-<stepsDone>/` atomically (see the file comment), points
    /// `latest` at it, removes stale `.tmp-<pid>` directories of dead processes, and keeps the
    /// `keep` (≥ 1) complete checkpoints with the highest step numbers (always including the one
    /// just written); other files in `checkpoints/` are left alone. `state.adamStep` is taken
    /// from `optimizer.step`. An existing checkpoint of the same step is replaced. `sideFiles`
    /// (the model's tokenizer files and generation_config.json, `TokenizerExport.sideFiles`) are written
    /// beside the weights and checksummed like them, so the checkpoint is a complete Hugging Face
    /// model directory. Returns the checkpoint directory.
    @discardableResult
    public static func save(runDir: String, params: ParameterStore, optimizer: AdamW, state: CheckpointState,
                            keep: Int = 2, sideFiles: [HFSideFile] = []) throws -> String {
        try save(runDir: runDir, weights: .full(params), optimizer: optimizer, state: state, keep: keep, sideFiles: sideFiles)
    }

    /// What a checkpoint holds besides the optimizer: the whole model, or LoRA adapters (in the
    /// PEFT layout, `LoRAFiles`) on the base model `baseModel`, which is not copied.
    public enum Weights {
        case full(ParameterStore)
        case lora(LoRAWeights, baseModel: String)

        var count: Int {
            switch self {
            case let .full(p): return p.count
            case let .lora(l, _): return l.count
            }
        }
        var model: ModelConfig {
            switch self {
            case let .full(p): return p.config
            case let .lora(l, _): return l.modelConfig
            }
        }
        var files: [String] {
            switch self {
            case .full: return Checkpoint.dataFiles
            case .lora: return Checkpoint.loraDataFiles
            }
        }
    }

    /// The files of a LoRA checkpoint besides state.json and its checksum.
    public static let loraDataFiles = [LoRAFiles.weightsFile, LoRAFiles.configFile, optimizerFile]

    /// `save` of the given weights (see `Weights`).
    @discardableResult
    public static func save(runDir: String, weights: Weights, optimizer: AdamW, state: CheckpointState,
                            keep: Int = 2, sideFiles: [HFSideFile] = []) throws -> String {
        let ckDir = checkpointsDirectory(runDir: runDir)
        guard optimizer.count == weights.count else {
            throw CheckpointError.mismatch(path: ckDir, problem: "the optimizer has \(optimizer.count) moments, the parameters \(weights.count) values")
        }
        guard state.stepsDone >= 0 else {
            throw CheckpointError.mismatch(path: ckDir, problem: "stepsDone \(state.stepsDone) is negative")
        }
        do {
            try FileManager.default.createDirectory(atPath: ckDir, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError.writeFailed(path: ckDir, reason: "cannot create the directory: \(error.localizedDescription)")
        }
        let name = name(step: state.stepsDone)
        let final = ckDir + "/" + name
        let tmp = final + ".tmp-\(getpid())"
        let fm = FileManager.default
        if fm.fileExists(atPath: tmp) { try? fm.removeItem(atPath: tmp) }
        do { try fm.createDirectory(atPath: tmp, withIntermediateDirectories: false) } catch {
            throw CheckpointError.writeFailed(path: tmp, reason: "cannot create the directory: \(error.localizedDescription)")
        }
        var published = false
        defer { if !published { try? fm.removeItem(atPath: tmp) } }

        // 1. tensors (each file is fsynced by its writer)
        let meta = ["ebft.steps_done": String(state.stepsDone), "ebft.checkpoint": name]
        switch weights {
        case let .full(params): try params.saveHF(directory: tmp, extraMetadata: meta)
        case let .lora(lora, base): try LoRAFiles.save(lora, directory: tmp, baseModel: base, metadata: meta)
        }
        try optimizer.m.withUnsafeBufferPointer { m in
            try optimizer.v.withUnsafeBufferPointer { v in
                try SafeTensors.write(tensors: [("adam.m", [m.count], m), ("adam.v", [v.count], v)],
                                      metadata: ["format": "pt", "ebft.adam_step": String(optimizer.step)],
                                      to: tmp + "/" + optimizerFile)
            }
        }
        for f in sideFiles {
            guard CheckpointFiles.isPlainName(f.name), !weights.files.contains(f.name), f.name != stateFile,
                  f.name != CheckpointFiles.stateChecksumFile else {
                throw CheckpointError.writeFailed(path: tmp, reason: "side file name '\(f.name)' is not a plain, unused file name")
            }
            try writeAtomically(tmp + "/" + f.name, f.bytes)
        }
        // 2. checksums of what is on disk, then state.json, then its checksum
        var files = [StateFile.FileEntry]()
        for f in weights.files + sideFiles.map(\.name) {
            let (bytes, h) = try XXH64.file(tmp + "/" + f)
            files.append(.init(name: f, bytes: bytes, xxh64: XXH64.hex(h)))
        }
        var st = state
        st.adamStep = optimizer.step
        let sf = StateFile(state: st, parameterCount: weights.count, model: weights.model, files: files)
        let json = Array(try encoder().encode(sf)) + [0x0A]
        try writeAtomically(tmp + "/" + stateFile, json)
        try writeAtomically(tmp + "/" + CheckpointFiles.stateChecksumFile, Array(CheckpointFiles.stateChecksumLine(json).utf8))
        fsyncDirectory(tmp)

        // 3. publish: rename into place (moving an existing same-step checkpoint aside first)
        var aside: String? = nil
        if fm.fileExists(atPath: final) {
            let a = final + ".tmp-\(getpid())-old"
            try? fm.removeItem(atPath: a)
            if rename(final, a) != 0 {
                throw CheckpointError.writeFailed(path: final, reason: "cannot move the existing checkpoint aside: \(String(cString: strerror(errno)))")
            }
            aside = a
        }
        if rename(tmp, final) != 0 {
            let reason = String(cString: strerror(errno))
            if let a = aside { _ = rename(a, final) }
            throw CheckpointError.writeFailed(path: final, reason: "rename from \(tmp): \(reason)")
        }
        published = true
        fsyncDirectory(ckDir)
        try writeAtomically(ckDir + "/" + latestFile, Array((name + "\n").utf8))
        if let a = aside { try? fm.removeItem(atPath: a) }

        // 4. housekeeping
        removeStaleTemporaries(ckDir)
        let complete = completeCheckpoints(ckDir)
        let keepSet = Set(complete.prefix(max(1, keep)).map(\.name) + [name])
        for c in complete where !keepSet.contains(c.name) {
            try? fm.removeItem(atPath: ckDir + "/" + c.name)
        }
        fsyncDirectory(ckDir)
        return final
    }

    // MARK: find

    /// A checkpoint found by `resolve(resume:)` or `find(runDir:)`.
    public struct Found: Equatable, Sendable {
        /// The checkpoint directory.
        public var directory: String
        /// The run it belongs to (RUN of RUN/checkpoints/step-N, absolute); nil for a checkpoint
        /// directory that is not inside a `checkpoints/` directory.
        public var runDirectory: String?
        /// Why later checkpoints were passed over (e.g. `latest` names one whose state.json is
        /// damaged), nil when none was; callers print it.
        public var fallback: String?
        /// About the checkpoint itself: an older format whose state.json is unverified.
        public var warning: String?

        /// `fallback` and `warning`, to print.
        public var messages: [String] { [fallback, warning].compactMap { $0 } }
    }

    /// The checkpoint to resume `runDir` from: the one `RUN/checkpoints/latest` names if it is
    /// complete, else the complete `step-*` directory with the highest step; nil when there is
    /// none. "Complete" means state.json matches its checksum and parses, and every file it
    /// lists exists with the recorded size (the files' checksums are verified by `load`).
    /// `.tmp-*` directories are never returned.
    public static func latest(runDir: String) throws -> String? {
        find(runDir: runDir)?.directory
    }

    /// `latest(runDir:)` with the reason for any fallback.
    public static func find(runDir: String) -> Found? {
        search(checkpointsDirectory(runDir: runDir)).found
    }

    /// The checkpoint (see `latest(runDir:)`) and a description of every checkpoint passed over.
    static func search(_ ckDir: String) -> (found: Found?, skipped: [String]) {
        var skipped: [String] = []
        var named: String?
        let latestPath = ckDir + "/" + latestFile
        if let text = try? String(contentsOfFile: latestPath, encoding: .utf8) {
            let n = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if parseStep(n) == nil {
                skipped.append("\(latestPath) names '\(n)', which is not a step-N checkpoint")
            } else if let why = problem(ckDir + "/" + n) {
                named = n
                skipped.append("\(ckDir)/\(n) (named by latest) cannot be used: \(why)")
            } else {
                return (found(ckDir, n, fallback: nil), [])
            }
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: ckDir)) ?? []
        for (n, _) in names.compactMap({ n in parseStep(n).map { (n, $0) } }).sorted(by: { $0.1 > $1.1 }) where n != named {
            if let why = problem(ckDir + "/" + n) {
                skipped.append("\(ckDir)/\(n) cannot be used: \(why)")
                continue
            }
            let fallback = skipped.isEmpty ? nil
                : "falling back to the checkpoint \(ckDir)/\(n): " + skipped.joined(separator: "; ")
            return (found(ckDir, n, fallback: fallback), skipped)
        }
        return (nil, skipped)
    }

    static func found(_ ckDir: String, _ name: String, fallback: String?) -> Found {
        let dir = ckDir + "/" + name
        let warning = (try? readStateChecked(dir, hints: false))?.warning
        return Found(directory: dir, runDirectory: runDirectory(checkpoint: dir), fallback: fallback, warning: warning)
    }

    /// RUN for RUN/checkpoints/step-N (absolute, standardized); nil when the checkpoint's parent
    /// is not a `checkpoints` directory.
    public static func runDirectory(checkpoint dir: String) -> String? {
        let parent = URL(fileURLWithPath: dir).standardizedFileURL.deletingLastPathComponent()
        guard parent.lastPathComponent == directoryName else { return nil }
        return parent.deletingLastPathComponent().path
    }

    /// `--resume PATH`: a checkpoint directory (has state.json) → itself (its state.json must
    /// match its checksum); a run directory (has `checkpoints/`) or a `checkpoints` directory →
    /// its latest checkpoint, with the reason when a later one was passed over.
    public static func resolve(resume given: String) throws -> Found {
        var path = given
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError.noCheckpoint(path: path, reason: "not a directory")
        }
        if fm.fileExists(atPath: path + "/" + stateFile) {
            let warning = try readStateChecked(path, hints: true).warning
            return Found(directory: path, runDirectory: runDirectory(checkpoint: path), fallback: nil, warning: warning)
        }
        let ckDir: String
        if fm.fileExists(atPath: checkpointsDirectory(runDir: path)) {
            ckDir = checkpointsDirectory(runDir: path)
        } else if fm.fileExists(atPath: path + "/" + latestFile) || (path as NSString).lastPathComponent == directoryName {
            ckDir = path
        } else {
            throw CheckpointError.noCheckpoint(path: path, reason: "neither a checkpoint directory (with state.json) nor a run directory (with checkpoints/)")
        }
        let (found, skipped) = search(ckDir)
        guard let found else {
            throw CheckpointError.noCheckpoint(path: ckDir, reason: "it holds no complete step-* checkpoint"
                                               + (skipped.isEmpty ? "" : " (" + skipped.joined(separator: "; ") + ")"))
        }
        return found
    }

    // MARK: load

    /// Reads the checkpoint in `dir` into `params` and `optimizer`: verifies state.json, the size
    /// and XXH64 of every file, the model shape and the parameter count, then restores the
    /// parameters, Adam's m, v and step bit for bit (the optimizer's hyper-parameters are kept).
    /// Every check (checksums, shapes, names) runs before anything is modified; only an I/O error
    /// while copying could leave `params`/`optimizer` partly overwritten.
    public static func load(_ dir: String, into params: ParameterStore, optimizer: inout AdamW) throws -> CheckpointState {
        let sf = try verify(dir)
        let statePath = dir + "/" + stateFile
        if LoRAFiles.isAdapter(dir) {
            throw CheckpointError.mismatch(path: statePath, problem: "it is a LoRA checkpoint (adapters only) and this run "
                                           + "fine-tunes the whole model: resume it with the lora-rank it was trained with")
        }
        if sf.parameterCount != params.count || sf.model != params.config {
            throw CheckpointError.mismatch(path: statePath, problem: "it holds \(sf.parameterCount) parameters of \(sf.model), the run has \(params.count) of \(params.config)")
        }
        // Check the optimizer file's tensors, then read: parameters (readHFWeights checks its
        // names and shapes before writing), then the moments straight into the optimizer.
        let optPath = dir + "/" + optimizerFile
        let opt = try SafeTensorsFile(path: optPath)
        for n in ["adam.m", "adam.v"] {
            let t = try opt.tensor(named: n)
            guard t.shape == [params.count], t.dtype == "F32" else {
                throw CheckpointError.mismatch(path: optPath, problem: "tensor \(n) is \(t.dtype) \(t.shape), expected F32 [\(params.count)]")
            }
        }
        try params.readHFWeights(directory: dir)
        if optimizer.m.count != params.count { optimizer.m = [Float](repeating: 0, count: params.count) }
        if optimizer.v.count != params.count { optimizer.v = [Float](repeating: 0, count: params.count) }
        try optimizer.m.withUnsafeMutableBufferPointer { try opt.read("adam.m", into: $0.baseAddress!) }
        try optimizer.v.withUnsafeMutableBufferPointer { try opt.read("adam.v", into: $0.baseAddress!) }
        optimizer.step = sf.adamStep
        return sf.state
    }

    /// Resumes a LoRA run: the adapters into `lora` (same rank, α, targets and model shape), the
    /// moments into `optimizer`; the base weights are the run's model (not in the checkpoint).
    public static func load(_ dir: String, into lora: LoRAWeights, optimizer: inout AdamW) throws -> CheckpointState {
        let sf = try verify(dir)
        let statePath = dir + "/" + stateFile
        guard LoRAFiles.isAdapter(dir) else {
            throw CheckpointError.mismatch(path: statePath, problem: "it is a full fine-tuning checkpoint and this run trains "
                                           + "LoRA adapters (lora-rank > 0): resume it without LoRA")
        }
        if sf.parameterCount != lora.count || sf.model != lora.modelConfig {
            throw CheckpointError.mismatch(path: statePath, problem: "it holds \(sf.parameterCount) adapter values for \(sf.model), "
                                           + "the run has \(lora.count) for \(lora.modelConfig)")
        }
        let optPath = dir + "/" + optimizerFile
        let opt = try SafeTensorsFile(path: optPath)
        for n in ["adam.m", "adam.v"] {
            let t = try opt.tensor(named: n)
            guard t.shape == [lora.count], t.dtype == "F32" else {
                throw CheckpointError.mismatch(path: optPath, problem: "tensor \(n) is \(t.dtype) \(t.shape), expected F32 [\(lora.count)]")
            }
        }
        try LoRAFiles.read(directory: dir, into: lora)
        if optimizer.m.count != lora.count { optimizer.m = [Float](repeating: 0, count: lora.count) }
        if optimizer.v.count != lora.count { optimizer.v = [Float](repeating: 0, count: lora.count) }
        try optimizer.m.withUnsafeMutableBufferPointer { try opt.copy("adam.m", into: $0.baseAddress!) }
        try optimizer.v.withUnsafeMutableBufferPointer { try opt.copy("adam.v", into: $0.baseAddress!) }
        optimizer.step = sf.adamStep
        return sf.state
    }

    /// Checks state.json against its checksum, then the size and checksum of every file of the
    /// checkpoint in `dir` (reads every byte); returns the parsed state.
    @discardableResult
    public static func verify(_ dir: String) throws -> StateFile {
        let sf = try readState(dir)
        try CheckpointFiles.verify(sf.files, in: dir, hint: { hint(dir) })
        return sf
    }

    /// Checks `dir/state.json` against its checksum (state.json.xxh64), parses it and checks its
    /// format and that it lists every checkpoint file.
    public static func readState(_ dir: String) throws -> StateFile {
        try readStateChecked(dir, hints: true).state
    }

    /// `readState` and, for a format-1 checkpoint (no state.json.xxh64), the warning that its
    /// state is unverified. `hints: false` skips computing the "previous checkpoint" suggestion
    /// (which itself reads the sibling checkpoints' state).
    static func readStateChecked(_ dir: String, hints: Bool) throws -> (state: StateFile, warning: String?) {
        let path = dir + "/" + stateFile
        func h() -> String { hints ? hint(dir) : "" }
        let (data, warning) = try CheckpointFiles.verifiedState(dir, hint: h)
        let sf: StateFile
        do { sf = try decoder().decode(StateFile.self, from: data) } catch {
            throw CheckpointError.badState(path: path, problem: "cannot parse (\(error))", hint: h())
        }
        guard sf.format == formatName else {
            throw CheckpointError.badState(path: path, problem: "format is '\(sf.format)', expected '\(formatName)'", hint: h())
        }
        guard (1...formatVersion).contains(sf.formatVersion) else {
            throw CheckpointError.badState(path: path, problem: "format version \(sf.formatVersion), this build reads 1 to \(formatVersion)", hint: h())
        }
        // A LoRA checkpoint lists the adapter files in place of the model's.
        let required = sf.files.contains(where: { $0.name == LoRAFiles.weightsFile }) ? loraDataFiles : dataFiles
        for f in required where !sf.files.contains(where: { $0.name == f }) {
            throw CheckpointError.badState(path: path, problem: "no checksum entry for \(f)", hint: h())
        }
        if let f = sf.files.first(where: { !CheckpointFiles.isPlainName($0.name) }) {
            throw CheckpointError.badState(path: path, problem: "file name '\(f.name)' is not a plain name", hint: h())
        }
        return (sf, warning)
    }

    /// The on-disk form of state.json (snake_case keys, sorted).
    public struct StateFile: Codable, Equatable, Sendable {
        public typealias FileEntry = CheckpointFiles.Entry
        public var format: String
        public var formatVersion: Int
        public var stepsDone: Int
        public var adamStep: Int
        public var dataCursor: Int
        public var seed: UInt64
        public var worldSize: Int
        public var learners: Int
        public var colocate: Bool
        public var parameterCount: Int
        public var model: ModelConfig
        public var configYaml: String
        public var info: [String: String]
        public var files: [FileEntry]
        public var created: String

        init(state s: CheckpointState, parameterCount: Int, model: ModelConfig, files: [FileEntry]) {
            format = Checkpoint.formatName
            formatVersion = Checkpoint.formatVersion
            stepsDone = s.stepsDone
            adamStep = s.adamStep
            dataCursor = s.dataCursor
            seed = s.seed
            worldSize = s.worldSize
            learners = s.learners
            colocate = s.colocate
            self.parameterCount = parameterCount
            self.model = model
            configYaml = s.configYAML
            info = s.info
            self.files = files
            created = ISO8601DateFormatter().string(from: Date())
        }

        public var state: CheckpointState {
            CheckpointState(stepsDone: stepsDone, adamStep: adamStep, seed: seed, worldSize: worldSize,
                            learners: learners, colocate: colocate, configYAML: configYaml, info: info)
        }
    }

    // MARK: helpers

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        do { try writeFileAtomically(path, bytes) } catch {
            throw CheckpointError.writeFailed(path: path, reason: "\(error)")
        }
    }

    /// "step-000120" → 120 (exactly `step-` and digits).
    static func parseStep(_ name: String) -> Int? {
        guard name.hasPrefix("step-") else { return nil }
        let digits = name.dropFirst(5)
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// state.json matches its checksum and parses, and every listed file exists with its
    /// recorded size.
    static func isComplete(_ dir: String) -> Bool { problem(dir) == nil }

    /// Why the checkpoint in `dir` is not complete (see `isComplete`), nil when it is.
    static func problem(_ dir: String) -> String? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else { return "\(dir) does not exist" }
        guard isDir.boolValue else { return "\(dir) is not a directory" }
        let sf: StateFile
        do { sf = try readStateChecked(dir, hints: false).state } catch { return "\(error)" }
        for f in sf.files {
            let p = dir + "/" + f.name
            guard let a = try? FileManager.default.attributesOfItem(atPath: p),
                  (a[.type] as? FileAttributeType) == .typeRegular else { return "\(p) is missing" }
            let size = (a[.size] as? NSNumber)?.intValue ?? -1
            if size != f.bytes { return "\(p) has \(size) bytes, state.json records \(f.bytes)" }
        }
        return nil
    }

    /// Complete `step-N` directories in `ckDir`, highest step first.
    static func completeCheckpoints(_ ckDir: String) -> [(name: String, step: Int)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: ckDir)) ?? []
        return names.compactMap { n in parseStep(n).map { (n, $0) } }
            .filter { isComplete(ckDir + "/" + $0.0) }
            .sorted { $0.1 > $1.1 }
    }

    /// Removes `step-N.tmp-<pid>[-old]` directories left by this process or by processes that no
    /// longer exist on this host.
    static func removeStaleTemporaries(_ ckDir: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: ckDir)) ?? []
        for n in names {
            guard let r = n.range(of: ".tmp-"), parseStep(String(n[..<r.lowerBound])) != nil else { continue }
            var tail = n[r.upperBound...]
            if tail.hasSuffix("-old") { tail = tail.dropLast(4) }
            guard let pid = Int32(tail), pid > 0 else { continue }
            let dead = kill(pid, 0) != 0 && errno == ESRCH
            if pid == getpid() || dead { try? FileManager.default.removeItem(atPath: ckDir + "/" + n) }
        }
    }

    /// "Resume from the previous checkpoint …" for errors about the checkpoint in `dir`.
    static func hint(_ dir: String) -> String {
        let url = URL(fileURLWithPath: dir).standardizedFileURL
        let ckDir = url.deletingLastPathComponent().path
        let this = parseStep(url.lastPathComponent) ?? Int.max
        if let prev = completeCheckpoints(ckDir).first(where: { $0.step < this }) {
            return "Resume from the previous checkpoint instead: --resume \(ckDir)/\(prev.name)"
        }
        return "There is no earlier complete checkpoint in \(ckDir)."
    }
}
