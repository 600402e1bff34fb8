#!/usr/bin/env python3
"""Independent NumPy reference for a Hugging Face Llama directory (as transformers'
LlamaForCausalLM computes it), reading config.json and model.safetensors directly.

Written from transformers' modeling_llama equations, not from ebft-dist: RMSNorm
(x / sqrt(mean(x^2) + eps) * w), RoPE in Hugging Face's rotate-half form
(q*cos + rotate_half(q)*sin, cos/sin of cat(freqs, freqs)), grouped-query causal attention,
SwiGLU MLP, lm_head or the tied embedding. Float64 throughout. The safetensors file is parsed
here (8-byte header length, JSON header, raw little-endian data; F32, F16, BF16).

Input (JSON on stdin):
  {"model": DIR, "sequences": [[ids...], ...], "ours": PATH (optional)}
  "ours": a file of little-endian float32 logits, all sequences' rows concatenated
  ([len(ids), vocab] each), to compare against the reference.
Output:
  {"logprobs": [[logp of ids[i+1] given ids[:i+1]], ...], "max_abs_logit_diff": float or null}
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "F32":
            x = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif t["dtype"] == "F16":
            x = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif t["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            x = u.view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {t['dtype']}")
        out[name] = x.reshape(t["shape"])
    return out


class HFLlama:
    def __init__(self, d):
        cfg = json.load(open(d + "/config.json"))
        assert cfg.get("model_type", "llama") == "llama", cfg.get("model_type")
        assert cfg.get("rope_scaling") is None, "rope_scaling is not implemented in this reference"
        self.w = read_safetensors(d + "/model.safetensors")
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads", self.n_heads)
        self.hd = cfg.get("head_dim") or cfg["hidden_size"] // self.n_heads
        self.eps = cfg["rms_norm_eps"]
        self.theta = cfg.get("rope_theta", 10000.0)
        self.emb = self.w["model.embed_tokens.weight"]
        if cfg.get("tie_word_embeddings", False):
            assert "lm_head.weight" not in self.w
            self.head = self.emb
        else:
            self.head = self.w["lm_head.weight"]

    def rms(self, x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * g

    def rope(self, x, pos):
        # transformers: inv_freq = 1 / theta^(arange(0, hd, 2) / hd); emb = cat(freqs, freqs)
        inv = 1.0 / self.theta ** (np.arange(0, self.hd, 2, dtype=np.float64) / self.hd)
        freqs = pos[:, None] * inv[None, :]
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
        half = self.hd // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rot * sin

    def logits(self, ids):
        S = len(ids)
        pos = np.arange(S, dtype=np.float64)
        x = self.emb[np.array(ids)]
        mask = np.triu(np.full((S, S), -np.inf), k=1)
        group = self.n_heads // self.n_kv
        for l in range(self.n_layers):
            p = f"model.layers.{l}."
            h = self.rms(x, self.w[p + "input_layernorm.weight"])
            q = (h @ self.w[p + "self_attn.q_proj.weight"].T).reshape(S, self.n_heads, self.hd)
            k = (h @ self.w[p + "self_attn.k_proj.weight"].T).reshape(S, self.n_kv, self.hd)
            v = (h @ self.w[p + "self_attn.v_proj.weight"].T).reshape(S, self.n_kv, self.hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            att = np.empty((S, self.n_heads, self.hd))
            for hh in range(self.n_heads):
                kv = hh // group
                sc = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(self.hd) + mask
                sc = np.exp(sc - sc.max(axis=-1, keepdims=True))
                sc /= sc.sum(axis=-1, keepdims=True)
                att[:, hh, :] = sc @ v[:, kv, :]
            x = x + att.reshape(S, self.n_heads * self.hd) @ self.w[p + "self_attn.o_proj.weight"].T
            h = self.rms(x, self.w[p + "post_attention_layernorm.weight"])
            gate = h @ self.w[p + "mlp.gate_proj.weight"].T
            up = h @ self.w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ self.w[p + "mlp.down_proj.weight"].T
        x = self.rms(x, self.w["model.norm.weight"])
        return x @ self.head.T


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def main():
    req = json.load(sys.stdin)
    m = HFLlama(req["model"])
    out = {"logprobs": [], "max_abs_logit_diff": None}
    ours = None
    if req.get("ours"):
        ours = np.fromfile(req["ours"], dtype="<f4").astype(np.float64)
    worst, at = 0.0, 0
    for ids in req["sequences"]:
        z = m.logits(ids)
        lp = log_softmax(z)
        out["logprobs"].append([float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)])
        if ours is not None:
            mine = ours[at:at + z.size].reshape(z.shape)
            at += z.size
            worst = max(worst, float(np.abs(mine - z).max()))
    if ours is not None:
        assert at == ours.size, f"ours has {ours.size} logits, the sequences {at}"
        out["max_abs_logit_diff"] = worst
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
