import Foundation

/// SmolLM2's chat template (ChatML), as in the GGUF's `tokenizer.chat_template`:
///
///     {% for message in messages %}
///       {% if loop.first and messages[0]['role'] != 'system' %}
///         <|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n
///       {% endif %}
///       <|im_start|>{role}\n{content}<|im_end|>\n
///     {% endfor %}
///     {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}
public enum ChatML {
    public static let imStart = "<|im_start|>"
    public static let imEnd = "<|im_end|>"
    public static let defaultSystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

    /// The prompt text for `messages`. A default system message is inserted when the first
    /// message is not a system message (none for an empty list, as in the template).
    public static func prompt(messages: [(role: String, content: String)], addGenerationPrompt: Bool) -> String {
        var out = ""
        if let first = messages.first, first.role != "system" {
            out += imStart + "system\n" + defaultSystemPrompt + imEnd + "\n"
        }
        for m in messages {
            out += imStart + m.role + "\n" + m.content + imEnd + "\n"
        }
        if addGenerationPrompt {
            out += imStart + "assistant\n"
        }
        return out
    }

    /// The prompt for `messages` encoded with special tokens allowed (so `<|im_start|>` and
    /// `<|im_end|>` become their ids; note that content containing control-token text is then
    /// read as control tokens too).
    public static func encode(messages: [(role: String, content: String)], addGenerationPrompt: Bool,
                              tokenizer: BPETokenizer) -> [Int32] {
        tokenizer.encode(prompt(messages: messages, addGenerationPrompt: addGenerationPrompt), allowSpecial: true)
    }
}

/// A model family's chat prompt format, chosen by the tokenizer (`BPETokenizer.chatFormat`).
public enum ChatFormat: Equatable, Sendable {
    /// ChatML (SmolLM2, Qwen2 / Qwen2.5 / Qwen3): `<|im_start|>role\ncontent<|im_end|>\n`, with
    /// `defaultSystem` inserted in front of a conversation that does not start with a system
    /// message (when the chat template does that).
    case chatML(defaultSystem: String?)
    /// Llama-3: `<|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`
    /// (content trimmed, as the Llama-3 template does); the generation prompt is the assistant
    /// header. The system preamble that the Llama-3.1 / 3.2 templates add by default ("Cutting
    /// Knowledge Date: …", today's date, tool instructions) is not written: a system message is
    /// only what the caller passes.
    case llama3

    /// Why `--chat` cannot be used with a tokenizer without a known format.
    public struct Unknown: Error, CustomStringConvertible, LocalizedError {
        public let hint: String
        public var errorDescription: String? { description }
        public var description: String {
            "this model's chat format is not known (supported: ChatML with <|im_start|>/<|im_end|>, as SmolLM2 and "
                + "Qwen use, and the Llama-3 header format with <|start_header_id|>/<|end_header_id|>/<|eot_id|>): "
                + hint
        }
    }

    /// The format a chat template calls for (nil template: the special tokens decide); nil when
    /// neither the template nor the tokens give a known format. A template that names neither
    /// format's tokens is not guessed from the vocabulary.
    public static func detect(template: String?, hasToken: (String) -> Bool) -> ChatFormat? {
        let chatMLTokens = hasToken(ChatML.imStart) && hasToken(ChatML.imEnd)
        let llamaTokens = hasToken("<|start_header_id|>") && hasToken("<|end_header_id|>") && hasToken("<|eot_id|>")
        if let t = template {
            if t.contains(ChatML.imStart), chatMLTokens { return .chatML(defaultSystem: defaultSystem(chatMLTemplate: t)) }
            if t.contains("<|start_header_id|>"), llamaTokens, hasToken("<|begin_of_text|>") { return .llama3 }
            return nil
        }
        if chatMLTokens { return .chatML(defaultSystem: nil) }
        if llamaTokens && hasToken("<|begin_of_text|>") { return .llama3 }
        return nil
    }

    /// The default system message a ChatML template writes when the conversation has none: the
    /// first literal `<|im_start|>system\n…<|im_end|>` in it (the newline written as Jinja's `\n`
    /// escape, as in `tokenizer_config.json`, or as a newline, as in SmolLM2's GGUF) whose text
    /// is plain (no quote, brace, backslash or expression).
    static func defaultSystem(chatMLTemplate t: String) -> String? {
        for head in [ChatML.imStart + "system\\n", ChatML.imStart + "system\n"] {
            var rest = t[...]
            while let r = rest.range(of: head) {
                rest = rest[r.upperBound...]
                guard let end = rest.range(of: ChatML.imEnd) else { break }
                let text = rest[..<end.lowerBound]
                if !text.isEmpty, !text.contains(where: { "'\"{}+\\\n".contains($0) }) { return String(text) }
            }
        }
        return nil
    }

    /// The prompt text for `messages`.
    public func prompt(messages: [(role: String, content: String)], addGenerationPrompt: Bool) -> String {
        switch self {
        case .chatML(let system):
            var out = ""
            if let system, let first = messages.first, first.role != "system" {
                out += ChatML.imStart + "system\n" + system + ChatML.imEnd + "\n"
            }
            for m in messages { out += ChatML.imStart + m.role + "\n" + m.content + ChatML.imEnd + "\n" }
            if addGenerationPrompt { out += ChatML.imStart + "assistant\n" }
            return out
        case .llama3:
            var out = "<|begin_of_text|>"
            for m in messages {
                out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n"
                    + m.content.trimmingCharacters(in: .whitespacesAndNewlines) + "<|eot_id|>"
            }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
            return out
        }
    }

    /// The prompt encoded with special tokens allowed.
    public func encode(messages: [(role: String, content: String)], addGenerationPrompt: Bool,
                       tokenizer: BPETokenizer) -> [Int32] {
        tokenizer.encode(prompt(messages: messages, addGenerationPrompt: addGenerationPrompt), allowSpecial: true)
    }

    /// The ids that end an assistant turn: the turn's end token and the tokenizer's stop tokens.
    public func stopTokens(_ tokenizer: BPETokenizer) -> Set<Int32> {
        let end: String
        switch self {
        case .chatML: end = ChatML.imEnd
        case .llama3: end = "<|eot_id|>"
        }
        var s = tokenizer.stopTokens
        if let id = tokenizer.id(of: end) { s.insert(id) }
        return s
    }
}
