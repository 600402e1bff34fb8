import Evaluation
import Foundation
import Model
import Rollout

/// The packed training and validation chunks of a run (spec §3; issue 13). Every task goes
/// through the same reader and packer: `data` reads the user's files, `code` is the preset
/// "the stdlib directory, `*.py`, one document per file, split by path hash", `qa-code` and
/// `translation` are the built-in question/answer pairs (split by their parsers) packed as
/// pairs. File sources are tokenised once into the token cache.
public struct TrainingData {
    public var train: ChunkTable
    /// Up to `eval-chunks` validation chunks (round-robin over the sources).
    public var validation: [Chunk]
    /// All validation chunks.
    public var validationCount: Int
    /// The mixture's sources (one per `data` path), empty for a single source.
    public var mixture: [ChunkSampler.Mixture]
    /// Records skipped as bad, over all sources.
    public var bad: Int

    /// The document encoder of a run: plain text without special tokens; chats in the model's
    /// chat format (the only place a chat record is rendered).
    public static func encoder(_ tokenizer: BPETokenizer) -> DocumentEncoder {
        DocumentEncoder(text: { tokenizer.encode($0, allowSpecial: false) },
                        chat: { ChatML.encode(messages: $0, addGenerationPrompt: false, tokenizer: tokenizer) },
                        identity: "\(tokenizerIdentity(tokenizer))+chatml", eos: tokenizer.eos,
                        vocabSize: tokenizer.vocabSize)
    }

    /// A hash of the vocabulary, the special ids and the encoding of a probe text (which the
    /// merges decide).
    static func tokenizerIdentity(_ t: BPETokenizer) -> String {
        var text = "bos=\(t.bos ?? -1) eos=\(t.eos) pad=\(t.pad ?? -1)\n" + t.tokens.joined(separator: "\n")
        let probe = "Hello, world! def f(x):\n    return x ** 2  # Grüße, 日本語 — ünïcödé\n\n\tThe end."
        text += "\n" + t.encode(probe, allowSpecial: false).map(String.init).joined(separator: ",")
        let h = text.utf8CString.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
        return String(format: "bpe-%016llx", h)
    }

    /// The record options of the configuration.
    static func recordOptions(_ c: TrainConfig) -> RecordOptions {
        var o = RecordOptions()
        o.format = DataFormat(rawValue: c.dataFormat) ?? .auto
        o.textKey = c.textKey; o.inputKey = c.inputKey; o.outputKey = c.outputKey
        o.glob = c.dataGlob
        return o
    }

    /// `progress`: signs of life while a source is tokenised (see `TokenCache.load`).
    public static func load(config c: TrainConfig, tokenizer: BPETokenizer, log: (String) -> Void = { _ in },
                            progress: (String) -> Void = { _ in }) throws -> TrainingData {
        let enc = encoder(tokenizer), P = c.chunkLength
        let cacheDir = c.dataCache.isEmpty ? TokenCache.defaultDirectory : c.dataCache
        /// A file source through the cache, its bad records checked.
        func packed(_ path: String, _ options: RecordOptions, _ split: SplitRule) throws -> PackedSource {
            let source = try RecordSource(path: path, options: options)
            let p = try TokenCache.load(source: source, split: split, encoder: enc, chunkLength: P, directory: cacheDir,
                                        progress: progress, log: log)
            let s = p.meta.stats
            if let e = s.check(source: path, maxBadFraction: c.maxBadFraction) { throw e }
            if !p.built {
                log("data \(path): token cache \(p.path) reused: \(s.records) records, \(p.meta.trainChunks) train / "
                    + "\(p.meta.validationChunks) validation chunks")
            }
            if s.bad > 0 {
                log("data \(path): skipped \(s.bad) bad of \(s.records + s.bad) records; first:\n  "
                    + s.reports.joined(separator: "\n  "))
            }
            return p
        }
        switch c.task {
        case "code":
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: c.corpusRoot, isDirectory: &isDir) else {
                throw CorpusError.rootMissing(c.corpusRoot)
            }
            guard isDir.boolValue else { throw CorpusError.notADirectory(c.corpusRoot) }
            var o = RecordOptions()
            o.format = .text; o.glob = "*.py"; o.excludedDirectories = StdlibCorpus.excludedDirectories
            let p = try packed(c.corpusRoot, o, .hash(c.validationFraction))
            return make(train: [p.train], validation: [p.validation], weights: [], bad: p.meta.stats.bad, c: c, eos: enc.eos)
        case "qa-code", "translation":
            let split = c.task == "qa-code" ? try QACodePairs.load(root: c.corpusRoot, options: c.qaCodeOptions)
                                             : try TranslationPairs.load(options: c.translationOptions)
            let tr = TokenCache.pack(records: split.train.map { .pair(prompt: $0.question, response: $0.answer) },
                                     encoder: enc, chunkLength: P)
            let va = TokenCache.pack(records: split.test.map { .pair(prompt: $0.question, response: $0.answer) },
                                     encoder: enc, chunkLength: P)
            return make(train: [tr.part], validation: [va.part], weights: [], bad: tr.stats.bad + va.stats.bad, c: c, eos: enc.eos)
        default:
            let specs = try c.data.map(DataSpec.init(parsing:))
            let options = recordOptions(c)
            var train: [ChunkTable.Part] = [], validation: [ChunkTable.Part] = [], bad = 0
            for s in specs {
                let p = try packed(s.path, options, c.validationData == nil ? .hash(c.validationFraction) : .allTrain)
                guard p.train.count > 0 else {
                    throw TrainerError.data("data \(s.path): no training chunk of \(P) tokens (\(p.meta.stats.tokens) tokens in "
                                            + "\(p.meta.stats.records) records); lower chunk-length or add data")
                }
                train.append(p.train); validation.append(p.validation); bad += p.meta.stats.bad
            }
            if let v = c.validationData {
                let p = try packed(v, options, .allValidation)
                validation = [p.validation]; bad += p.meta.stats.bad
            }
            return make(train: train, validation: validation, weights: specs.count > 1 ? specs.map(\.weight) : [],
                        bad: bad, c: c, eos: enc.eos)
        }
    }

    static func make(train: [ChunkTable.Part], validation: [ChunkTable.Part], weights: [Double], bad: Int,
                     c: TrainConfig, eos: Int32) -> TrainingData {
        let t = ChunkTable(chunkLength: c.chunkLength, eos: eos, parts: train)
        let v = ChunkTable(chunkLength: c.chunkLength, eos: eos, parts: validation)
        let mixture = weights.isEmpty ? [] : zip(t.offsets, zip(t.partCounts, weights)).map {
            ChunkSampler.Mixture(offset: $0.0, count: $0.1.0, weight: $0.1.1)
        }
        return TrainingData(train: t, validation: v.roundRobin(limit: c.evalChunks), validationCount: v.count,
                            mixture: mixture, bad: bad)
    }
}
