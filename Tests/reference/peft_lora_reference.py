#!/usr/bin/env python3
"""Independent NumPy application of a PEFT LoRA adapter (what `peft` does when it loads
adapter_model.safetensors + adapter_config.json onto a causal LM), written from PEFT's
documented LoRA layer, not from our Swift code:

  for every module named in target_modules (q_proj, ..., down_proj) of every layer,
      W_merged = W + scaling * (lora_B @ lora_A),  scaling = lora_alpha / r
  (peft.tuners.lora.layer.Linear with fan_in_fan_out false, bias "none", no rsLoRA / DoRA),
  tensor names base_model.model.<module path>.lora_A.weight [r, in] and .lora_B.weight [out, r]
  (PeftModel's prefix "base_model.model." before the transformers module path).

The base model is a Hugging Face directory run by hf_family_reference.py (float64 forward).

Input (JSON on stdin):
  {"model": BASE_DIR, "adapter": ADAPTER_DIR, "sequences": [[ids...], ...]}
Output:
  {"logprobs": [[logp of ids[i+1] given ids[:i+1]], ...], "adapted": [module names],
   "scaling": lora_alpha / r}
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_family_reference as hf  # noqa: E402

PREFIX = "base_model.model."


def apply_adapter(model, adapter_dir):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    assert cfg["peft_type"] == "LORA", cfg["peft_type"]
    assert cfg.get("task_type") == "CAUSAL_LM", cfg.get("task_type")
    assert cfg.get("fan_in_fan_out", False) is False
    assert cfg.get("bias", "none") == "none"
    assert not cfg.get("use_rslora", False) and not cfg.get("use_dora", False)
    assert float(cfg.get("lora_dropout", 0.0)) == 0.0
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    scaling = alpha / r
    targets = set(cfg["target_modules"])
    tensors = hf.read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    adapted = []
    for name, a in sorted(tensors.items()):
        if not name.endswith(".lora_A.weight"):
            assert name.endswith(".lora_B.weight"), name
            continue
        assert name.startswith(PREFIX), name
        module = name[len(PREFIX):-len(".lora_A.weight")]
        assert module.split(".")[-1] in targets, module
        b = tensors[PREFIX + module + ".lora_B.weight"]
        w = model.w[module + ".weight"]
        assert a.shape == (r, w.shape[1]) and b.shape == (w.shape[0], r), (module, a.shape, b.shape, w.shape)
        model.w[module + ".weight"] = w + scaling * (b @ a)
        adapted.append(module)
    n_b = sum(1 for n in tensors if n.endswith(".lora_B.weight"))
    assert n_b == len(adapted), "every lora_B has its lora_A"
    if model.c.tied:
        model.head = model.w["model.embed_tokens.weight"]
    return adapted, scaling


def main():
    req = json.load(sys.stdin)
    m = hf.Model(req["model"])
    adapted, scaling = apply_adapter(m, req["adapter"])
    out = {"logprobs": [], "adapted": adapted, "scaling": scaling}
    for ids in req.get("sequences", []):
        lp = m.log_softmax(m.logits(ids))
        out["logprobs"].append([float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
