#!/usr/bin/env bash
# Issue 11, deliverable 4: the first sweep of the objective check. EBFT on SmolLM2 (preset
# `objective`: small with gamma = 0, 8 held-out chunks) for every learning rate x chunks-per-step, with held-out raw-feature
# objective and its standard error (eval-seeds) every EVAL_EVERY steps. One process per run
# (the fastest layout on 2 cores). Results: runs/objective/<name>/metrics.jsonl.
#
#   scripts/objective-sweep.sh                 # the full grid (hours on 2 cores)
#   LRS="1e-5" CHUNKS="8" scripts/objective-sweep.sh     # one cell
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/ebft-dist}
LRS=${LRS:-"1e-6 1e-5 1e-4"}
CHUNKS=${CHUNKS:-"2 8"}
STEPS=${STEPS:-40}
EVAL_EVERY=${EVAL_EVERY:-10}
OUT=${OUT:-runs/objective}
EXTRA=${EXTRA:-}
SEEDS=${SEEDS:-6}
for lr in $LRS; do
  for c in $CHUNKS; do
    name="lr$lr-c$c"
    echo "== $name ($(date +%T))"
    # shellcheck disable=SC2086
    scripts/launch.sh 1 "$BIN" train --preset objective --quiet --steps "$STEPS" \
      --set learning-rate="$lr" --set chunks-per-step="$c" \
      --set eval-every="$EVAL_EVERY" --set eval-seeds="$SEEDS" \
      --run-dir "$OUT/$name" $EXTRA
  done
done
