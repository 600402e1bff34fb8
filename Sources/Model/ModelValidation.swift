import Foundation

// Checks a model file against its own header before anything is allocated (the tensor table:
// names, shapes, the layer count), non-finite weights after reading, and UTF-8 text input.

/// What is wrong with a model file's tensor table for a `ModelConfig` (GGUF tensor names;
/// the loaders turn them into their file's own spelling and error type).
public enum TensorTableProblem: Error, Equatable, Sendable {
    /// An expected tensor is absent.
    case missing(String)
    /// A tensor has another shape (row-major, PyTorch order).
    case shape(String, expected: [Int], found: [Int])
    /// A `blk.*` tensor that is not a parameter of a Llama block (or a tensor not expected for
    /// this config, e.g. `output.weight` with tied embeddings).
    case unexpected(String)
    /// The header's layer count disagrees with the blocks present: `present` blocks
    /// (`blk.0` … `blk.present−1`) have tensors. `tensor` is the first missing tensor when the
    /// header says more, or a tensor of a block past the header's count when it says fewer.
    case layerCount(declared: Int, present: Int, tensor: String)
}

extension TensorTableProblem {
    /// The problem in words, with `countKey` the header's name for the layer count and `name`
    /// the file's spelling of a GGUF tensor name.
    public func describe(countKey: String, name: (String) -> String = { $0 }) -> String {
        switch self {
        case let .missing(t): return "tensor '\(name(t))' is missing"
        case let .shape(t, e, f): return "tensor '\(name(t))' has shape \(f), expected \(e) from the header"
        case let .unexpected(t): return "tensor '\(name(t))' is not a parameter of this Llama model"
        case let .layerCount(declared, present, t):
            let blocks = present == 0 ? "no layer tensors" : "tensors for \(present) layer\(present == 1 ? "" : "s")"
            if declared > present {
                return "\(countKey) is \(declared) but the file has \(blocks); tensor '\(name(t))' is missing"
            }
            return "\(countKey) is \(declared) but the file has \(blocks): tensor '\(name(t))' is beyond "
                + "the last layer (\(declared - 1)) of the header"
        }
    }
}

extension ModelConfig {
    /// The tensors of block `l`: GGUF names and row-major shapes (the order of `ParameterLayout`).
    public func blockTensors(_ l: Int) -> [(name: String, shape: [Int])] {
        blockSuffixes.map { ("blk.\(l).\($0)", blockShape($0)!) }
    }

    /// The tensors outside the blocks: embedding, final norm and (untied) output head.
    public var globalTensors: [(name: String, shape: [Int])] {
        var out = [("token_embd.weight", [vocabSize, dim]), ("output_norm.weight", [dim])]
        if !tiedEmbeddings { out.append(("output.weight", [vocabSize, dim])) }
        return out
    }

    /// The names after `blk.N.` of a block's tensors, in the order of `ParameterLayout`: the
    /// Llama weights, with the optional biases and q/k norms of this config after their weights.
    public var blockSuffixes: [String] {
        var s = ["attn_norm.weight", "attn_q.weight"]
        if qkvBias { s.append("attn_q.bias") }
        s.append("attn_k.weight")
        if qkvBias { s.append("attn_k.bias") }
        s.append("attn_v.weight")
        if qkvBias { s.append("attn_v.bias") }
        if qkNorm { s += ["attn_q_norm.weight", "attn_k_norm.weight"] }
        s.append("attn_output.weight")
        if outputBias { s.append("attn_output.bias") }
        s += ["ffn_norm.weight", "ffn_gate.weight"]
        if mlpBias { s.append("ffn_gate.bias") }
        s.append("ffn_up.weight")
        if mlpBias { s.append("ffn_up.bias") }
        s.append("ffn_down.weight")
        if mlpBias { s.append("ffn_down.bias") }
        return s
    }

    /// The row-major shape of a block tensor by its name after `blk.N.`, or nil (also for an
    /// optional tensor this config does not have).
    func blockShape(_ suffix: String) -> [Int]? {
        switch suffix {
        case "attn_norm.weight", "ffn_norm.weight": return [dim]
        case "attn_q.weight": return [qDim, dim]
        case "attn_k.weight", "attn_v.weight": return [kvDim, dim]
        case "attn_output.weight": return [dim, qDim]
        case "ffn_gate.weight", "ffn_up.weight": return [ffnDim, dim]
        case "ffn_down.weight": return [dim, ffnDim]
        case "attn_q.bias": return qkvBias ? [qDim] : nil
        case "attn_k.bias", "attn_v.bias": return qkvBias ? [kvDim] : nil
        case "attn_q_norm.weight", "attn_k_norm.weight": return qkNorm ? [headDim] : nil
        case "attn_output.bias": return outputBias ? [dim] : nil
        case "ffn_gate.bias", "ffn_up.bias": return mlpBias ? [ffnDim] : nil
        case "ffn_down.bias": return mlpBias ? [dim] : nil
        default: return nil
        }
    }

    /// `blk.N.rest` → (N, rest) for a plain decimal N, else nil.
    static func blockIndex(_ name: String) -> (layer: Int, rest: String)? {
        guard name.hasPrefix("blk.") else { return nil }
        let tail = name.dropFirst(4)
        guard let dot = tail.firstIndex(of: "."), dot > tail.startIndex else { return nil }
        let digits = tail[tail.startIndex..<dot]
        guard digits.count < 10, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else { return nil }
        return (n, String(tail[tail.index(after: dot)...]))
    }

    /// Checks a model file's tensor table (GGUF names → row-major shapes) against this shape.
    /// Allocates nothing that grows with the header's sizes, so an absurd layer count or width
    /// is caught before any parameter buffer exists. Every expected tensor must be present with
    /// its shape; a `blk.*` tensor must be a block parameter of a block below `layers`; other
    /// names are passed over (e.g. llama.cpp's `rope_freqs.weight`), except `output.weight`
    /// when the embeddings are tied. Returns the first problem, or nil.
    public func tensorTableProblem(_ table: [(name: String, shape: [Int])]) -> TensorTableProblem? {
        var present: [String: [Int]] = [:]
        var blocksWithTensors = Set<Int>()
        for (name, shape) in table {
            present[name] = shape
            if let (l, rest) = Self.blockIndex(name) {
                guard let want = blockShape(rest) else { return .unexpected(name) }
                blocksWithTensors.insert(l)
                if l >= layers { continue } // reported below, with the count
                if shape != want { return .shape(name, expected: want, found: shape) }
            } else if name.hasPrefix("blk.") {
                return .unexpected(name)
            } else if let want = globalTensors.first(where: { $0.name == name })?.shape {
                if shape != want { return .shape(name, expected: want, found: shape) }
            } else if name == "output.weight" {
                return .unexpected(name)
            }
        }
        // The blocks present must be exactly 0 ..< layers.
        var contiguous = 0
        while blocksWithTensors.contains(contiguous) { contiguous += 1 }
        if let extra = blocksWithTensors.filter({ $0 >= layers }).min() {
            let name = table.first { Self.blockIndex($0.name)?.layer == extra }!.name
            return .layerCount(declared: layers, present: contiguous, tensor: name)
        }
        if contiguous < layers && !blocksWithTensors.contains(where: { $0 > contiguous }) {
            return .layerCount(declared: layers, present: contiguous, tensor: blockTensors(contiguous)[0].name)
        }
        // Every tensor of every block (the loop ends at the first gap, so it is bounded by the
        // table's size, not by `layers`) and the global ones.
        for l in 0..<layers {
            for (name, _) in blockTensors(l) where present[name] == nil { return .missing(name) }
        }
        for (name, _) in globalTensors where present[name] == nil { return .missing(name) }
        return nil
    }
}

/// A tensor holds NaN or ±∞ values.
public struct NonFiniteWeightsError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var path: String
    public var tensor: String
    public var count: Int
    public var firstIndex: Int
    public var firstValue: Float

    public var errorDescription: String? { description }
    public var description: String {
        "\(path): tensor '\(tensor)' has \(count) non-finite value\(count == 1 ? "" : "s") (first: \(firstValue) at "
            + "element \(firstIndex)); the weights are corrupt or come from a diverged run"
    }

    /// Throws when any of the `count` floats at `p` is NaN or infinite (one pass, no allocation).
    public static func check(_ p: UnsafePointer<Float>, count: Int, tensor: String, path: String) throws {
        var bad = 0
        p.withMemoryRebound(to: UInt32.self, capacity: count) { bits in
            for i in 0..<count { bad &+= (bits[i] & 0x7f80_0000) == 0x7f80_0000 ? 1 : 0 }
        }
        guard bad > 0 else { return }
        let first = (0..<count).first { !p[$0].isFinite }!
        throw NonFiniteWeightsError(path: path, tensor: tensor, count: bad, firstIndex: first, firstValue: p[first])
    }
}

/// UTF-8 validity of text read from a file.
public enum UTF8Validation {
    /// The invalid sequences of `bytes` as `String(decoding:as: UTF8.self)` replaces them (one
    /// U+FFFD each): the byte offset of the first and how many there are; nil when valid.
    public static func invalidSequences(_ bytes: [UInt8]) -> (firstOffset: Int, count: Int)? {
        var parser = Unicode.UTF8.ForwardParser()
        var it = bytes.makeIterator()
        var offset = 0, first: Int?, count = 0
        loop: while true {
            switch parser.parseScalar(from: &it) {
            case let .valid(encoded): offset += encoded.count
            case let .error(length):
                if first == nil { first = offset }
                count += 1
                offset += length
            case .emptyInput: break loop
            }
        }
        return first.map { ($0, count) }
    }
}

/// A sequence longer than the model's context length.
public struct ContextLengthError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// What the sequence is, e.g. "the prompt" or "HumanEval/17's prompt".
    public var what: String
    public var promptTokens: Int
    public var newTokens: Int
    public var contextLength: Int
    /// The model's sliding attention window, when that is what limits the context.
    public var slidingWindow: Int? = nil

    public var errorDescription: String? { description }
    public var description: String {
        let total = promptTokens + newTokens
        if slidingWindow != nil {
            return "\(what) needs \(total) positions, more than the model's sliding_window \(contextLength) "
                + "(sliding-window attention is not implemented: sequences must fit inside the window)"
        }
        if newTokens == 0 {
            return "\(what) has \(promptTokens) tokens, more than the model's context length \(contextLength)"
        }
        return "\(what) has \(promptTokens) tokens; with up to \(newTokens) new tokens that makes \(total), "
            + "more than the model's context length \(contextLength)"
            + (promptTokens < contextLength
                ? " (lower the new-token budget to \(contextLength - promptTokens) or shorten the prompt)" : "")
    }
}

extension Transformer {
    /// The model's context length (`ParameterStore.contextLength`), nil when unknown.
    public var contextLength: Int? { parameters.contextLength }

    /// Throws `ContextLengthError` when `promptTokens + newTokens` positions do not fit the
    /// context length (a model of unknown context length accepts any).
    public func checkContext(promptTokens: Int, newTokens: Int, what: String) throws {
        guard let n = contextLength, promptTokens + newTokens > n else { return }
        throw ContextLengthError(what: what, promptTokens: promptTokens, newTokens: newTokens, contextLength: n,
                                 slidingWindow: parameters.slidingWindow == n ? n : nil)
    }
}
