#!/usr/bin/env bash
# Issue 16, item 1: EBFT ablations on the paper's axes, three seeds per cell, sized for a
# 2-core machine (SmolLM2-135M-Instruct, stdlib code, preset `small` geometry P = 128,
# c = G = 8, n = 4, CHUNKS chunks per step, STEPS steps, held-out evaluation every EVAL_EVERY
# steps on EVAL_CHUNKS chunks × EVAL_SEEDS sampling seeds).
#
#   scripts/ablations.sh lr        # 1. learning rates LRS on the base cell, seed 1
#   scripts/ablations.sh cells     # 2. every cell × SEEDS at LR (default: best of step 1)
#   scripts/ablations.sh report    # 3. one `ebft-dist report` per axis into REPORT_DIR
#   scripts/ablations.sh all       # 1 + 2 + 3
#
# Cells (one change from the base each; the base is the trainer's default: γ = ce-coef 0.03,
# whitening on, last-token pooling, diversity β = 0.5, stride s = 8 → K = 15 blocks):
#   gamma: ce-coef 0, 0.03 (base), 0.1        whitening: on (base), off
#   pooling: last-token (base), mean          diversity: β 0, 0.5 (base), 1
#   blocks: stride 4 (K = 29), 8 (base, K = 15), 16 (K = 8) — blocks per sequence per step
# Runs go to OUT/lr-<lr>/ (step 1) and OUT/cells-lr<lr>/<cell>-s<seed>/ (step 2); a run whose
# directory holds DONE is skipped, so an interrupted sweep continues where it stopped (an
# unfinished run restarts).
# The learning rate of step 2 is LR if set, else chosen from step 1 on the held-out
# feature-matching loss at the last evaluation, i.e. `eval_feature_matching_raw_pass1`
# (= ‖φ_gt‖² − L_CFM on raw features, mean over EVAL_SEEDS sampling seeds; ‖φ_gt‖² is the same
# for every run, so higher is a lower L_CFM): the largest learning rate within one standard
# error (the best run's `_se`) of the best. Rates tied within the noise are not distinguished by
# validation, and the ablations need the one that moves the model most to separate anything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.build/release/ebft-dist}"
OUT="${OUT:-runs/ablations}"
REPORT_DIR="${REPORT_DIR:-docs/results/ablations}"
LRS="${LRS:-3e-6 1e-5 3e-5}"
SEEDS="${SEEDS:-1 2 3}"
STEPS="${STEPS:-10}"
CHUNKS="${CHUNKS:-4}"
EVAL_EVERY="${EVAL_EVERY:-5}"
EVAL_CHUNKS="${EVAL_CHUNKS:-8}"
EVAL_SEEDS="${EVAL_SEEDS:-2}"
NP="${NP:-1}"
[ -x "$BIN" ] || { echo "ablations: $BIN not found (swift build -c release)" >&2; exit 1; }
mkdir -p "$OUT"

common=(--preset small --quiet --steps "$STEPS" --stall-timeout 7200
        --set chunks-per-step="$CHUNKS" --set eval-every="$EVAL_EVERY" --set eval-chunks="$EVAL_CHUNKS"
        --set eval-seeds="$EVAL_SEEDS" --set eval-down-every=0 --set eval-down-start=false --set save-every=0)

# cell name → its --set overrides (empty: the base)
cells=(base "" gamma0 "ce-coef=0" gamma0.1 "ce-coef=0.1" whitening-off "whitening=false"
       pooling-mean "pooling=mean" diversity0 "diversity-coef=0" diversity1 "diversity-coef=1"
       stride4 "stride=4" stride16 "stride=16")

SWEEP=ablations  # cell names carry no learning rate: with LR changed, clear REPORT_DIR/runs first
extra=()
# shellcheck source=scripts/sweep-run.sh
. scripts/sweep-run.sh

# ‖φ_gt‖² − L_CFM (raw features) at a run's last evaluation (higher is better).
final_fm() {
  python3 - "$1/metrics.jsonl" <<'EOF'
import json, sys
last = None
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("kind") == "eval" and "eval_feature_matching_raw_pass1" in r:
        last = (r["eval_feature_matching_raw_pass1"], r.get("eval_feature_matching_raw_pass1_se", 0.0))
print("nan 0" if last is None else "%r %r" % last)
EOF
}

best_lr() {
  local rows=""
  for lr in $LRS; do
    local d="$REPORT_DIR/runs/lr-$lr"
    [ -f "$d/DONE" ] || { echo "ablations: $d is not finished; run 'scripts/ablations.sh lr' first or set LR" >&2; exit 1; }
    local v; v=$(final_fm "$d")
    echo "   lr $lr: final held-out eval_feature_matching_raw_pass1 (value, se) $v" >&2
    rows+="$lr $v"$'\n'
  done
  # the largest rate within one SE of the best value
  printf '%s' "$rows" | python3 -c '
import sys
rows = [(float(lr), lr, float(v), float(se)) for lr, v, se in (l.split() for l in sys.stdin if l.strip())]
best = max(rows, key=lambda r: r[2])
tied = [r for r in rows if r[2] >= best[2] - best[3]]
print(max(tied)[1])'
}

step_lr() { for lr in $LRS; do run "$OUT/lr-$lr" --set learning-rate="$lr" --set seed=1; done; }

step_cells() {
  local lr="${LR:-$(best_lr)}"
  echo "== cells at learning rate $lr"
  echo "$lr" > "$OUT/learning-rate"
  local cellsdir="$OUT/cells-lr$lr"
  for seed in $SEEDS; do
    for ((i = 0; i < ${#cells[@]}; i += 2)); do
      local name="${cells[i]}" sets=()
      [ -n "${cells[i+1]}" ] && sets=(--set "${cells[i+1]}")
      run "$cellsdir/$name-s$seed" --set learning-rate="$lr" --set seed="$seed" "${sets[@]}"
    done
  done
}

# From the finished runs kept in REPORT_DIR/runs (a fresh clone can redo the report without OUT).
step_report() {
  axis() {  # axis NAME CELL...
    local name="$1"; shift
    local dirs=() labels=()
    for c in "$@"; do
      for seed in $SEEDS; do
        local d="$REPORT_DIR/runs/$c-s$seed"
        [ -d "$d" ] || continue
        dirs+=("$d"); labels+=(--label "$d=$c")
      done
    done
    [ ${#dirs[@]} -gt 0 ] || { echo "== $name: no finished runs"; return; }
    "$BIN" report "${dirs[@]}" "${labels[@]}" --out "$REPORT_DIR/$name" --table-name README.md
  }
  axis gamma gamma0 base gamma0.1
  axis whitening base whitening-off
  axis pooling base pooling-mean
  axis diversity diversity0 base diversity1
  axis blocks stride4 base stride16
  local lrdirs=() lrlabels=()
  for lr in $LRS; do
    local d="$REPORT_DIR/runs/lr-$lr"
    [ -d "$d" ] && { lrdirs+=("$d"); lrlabels+=(--label "$d=lr $lr"); }
  done
  [ ${#lrdirs[@]} -gt 0 ] && "$BIN" report "${lrdirs[@]}" "${lrlabels[@]}" --out "$REPORT_DIR/learning-rate" --table-name README.md
  scripts/ablation_differences.py "$REPORT_DIR/runs" "$SEEDS" > "$REPORT_DIR/differences.md"
  return 0
}

case "${1:-all}" in
  lr) step_lr ;;
  cells) step_cells ;;
  report) step_report ;;
  all) step_lr; step_cells; step_report ;;
  *) echo "usage: scripts/ablations.sh [lr|cells|report|all]" >&2; exit 2 ;;
esac
