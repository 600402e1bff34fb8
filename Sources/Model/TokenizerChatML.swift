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
