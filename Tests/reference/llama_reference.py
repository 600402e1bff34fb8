#!/usr/bin/env python3
"""Independent NumPy reference for a Llama-architecture GGUF model (SmolLM2-135M).

Reads the weights with the `gguf` package, runs a plain float64 forward pass (RMSNorm,
RoPE on adjacent pairs as GGUF stores Q/K, grouped-query causal attention, SwiGLU, tied
output head) and prints JSON on stdout.

Input (JSON on stdin):
  {"model": PATH, "sequences": [[ids...], ...], "greedy": {"prompt": [ids...], "new_tokens": N}}
Output:
  {"logprobs": [[logp of ids[i+1] given ids[:i+1] for i in 0..len-2], ...],
   "greedy": [ids of the N greedily generated tokens]}
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class Llama:
    def __init__(self, path):
        r = GGUFReader(path)
        f = {k: v.contents() for k, v in r.fields.items()
             if not k.startswith("tokenizer.")}
        arch = f["general.architecture"]
        self.n_layers = int(f[f"{arch}.block_count"])
        self.dim = int(f[f"{arch}.embedding_length"])
        self.n_heads = int(f[f"{arch}.attention.head_count"])
        self.n_kv = int(f[f"{arch}.attention.head_count_kv"])
        self.eps = float(f[f"{arch}.attention.layer_norm_rms_epsilon"])
        self.base = float(f[f"{arch}.rope.freq_base"])
        self.hd = self.dim // self.n_heads
        self.w = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type).astype(np.float64)
            # numpy shape is GGUF's dims reversed: [out, in] for matrices
            self.w[t.name] = a.reshape([int(d) for d in reversed(t.shape.tolist())])
        self.emb = self.w["token_embd.weight"]
        self.head = self.w.get("output.weight", self.emb)

    def rms(self, x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * g

    def rope(self, x, pos):
        # x: [S, heads, hd]; rotate adjacent pairs (2i, 2i+1) by pos * base^(-2i/hd)
        i = np.arange(self.hd // 2)
        ang = pos[:, None] * self.base ** (-2.0 * i / self.hd)       # [S, hd/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    def empty_cache(self):
        return [(np.zeros((0, self.n_kv, self.hd)), np.zeros((0, self.n_kv, self.hd)))
                for _ in range(self.n_layers)]

    def logits(self, ids, cache=None, last_only=False):
        """Logits of `ids`, which follow the len(cache) tokens already in `cache` (a per-layer
        list of (K, V) after RoPE, extended in place) at positions len(cache)...; `last_only`
        projects only the last position onto the vocabulary (greedy decoding needs no more)."""
        S = len(ids)
        if cache is None:
            cache = self.empty_cache()
        past = cache[0][0].shape[0]
        pos = np.arange(past, past + S, dtype=np.float64)
        x = self.emb[np.array(ids)]
        # query i (position past + i) sees keys 0 ..< past + i + 1
        mask = np.triu(np.full((S, past + S), -np.inf), k=past + 1)
        group = self.n_heads // self.n_kv
        for l in range(self.n_layers):
            p = f"blk.{l}."
            h = self.rms(x, self.w[p + "attn_norm.weight"])
            q = (h @ self.w[p + "attn_q.weight"].T).reshape(S, self.n_heads, self.hd)
            k = (h @ self.w[p + "attn_k.weight"].T).reshape(S, self.n_kv, self.hd)
            v = (h @ self.w[p + "attn_v.weight"].T).reshape(S, self.n_kv, self.hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            k = np.concatenate([cache[l][0], k])
            v = np.concatenate([cache[l][1], v])
            cache[l] = (k, v)
            att = np.empty((S, self.n_heads, self.hd))
            for hh in range(self.n_heads):
                kv = hh // group
                sc = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(self.hd) + mask
                sc = np.exp(sc - sc.max(axis=-1, keepdims=True))
                sc /= sc.sum(axis=-1, keepdims=True)
                att[:, hh, :] = sc @ v[:, kv, :]
            x = x + att.reshape(S, self.dim) @ self.w[p + "attn_output.weight"].T
            h = self.rms(x, self.w[p + "ffn_norm.weight"])
            gate = h @ self.w[p + "ffn_gate.weight"].T
            up = h @ self.w[p + "ffn_up.weight"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ self.w[p + "ffn_down.weight"].T
        x = self.rms(x[-1:] if last_only else x, self.w["output_norm.weight"])
        return x @ self.head.T

    @staticmethod
    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def main():
    req = json.load(sys.stdin)
    m = Llama(req["model"])
    out = {"logprobs": []}
    for ids in req.get("sequences", []):
        lp = m.log_softmax(m.logits(ids))
        out["logprobs"].append([float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)])
    g = req.get("greedy")
    if g:
        # with a KV cache: the prompt once, then one token per step
        cache = m.empty_cache()
        step = list(g["prompt"])
        new = []
        for _ in range(int(g["new_tokens"])):
            nxt = int(np.argmax(m.logits(step, cache, last_only=True)[-1]))
            new.append(nxt)
            step = [nxt]
        out["greedy"] = new
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
