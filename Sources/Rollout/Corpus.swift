import Foundation
import Model

/// Turns text into token ids. The real byte-level BPE tokenizer conforms to this; so does
/// `ByteTextEncoder` (tests, smoke runs). Encoding adds no special tokens (spec §3, §13.17).
public protocol TextEncoder {
    func encode(_ text: String) -> [Int32]
    /// The end-of-sequence id put between consecutive documents when packing.
    var eos: Int32 { get }
}

/// Each UTF-8 byte is one token (0...255); EOS is 256. A stand-in tokenizer.
public struct ByteTextEncoder: TextEncoder, Sendable {
    public init() {}
    public var eos: Int32 { 256 }
    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }
}

/// One packed training sequence of exactly `P` tokens (spec §3).
public struct Chunk: Equatable, Sendable, Codable {
    public var tokens: [Int32]
    /// The document each token belongs to (stream order 0, 1, 2, …); an EOS separator belongs
    /// to the document before it; padding has −1.
    public var docIds: [Int32]

    public init(tokens: [Int32], docIds: [Int32]) {
        precondition(tokens.count == docIds.count, "tokens and doc ids must have the same length")
        self.tokens = tokens; self.docIds = docIds
    }
}

/// Packing documents into fixed-length chunks (spec §3, `pack_to_fixed_chunks`).
public enum Packing {
    /// What to do with the final partial chunk.
    public enum Remainder: String, Codable, Sendable {
        /// Pad it to `P` with the pad id (doc id −1) — the reference behaviour.
        case pad
        /// Drop it.
        case drop
    }

    /// Concatenates the documents into one stream with one EOS between consecutive documents
    /// (none after the last), then cuts it into consecutive chunks of exactly `P` tokens.
    /// Document ids are the indices into `documents`; an empty document still has an id and
    /// its separator (callers that want no such separators filter empty documents first).
    public static func pack(documents: [[Int32]], chunkLength P: Int, eos: Int32, pad: Int32,
                            remainder: Remainder = .pad) -> [Chunk] {
        precondition(P > 0, "chunk length must be positive, got \(P)")
        var chunks: [Chunk] = []
        var tokens: [Int32] = [], ids: [Int32] = []
        tokens.reserveCapacity(P); ids.reserveCapacity(P)
        func push(_ t: Int32, _ id: Int32) {
            tokens.append(t); ids.append(id)
            if tokens.count == P {
                chunks.append(Chunk(tokens: tokens, docIds: ids))
                tokens.removeAll(keepingCapacity: true); ids.removeAll(keepingCapacity: true)
            }
        }
        for (i, doc) in documents.enumerated() {
            let id = Int32(truncatingIfNeeded: i)
            for t in doc { push(t, id) }
            if i + 1 < documents.count { push(eos, id) }
        }
        if !tokens.isEmpty && remainder == .pad {
            while tokens.count < P { tokens.append(pad); ids.append(-1) }
            chunks.append(Chunk(tokens: tokens, docIds: ids))
        }
        return chunks
    }
}

/// A corpus that cannot be read.
public enum CorpusError: Error, Equatable, CustomStringConvertible {
    case rootMissing(String)
    case notADirectory(String)
    case noFiles(String)
    case badValidationFraction(Double)
    case tooFewChunks(chunks: Int, batchSize: Int)
    case badBatchSize(Int)

    public var description: String {
        switch self {
        case .rootMissing(let p):
            return "corpus root \(p) does not exist; install Python 3.11's standard library (apt-get install libpython3.11-stdlib) or pass another directory of .py files"
        case .notADirectory(let p):
            return "corpus root \(p) is not a directory"
        case .noFiles(let p):
            return "corpus root \(p) contains no usable .py files (after excluding test/, tests/, idle_test/, site-packages/, dist-packages/ and symlinks)"
        case .badValidationFraction(let f):
            return "validation fraction must be in [0, 1), got \(f)"
        case let .tooFewChunks(chunks, batchSize):
            return "the training set has \(chunks) chunks, fewer than one batch of \(batchSize); use a smaller batch or a larger corpus"
        case .badBatchSize(let b):
            return "the batch size must be at least 1 chunk, got \(b)"
        }
    }
}

/// A corpus split.
public enum Split: String, Codable, Sendable { case train, validation }

/// The Python standard library as a text corpus (the project's stand-in for the paper's code
/// data).
///
/// * Files: every regular `*.py` file under the root (default `/usr/lib/python3.11`), in sorted
///   relative-path order. Excluded: directories named `test`, `tests`, `idle_test` (the
///   regression test suite is huge, repetitive, and installed only partly by distributions),
///   `site-packages`, `dist-packages` and `__pycache__` (not the standard library; they vary
///   from machine to machine), and symbolic links (distribution-specific aliases and
///   duplicates such as `sitecustomize.py` → /etc).
/// * Split: a file is in the validation split iff `FNV-1a-64(relative path) mod 10⁶ <
///   fraction·10⁶` — stable across machines, file order and corpus growth.
/// * Reading: files that cannot be read or are not valid UTF-8 are skipped and counted; empty
///   files are skipped too (they would only add EOS separators).
public struct StdlibCorpus: Sendable {
    public static let defaultRoot = "/usr/lib/python3.11"
    public static let excludedDirectories: Set<String> = [
        "test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
    ]

    public let root: String
    public let validationFraction: Double
    /// All usable file paths relative to the root, sorted.
    public let files: [String]

    public init(root: String = StdlibCorpus.defaultRoot, validationFraction: Double = 0.05) throws {
        guard validationFraction >= 0 && validationFraction < 1 else {
            throw CorpusError.badValidationFraction(validationFraction)
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir) else { throw CorpusError.rootMissing(root) }
        guard isDir.boolValue else { throw CorpusError.notADirectory(root) }
        self.root = root
        self.validationFraction = validationFraction
        files = StdlibCorpus.enumerate(root: root)
        guard !files.isEmpty else { throw CorpusError.noFiles(root) }
    }

    static func enumerate(root: String) -> [String] {
        enumerate(root: root, excluded: excludedDirectories) { $0.hasSuffix(".py") }
    }

    /// Regular files under `root` whose name passes `include`, as sorted relative paths, not
    /// entering directories named in `excluded` and skipping symbolic links.
    static func enumerate(root: String, excluded: Set<String>, include: (String) -> Bool) -> [String] {
        let fm = FileManager.default
        var out: [String] = []
        func walk(_ rel: String) {
            let dir = rel.isEmpty ? root : root + "/" + rel
            guard let names = try? fm.contentsOfDirectory(atPath: dir) else { return }
            for name in names {
                let relPath = rel.isEmpty ? name : rel + "/" + name
                let full = root + "/" + relPath
                guard let attrs = try? fm.attributesOfItem(atPath: full),
                      let type = attrs[.type] as? FileAttributeType else { continue }
                if type == .typeDirectory {
                    if !excluded.contains(name) { walk(relPath) }
                } else if type == .typeRegular && include(name) {
                    out.append(relPath)
                }
            }
        }
        walk("")
        return out.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// FNV-1a, 64 bit, over the UTF-8 bytes of `s`.
    public static func fnv1a64(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    public static func isValidation(relativePath: String, fraction: Double) -> Bool {
        fnv1a64(relativePath) % 1_000_000 < UInt64((fraction * 1_000_000).rounded())
    }

    /// The relative paths of one split, sorted.
    public func files(_ split: Split) -> [String] {
        files.filter { StdlibCorpus.isValidation(relativePath: $0, fraction: validationFraction) == (split == .validation) }
    }

    /// The texts of one split, in file order, with the paths that were skipped.
    public func documents(_ split: Split) -> (paths: [String], texts: [String], skipped: [String]) {
        var paths: [String] = [], texts: [String] = [], skipped: [String] = []
        for rel in files(split) {
            guard let data = FileManager.default.contents(atPath: root + "/" + rel),
                  let text = String(validating: data, as: UTF8.self) else {
                skipped.append(rel); continue
            }
            if text.isEmpty { continue }
            paths.append(rel); texts.append(text)
        }
        return (paths, texts, skipped)
    }

    /// Tokenises and packs one split into chunks of `P` tokens (spec §3).
    public func chunks(_ split: Split, encoder: TextEncoder, chunkLength P: Int, pad: Int32? = nil,
                       remainder: Packing.Remainder = .pad) -> (chunks: [Chunk], skipped: [String]) {
        let docs = documents(split)
        let ids = docs.texts.map { encoder.encode($0) }
        return (Packing.pack(documents: ids, chunkLength: P, eos: encoder.eos, pad: pad ?? encoder.eos,
                             remainder: remainder), docs.skipped)
    }
}

/// Which chunks each training step uses (spec §3.6, §7.3): every epoch is a seeded permutation
/// of the chunk indices, cut into batches of `B` with the last partial batch dropped. Step `t`
/// is computed on demand from (seed, epoch, position), so a resumed run and every rank agree.
///
/// A mixture of sources (`parts`, each a run of global chunk indices with a weight) draws each
/// of the `B` slots of step `t` independently: slot n = t·B + j picks source s with probability
/// w_s / Σw (from the uniform keyed by (shuffle seed, 2⁶² + n, 0, 0, 0)), and takes position
/// n mod N_s of source s's permutation for pass ⌊n / N_s⌋ — stateless like the single-source
/// order, and within any N_s consecutive slots no chunk of a source is drawn twice.
public struct ChunkSampler: Equatable, Sendable {
    public let chunkCount: Int
    public let batchSize: Int
    public let seed: UInt64
    /// The mixture's sources: (first global index, chunk count, weight); empty for one source.
    public let parts: [Mixture]

    public struct Mixture: Equatable, Sendable {
        public var offset: Int
        public var count: Int
        public var weight: Double
        public init(offset: Int, count: Int, weight: Double) { self.offset = offset; self.count = count; self.weight = weight }
    }

    public init(chunkCount: Int, batchSize: Int, seed: UInt64, mixture: [Mixture] = []) throws {
        guard batchSize > 0 else { throw CorpusError.badBatchSize(batchSize) }
        guard chunkCount >= batchSize else { throw CorpusError.tooFewChunks(chunks: chunkCount, batchSize: batchSize) }
        self.chunkCount = chunkCount; self.batchSize = batchSize; self.seed = seed
        parts = mixture.count > 1 ? mixture : []
        precondition(parts.allSatisfy { $0.count > 0 && $0.weight > 0 }, "every mixture source needs chunks and a weight > 0")
    }

    /// Full batches per epoch (drop_last).
    public var stepsPerEpoch: Int { chunkCount / batchSize }

    /// Total optimizer steps for `epochs` passes (one optimizer step per batch).
    public func totalSteps(epochs: Int) -> Int { stepsPerEpoch * epochs }

    public func epoch(ofStep t: Int) -> Int { t / stepsPerEpoch }

    /// The chunk order of `epoch`: a Fisher–Yates permutation driven by SplitMix64 seeded with
    /// `CounterRNG.bits(seed: derive(seed, .shuffle), epoch, 0, 0, 0)`.
    public func permutation(epoch: Int) -> [Int] {
        permutation(epoch: epoch, count: chunkCount, source: 0)
    }

    /// Source `source`'s order for a pass (source 0 alone is the single-source order).
    func permutation(epoch: Int, count: Int, source: Int) -> [Int] {
        let base = CounterRNG.derive(seed, .shuffle)
        var g = SplitMix64(seed: CounterRNG.bits(seed: base, UInt64(epoch), UInt64(source), 0, 0))
        return g.permutation(count)
    }

    /// The mixture source of slot `n` (see the type's documentation).
    public func source(ofSlot n: Int) -> Int {
        let base = CounterRNG.derive(seed, .shuffle)
        let u = Double(CounterRNG.bits(seed: base, 1 << 62 | UInt64(n), 0, 0, 0) >> 11) * 0x1p-53
        let total = parts.reduce(0) { $0 + $1.weight }
        var acc = 0.0
        for (s, p) in parts.enumerated() {
            acc += p.weight / total
            if u < acc { return s }
        }
        return parts.count - 1
    }

    /// The `B` chunk indices of global step `t` (0-based).
    public func indices(step t: Int) -> [Int] {
        precondition(t >= 0, "step must be non-negative, got \(t)")
        if parts.isEmpty {
            let j = t % stepsPerEpoch
            return Array(permutation(epoch: epoch(ofStep: t))[j * batchSize ..< (j + 1) * batchSize])
        }
        var cache: [Int: [Int]] = [:]
        return (0..<batchSize).map { j in
            let n = t * batchSize + j, s = source(ofSlot: n), p = parts[s]
            let pass = n / p.count, key = s << 40 | pass
            let perm = cache[key] ?? permutation(epoch: pass, count: p.count, source: s + 1)
            cache[key] = perm
            return p.offset + perm[n % p.count]
        }
    }
}
