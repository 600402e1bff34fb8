"""Reference tokenizers for the tokenizer.json tests, built and run with the `tokenizers` library.

  python3 tokenizer_families.py build OUTDIR
      Trains a small byte-level BPE (BpeTrainer) on a fixed text sample (the first Python stdlib
      sources plus a multilingual paragraph) for each family, with the family's published
      pre-tokenizer configuration, and writes OUTDIR/llama3/ and OUTDIR/qwen2/ with
      tokenizer.json, tokenizer_config.json and generation_config.json:
        llama3: Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=False), no normalizer,
                ignore_merges=True, TemplateProcessing with <|begin_of_text|>, the Llama-3
                special tokens (as Meta-Llama-3 / Llama-3.2);
        qwen2:  NFC normalizer, Split(Qwen2 regex, Isolated) + ByteLevel(use_regex=False),
                ignore_merges=False, the Qwen2 special tokens (as Qwen2.5).
      Both get a few whole words added to the vocabulary (not reachable by the merges, so
      ignore_merges decides them) and added tokens exercising the flags.
  python3 tokenizer_families.py run TOKENIZER_JSON REQUESTS OUT
      Answers a JSON list of requests: {"op": "encode", "text", "special"} (special false: the
      special tokens are read as text, encode_special_tokens = True), {"op": "decode", "ids"},
      {"op": "pretokenize", "text"} (the pre-tokenizer's pieces, byte-level spelled, after the
      normalizer), {"op": "time", "texts", "repeat"} (seconds of the fastest of `repeat` passes
      encoding every text in turn with add_special_tokens=False).
"""
import glob
import json
import os
import sys
import time

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")

MULTILINGUAL = """
Der schnelle braune Fuchs springt über den faulen Hund. Ça va très bien, merci ! ¿Dónde está la biblioteca?
Быстрая коричневая лиса прыгает через ленивую собаку. Γρήγορη καφέ αλεπού. 速い茶色の狐がのろまな犬を飛び越える。
敏捷的棕色狐狸跳过了懒狗。 빠른 갈색 여우가 게으른 개를 뛰어넘는다. الثعلب البني السريع يقفز فوق الكلب الكسول.
השועל החום המהיר קופץ מעל הכלב העצלן. तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है। สุนัขจิ้งจอกสีน้ำตาลกระโดด
Emoji 😀🎉👍🏽 👨‍👩‍👧 ❤️ 12345 ٣٤٥ ½ Ⅻ café naïve résumé It's we're they've I'm you'll he'd DON'T
"""

LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
                   "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
                   "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
                   "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
QWEN2_TEMPLATE = ("{%- if messages[0]['role'] == 'system' %}\n"
                  "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
                  "{%- else %}\n"
                  "    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                  "assistant.<|im_end|>\\n' }}\n{%- endif %}\n"
                  "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
                  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
                  "{%- endif %}{%- endfor %}\n"
                  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n")

# Whole words put into the vocabulary after training (byte-level spelled; Ġ is a space).
EXTRA_WORDS = ["Ġunbelievablyzz", "Ġqwertyuiop", "Ġzyxwvut", "Ġ(((", "ĠĠĠĠĠĠĠĠreturn"]


def sample_texts():
    files = sorted(glob.glob("/usr/lib/python3.11/*.py"))[:40]
    texts = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            texts.append(fh.read())
    texts += [MULTILINGUAL] * 20
    return texts


def build(family, out_dir):
    if family == "llama3":
        normalizer = None
        split = pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False)
        ignore_merges = True
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    else:
        normalizer = normalizers.NFC()
        split = pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False)
        ignore_merges = False
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    pre = pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])

    base = Tokenizer(models.BPE())
    base.normalizer = normalizer
    base.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    base.train_from_iterator(sample_texts(), trainer)
    model = json.loads(base.to_str())["model"]
    vocab = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    for w in EXTRA_WORDS:
        if w not in vocab:
            vocab[w] = len(vocab)

    tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=ignore_merges))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    # Added tokens exercising the flags (non-special ones are matched even when special tokens
    # are read as text).
    tok.add_tokens([
        AddedToken("<tool_call>", special=False, normalized=False),
        AddedToken("<mask>", special=False, normalized=False, single_word=True, lstrip=True, rstrip=True),
        AddedToken("cafe\u0301", special=False, normalized=True),
    ])
    if family == "llama3":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)

    d = os.path.join(out_dir, family)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    if family == "llama3":
        config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": LLAMA3_TEMPLATE,
                  "tokenizer_class": "PreTrainedTokenizerFast"}
        generation = {"bos_token_id": tok.token_to_id("<|begin_of_text|>"),
                      "eos_token_id": [tok.token_to_id("<|end_of_text|>"), tok.token_to_id("<|eot_id|>")]}
    else:
        config = {"bos_token": None, "eos_token": {"__type": "AddedToken", "content": "<|im_end|>", "lstrip": False,
                                                   "normalized": False, "rstrip": False, "single_word": False},
                  "pad_token": "<|endoftext|>", "add_bos_token": False, "chat_template": QWEN2_TEMPLATE,
                  "tokenizer_class": "Qwen2Tokenizer"}
        generation = {"bos_token_id": tok.token_to_id("<|endoftext|>"),
                      "eos_token_id": [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")],
                      "pad_token_id": tok.token_to_id("<|endoftext|>")}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        json.dump(config, fh, ensure_ascii=False, indent=2)
    with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as fh:
        json.dump(generation, fh, indent=2)


def run(path, req_path, out_path):
    tok = Tokenizer.from_file(path)
    with open(req_path, encoding="utf-8") as fh:
        reqs = json.load(fh)
    out = []
    for r in reqs:
        op = r["op"]
        if op == "encode":
            tok.encode_special_tokens = not r.get("special", False)
            out.append(tok.encode(r["text"], add_special_tokens=False).ids)
        elif op == "decode":
            out.append(tok.decode(r["ids"], skip_special_tokens=False))
        elif op == "pretokenize":
            text = r["text"]
            if tok.normalizer is not None:
                text = tok.normalizer.normalize_str(text)
            out.append([p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)])
        elif op == "time":
            tok.encode_special_tokens = True
            best = None
            for _ in range(r.get("repeat", 1)):
                t0 = time.perf_counter()
                for t in r["texts"]:
                    tok.encode(t, add_special_tokens=False)
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            out.append(best)
        else:
            raise SystemExit("unknown op " + op)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    if sys.argv[1] == "build":
        for fam in ("llama3", "qwen2"):
            build(fam, sys.argv[2])
    elif sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)
