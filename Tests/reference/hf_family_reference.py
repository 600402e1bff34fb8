#!/usr/bin/env python3
"""Independent NumPy reference for Hugging Face decoder checkpoints of the Llama, Qwen2, Qwen3
and Mistral families, written from the published modelling equations (transformers'
modeling_llama / modeling_qwen2 / modeling_qwen3 / modeling_mistral), not from our Swift code.

It reads a Hugging Face directory on its own (config.json in the transformers 4 or 5 spelling,
model.safetensors or the shards of model.safetensors.index.json, F32 / F16 / BF16 read by
plain NumPy byte parsing) and runs a float64 forward pass as transformers does:
  RMSNorm; q/k/v projections (+ bias: qwen2, llama attention_bias); qwen3's per-head RMSNorm of
  q and k (q_norm/k_norm, weight of length head_dim) before RoPE; RoPE as HF applies it
  (rotate_half: pairs (x[i], x[i + hd/2]), inv_freq[i] = theta^(-2i/hd), scaled by rope type
  "linear" (inv_freq / factor) or "llama3" (_compute_llama3_parameters)); causal grouped-query
  attention with scale 1/sqrt(head_dim); o_proj (+ bias); SwiGLU MLP (+ mlp_bias); final norm;
  lm_head or the tied embedding.

It also WRITES tiny random directories for the tests ("make"): config.json with the keys of
transformers' own config classes for the family (LlamaConfig, Qwen2Config, Qwen3Config,
MistralConfig), in the transformers 4 spelling (rope_theta, rope_scaling, torch_dtype) or the
transformers 5 one (rope_parameters, dtype), and the weights as F32 or BF16 safetensors,
single-file or sharded with an index.

Input (JSON on stdin):
  {"make": {"dir": D, "family": "llama"|"qwen2"|"qwen3"|"mistral", "hidden": 48, "layers": 2,
            "heads": 4, "kv_heads": 2, "head_dim": 16 or null, "ffn": 64, "vocab": 97,
            "tied": bool, "attention_bias": bool, "mlp_bias": bool,
            "rope_theta": 10000, "rope": null | {"rope_type": "llama3"|"linear", ...},
            "spelling": 4|5, "dtype": "F32"|"BF16", "shards": 1 (1 = model.safetensors),
            "sliding_window": null|int, "max_positions": 128, "seed": 1, "std": 0.15,
            "generation_config": {...} or absent},      (optional)
   "model": D,                                           (the directory to run)
   "sequences": [[ids...], ...], "greedy": {"prompt": [ids...], "new_tokens": N},
   "ours": PATH (optional: little-endian float32 logits of every position of every sequence,
           [len(ids), vocab] each, concatenated, to compare with the reference's)}
Output:
  {"logprobs": [[logp of ids[i+1] given ids[:i+1]], ...], "greedy": [ids],
   "greedy_margin": smallest top-1 minus top-2 logit gap over the greedy steps,
   "max_abs_logit_diff": max |ours - reference| over every logit (with "ours"),
   "max_abs_logprob_diff": the same over every log-softmax value (with "ours")}
"""
import json
import math
import os
import struct
import sys

import numpy as np

# ----------------------------------------------------------------------------- safetensors


def f32_to_bf16_bits(a):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    b = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, float32 array). dtype F32 or BF16."""
    header, blobs, off = {}, [], 0
    for name, a in tensors:
        if dtype == "F32":
            raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        elif dtype == "BF16":
            raw = f32_to_bf16_bits(a).astype("<u2").tobytes()
        elif dtype == "F16":
            raw = np.ascontiguousarray(a, dtype="<f2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[base + b: base + e]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise ValueError(f"{path}: {name}: dtype {dt}")
        out[name] = a.reshape(info["shape"])
    return out


def read_weights(d):
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        index = json.load(f)
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        out.update(read_safetensors(os.path.join(d, shard)))
    return out

# ----------------------------------------------------------------------------- config


class Config:
    """The values the forward needs, read from either transformers spelling."""

    def __init__(self, d):
        self.family = d.get("model_type", "llama")
        assert self.family in ("llama", "qwen2", "qwen3", "mistral"), self.family
        assert d.get("hidden_act", "silu") == "silu"
        self.hidden = d["hidden_size"]
        self.layers = d["num_hidden_layers"]
        self.heads = d["num_attention_heads"]
        self.kv = d.get("num_key_value_heads") or self.heads
        self.hd = d.get("head_dim") or self.hidden // self.heads
        self.eps = d.get("rms_norm_eps", 1e-6)
        self.tied = d.get("tie_word_embeddings", False)
        rp = d.get("rope_parameters") or {}
        rs = d.get("rope_scaling") or rp
        self.theta = d.get("rope_theta", rp.get("rope_theta", 10000.0))
        self.rope = dict(rs) if rs else {}
        self.rope_type = self.rope.get("rope_type", self.rope.get("type", "default"))
        if self.family == "qwen2":
            self.qkv_bias, self.o_bias, self.mlp_bias = True, False, False
        elif self.family == "mistral":
            self.qkv_bias = self.o_bias = self.mlp_bias = False
        else:
            self.qkv_bias = self.o_bias = bool(d.get("attention_bias", False))
            self.mlp_bias = bool(d.get("mlp_bias", False)) if self.family == "llama" else False
        self.qk_norm = self.family == "qwen3"

    def inv_freq(self):
        i = np.arange(0, self.hd, 2, dtype=np.float64)
        inv = 1.0 / (self.theta ** (i / self.hd))
        t = self.rope_type
        if t == "default":
            return inv
        if t == "linear":
            return inv / self.rope["factor"]
        if t == "llama3":
            factor = self.rope["factor"]
            low, high = self.rope["low_freq_factor"], self.rope["high_freq_factor"]
            old = self.rope["original_max_position_embeddings"]
            low_wavelen, high_wavelen = old / low, old / high
            wavelen = 2 * math.pi / inv
            inv_l = np.where(wavelen > low_wavelen, inv / factor, inv)
            smooth = (old / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
            medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
            return np.where(medium, smoothed, inv_l)
        raise ValueError(f"rope type {t}")

# ----------------------------------------------------------------------------- model


class Model:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            self.c = Config(json.load(f))
        self.w = read_weights(d)
        self.emb = self.w["model.embed_tokens.weight"]
        self.head = self.emb if self.c.tied else self.w["lm_head.weight"]

    def rms(self, x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.c.eps) * g

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)

    def linear(self, x, name, bias):
        y = x @ self.w[name + ".weight"].T
        if bias:
            y = y + self.w[name + ".bias"]
        return y

    def logits(self, ids):
        c, w = self.c, self.w
        S = len(ids)
        pos = np.arange(S, dtype=np.float64)
        freqs = pos[:, None] * c.inv_freq()[None, :]
        emb = np.concatenate([freqs, freqs], axis=-1)              # [S, hd]
        cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
        x = self.emb[np.array(ids)]
        mask = np.triu(np.full((S, S), -np.inf), k=1)
        group = c.heads // c.kv
        for l in range(c.layers):
            p = f"model.layers.{l}."
            h = self.rms(x, w[p + "input_layernorm.weight"])
            q = self.linear(h, p + "self_attn.q_proj", c.qkv_bias).reshape(S, c.heads, c.hd)
            k = self.linear(h, p + "self_attn.k_proj", c.qkv_bias).reshape(S, c.kv, c.hd)
            v = self.linear(h, p + "self_attn.v_proj", c.qkv_bias).reshape(S, c.kv, c.hd)
            if c.qk_norm:
                q = self.rms(q, w[p + "self_attn.q_norm.weight"])
                k = self.rms(k, w[p + "self_attn.k_norm.weight"])
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            att = np.empty((S, c.heads, c.hd))
            for hh in range(c.heads):
                kv = hh // group
                sc = q[:, hh, :] @ k[:, kv, :].T / math.sqrt(c.hd) + mask
                sc = np.exp(sc - sc.max(axis=-1, keepdims=True))
                sc /= sc.sum(axis=-1, keepdims=True)
                att[:, hh, :] = sc @ v[:, kv, :]
            x = x + self.linear(att.reshape(S, c.heads * c.hd), p + "self_attn.o_proj", c.o_bias)
            h = self.rms(x, w[p + "post_attention_layernorm.weight"])
            gate = self.linear(h, p + "mlp.gate_proj", c.mlp_bias)
            up = self.linear(h, p + "mlp.up_proj", c.mlp_bias)
            x = x + self.linear(gate / (1.0 + np.exp(-gate)) * up, p + "mlp.down_proj", c.mlp_bias)
        x = self.rms(x, w["model.norm.weight"])
        return x @ self.head.T

    @staticmethod
    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

# ----------------------------------------------------------------------------- writing


ARCH_CLASS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
              "qwen3": "Qwen3ForCausalLM", "mistral": "MistralForCausalLM"}


def make_config(m):
    fam = m["family"]
    hd = m.get("head_dim")
    d = {
        "architectures": [ARCH_CLASS[fam]],
        "model_type": fam,
        "vocab_size": m["vocab"],
        "hidden_size": m["hidden"],
        "intermediate_size": m["ffn"],
        "num_hidden_layers": m["layers"],
        "num_attention_heads": m["heads"],
        "num_key_value_heads": m["kv_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": m.get("max_positions", 128),
        "initializer_range": 0.02,
        "rms_norm_eps": m.get("eps", 1e-6),
        "use_cache": True,
        "tie_word_embeddings": m["tied"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "transformers_version": "4.51.3" if m.get("spelling", 4) == 4 else "5.0.0",
    }
    if fam == "llama":
        d.update({"pretraining_tp": 1, "attention_bias": m.get("attention_bias", False),
                  "mlp_bias": m.get("mlp_bias", False), "head_dim": hd or m["hidden"] // m["heads"]})
    elif fam == "qwen2":
        d.update({"use_sliding_window": False, "sliding_window": m.get("sliding_window"),
                  "max_window_layers": m["layers"]})
    elif fam == "qwen3":
        d.update({"use_sliding_window": False, "sliding_window": m.get("sliding_window"),
                  "max_window_layers": m["layers"], "attention_bias": m.get("attention_bias", False),
                  "head_dim": hd or m["hidden"] // m["heads"]})
    elif fam == "mistral":
        d.update({"sliding_window": m.get("sliding_window"), "head_dim": hd or m["hidden"] // m["heads"]})
    rope = m.get("rope")
    theta = float(m.get("rope_theta", 10000.0))
    torch_dtype = "bfloat16" if m.get("dtype", "F32") == "BF16" else "float32"
    if m.get("spelling", 4) == 4:
        d["rope_theta"] = theta
        d["rope_scaling"] = rope
        d["torch_dtype"] = torch_dtype
    else:
        params = {"rope_type": "default", "rope_theta": theta}
        if rope:
            params.update(rope)
        d["rope_parameters"] = params
        d["dtype"] = torch_dtype
    return d


def make_weights(m):
    rng = np.random.default_rng(m.get("seed", 1))
    std = m.get("std", 0.15)
    fam, H, KV = m["family"], m["heads"], m["kv_heads"]
    D, F, V = m["hidden"], m["ffn"], m["vocab"]
    hd = m.get("head_dim") or D // H
    qkv_bias = fam == "qwen2" or (fam in ("llama", "qwen3") and m.get("attention_bias", False))
    o_bias = fam in ("llama", "qwen3") and m.get("attention_bias", False)
    mlp_bias = fam == "llama" and m.get("mlp_bias", False)

    def mat(o, i):
        return (rng.standard_normal((o, i)) * std).astype(np.float32)

    def vec(n, around=0.0, s=None):
        return (around + rng.standard_normal(n) * (std if s is None else s)).astype(np.float32)

    t = [("model.embed_tokens.weight", (rng.standard_normal((V, D)) * 0.5).astype(np.float32))]
    for l in range(m["layers"]):
        p = f"model.layers.{l}."
        t.append((p + "input_layernorm.weight", vec(D, 1.0, 0.1)))
        t.append((p + "self_attn.q_proj.weight", mat(H * hd, D)))
        t.append((p + "self_attn.k_proj.weight", mat(KV * hd, D)))
        t.append((p + "self_attn.v_proj.weight", mat(KV * hd, D)))
        if qkv_bias:
            t.append((p + "self_attn.q_proj.bias", vec(H * hd, 0.0, 0.3)))
            t.append((p + "self_attn.k_proj.bias", vec(KV * hd, 0.0, 0.3)))
            t.append((p + "self_attn.v_proj.bias", vec(KV * hd, 0.0, 0.3)))
        if fam == "qwen3":
            t.append((p + "self_attn.q_norm.weight", vec(hd, 1.0, 0.3)))
            t.append((p + "self_attn.k_norm.weight", vec(hd, 1.0, 0.3)))
        t.append((p + "self_attn.o_proj.weight", mat(D, H * hd)))
        if o_bias:
            t.append((p + "self_attn.o_proj.bias", vec(D)))
        t.append((p + "post_attention_layernorm.weight", vec(D, 1.0, 0.1)))
        t.append((p + "mlp.gate_proj.weight", mat(F, D)))
        t.append((p + "mlp.up_proj.weight", mat(F, D)))
        t.append((p + "mlp.down_proj.weight", mat(D, F)))
        if mlp_bias:
            t.append((p + "mlp.gate_proj.bias", vec(F)))
            t.append((p + "mlp.up_proj.bias", vec(F)))
            t.append((p + "mlp.down_proj.bias", vec(D)))
    t.append(("model.norm.weight", vec(D, 1.0, 0.1)))
    if not m["tied"]:
        t.append(("lm_head.weight", mat(V, D)))
    return t


def make(m):
    d = m["dir"]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(make_config(m), f, indent=2, sort_keys=True)
    if "generation_config" in m:
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump(m["generation_config"], f, indent=2)
    tensors = make_weights(m)
    dtype = m.get("dtype", "F32")
    shards = int(m.get("shards", 1))
    if shards <= 1:
        write_safetensors(os.path.join(d, "model.safetensors"), tensors, dtype)
        return
    per = math.ceil(len(tensors) / shards)
    weight_map = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = tensors[s * per:(s + 1) * per]
        write_safetensors(os.path.join(d, name), part, dtype)
        for n, _ in part:
            weight_map[n] = name
    size = sum(a.size for _, a in tensors) * (4 if dtype == "F32" else 2)
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": size}, "weight_map": weight_map}, f, indent=2)


def main():
    req = json.load(sys.stdin)
    if "make" in req:
        make(req["make"])
    out = {}
    if "model" in req:
        m = Model(req["model"])
        out["logprobs"] = []
        ours = np.fromfile(req["ours"], dtype="<f4") if "ours" in req else None
        offset, worst, worst_lp = 0, 0.0, 0.0
        for ids in req.get("sequences", []):
            z = m.logits(ids)
            lp = m.log_softmax(z)
            out["logprobs"].append([float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)])
            if ours is not None:
                mine = ours[offset:offset + z.size].reshape(z.shape)
                offset += z.size
                worst = max(worst, float(np.max(np.abs(mine - z))))
                worst_lp = max(worst_lp, float(np.max(np.abs(m.log_softmax(mine.astype(np.float64)) - lp))))
        if ours is not None:
            if offset != ours.size:
                raise SystemExit(f"ours holds {ours.size} logits, the sequences need {offset}")
            out["max_abs_logit_diff"] = worst
            out["max_abs_logprob_diff"] = worst_lp
        g = req.get("greedy")
        if g:
            ids, new, margin = list(g["prompt"]), [], float("inf")
            for _ in range(int(g["new_tokens"])):
                z = m.logits(ids)[-1]
                top = np.sort(z)[-2:]
                margin = min(margin, float(top[1] - top[0]))
                nxt = int(np.argmax(z))
                new.append(nxt)
                ids.append(nxt)
            out["greedy"] = new
            out["greedy_margin"] = margin
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
