#!/usr/bin/env bash
# Token-cache scale check (issue 13): generates a JSONL file of SIZE bytes (default 2.1e9) and
# one of 10 MB, both cut from the Python stdlib sources, trains 4 steps of a tiny random model
# from each (np 1) twice — the first run tokenises into a fresh cache, the second reuses it —
# and prints the tokenisation throughput, the cache's bytes per token and the peak RSS of each
# run. Everything is written under a temporary directory, deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-2.1e9}
BIN=${EBFT_DIST_BIN:-.build/release/ebft-dist}
T=$(mktemp -d /tmp/ebft-data-scale.XXXXXX)
trap 'rm -rf "$T"' EXIT
gen() {
  python3 - "$1" "$2" <<'PY'
import json, os, random, sys
out, size = sys.argv[1], int(float(sys.argv[2]))
src = []
for r, ds, fs in os.walk('/usr/lib/python3.11'):
    ds[:] = [d for d in ds if d not in ('test', 'tests', 'idle_test', 'site-packages', 'dist-packages', '__pycache__')]
    src += [open(os.path.join(r, f), encoding='utf-8', errors='replace').read() for f in fs if f.endswith('.py')]
text, rng, n = '\n'.join(src), random.Random(1), 0
with open(out, 'w', encoding='utf-8') as f:
    while n < size:
        a = rng.randrange(len(text) - 7000)
        line = json.dumps({"text": text[a:a + rng.randint(200, 6000)]}) + "\n"
        f.write(line); n += len(line.encode())
PY
}
run() {  # DATA NAME
  /usr/bin/time -f "$2: peak RSS %M KB, wall %e s" "$BIN" train --preset small --quiet --steps 4 \
    --set model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1 --set chunk-length=128 \
    --set chunks-per-step=4 --set samples-per-chunk=4 --set eval-every=4 --set eval-chunks=4 \
    --set data-cache="$T/cache" --data "$1" --run-dir "$T/run-$2" 2>&1 | grep -E "tokenised|reused|peak RSS|error"
}
gen "$T/small.jsonl" 10e6
gen "$T/big.jsonl" "$SIZE"
ls -l "$T"/*.jsonl
for d in small big; do run "$T/$d.jsonl" "$d-build"; run "$T/$d.jsonl" "$d-cached"; done
for f in "$T"/cache/*.tokens; do
  python3 - "$f" <<'PY'
import json, os, struct, sys
p = sys.argv[1]
with open(p, 'rb') as f:
    head = f.read(16); h = struct.unpack('<Q', head[8:])[0]; m = json.loads(f.read(h - 16))
tokens = (m['trainChunks'] + m['validationChunks']) * m['chunkLength']
print(f"{os.path.basename(p)}: {os.path.getsize(p)} bytes, {tokens} packed tokens, "
      f"{os.path.getsize(p) / tokens:.3f} bytes/token, {m['tokenWidth']} bytes per token id")
PY
done
