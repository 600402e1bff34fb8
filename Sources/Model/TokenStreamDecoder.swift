/// Turns a stream of token ids into text pieces that never split a UTF-8 sequence: bytes of an
/// incomplete trailing sequence are held until the next token completes them (e.g. an emoji
/// spread over several tokens during generation).
public struct TokenStreamDecoder: Sendable {
    public let tokenizer: BPETokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: BPETokenizer) { self.tokenizer = tokenizer }

    /// The text that `id` completes (possibly empty).
    public mutating func append(_ id: Int32) throws -> String {
        pending += try tokenizer.decodeBytes(CollectionOfOne(id))
        // Hold back the last sequence if its lead byte announces more bytes than are here.
        var start = pending.count - 1
        while start >= 0 && pending.count - start < 4 && pending[start] & 0xC0 == 0x80 { start -= 1 }
        var cut = pending.count
        if start >= 0 {
            let lead = pending[start]
            let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if need > pending.count - start && lead < 0xF8 { cut = start }
        }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Whatever is held back (an incomplete sequence becomes U+FFFD); resets the decoder.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }
}
