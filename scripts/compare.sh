#!/usr/bin/env bash
# The base model vs SFT vs RLVR vs EBFT comparison of docs/results/equal-compute (issue 16, item 2):
# every method on equal compute — the same number of training model FLOPs (`flop-budget`,
# counted by the trainer as `StepCost` does: sampling, features and forward + backward; not the
# evaluations) — each at the learning rate its own validation prefers, SEEDS seeds each.
#
#   scripts/compare.sh lr       # 1. learning rates LRS × methods × TASKS, seed 1
#   scripts/compare.sh runs     # 2. base, sft, rlvr, ebft × TASKS × SEEDS at the chosen rates
#   scripts/compare.sh report   # 3. one `ebft-dist report` over every finished run of step 2,
#                               #    and claims.md: each claim of the paper with its verdict
#   scripts/compare.sh all      # 1 + 2 + 3
#
# Sized for a 2-core machine: NP ranks colocated, SmolLM2-135M-Instruct, preset-small geometry
# (P = 128) with CHUNKS chunks per step. The budget of a task is STEPS EBFT steps of that task
# (an EBFT step costs the same every time; its `flops` are read from the task's first finished
# EBFT run); SFT then runs ⌈budget / its step⌉ steps, RLVR until its counted FLOPs reach the
# budget. Evaluations only at the start and the end: validation CE and the held-out
# feature-matching loss on EVAL_CHUNKS chunks × EVAL_SEEDS sampling seeds, and downstream
#   qa-code, code → HumanEval (164 problems, eval-down-samples 4: pass@1, pass@4)
#   translation   → corpus BLEU and chrF on 300 de→en test pairs.
# RLVR's verifier questions are the same on code and qa-code (stdlib doctests); its runs differ
# in the validation chunks and the budget.
#
# Learning rates (step 1): each method's rate is the largest of LRS within one standard error
# of the best at the final evaluation of its own validation objective — EBFT: the held-out
# feature-matching loss on raw features (`eval_feature_matching_raw_pass1`, higher is better,
# its SE over EVAL_SEEDS sampling seeds); SFT and RLVR: validation CE (lower is better;
# teacher-forced, no sampling, so no SE: the best). Chosen per task. The step-1 runs skip the
# downstream evaluation, which is not part of the choice.
# A run whose directory holds DONE is skipped, so an interrupted comparison continues where it
# stopped (an unfinished run restarts); finished runs are also copied to REPORT_DIR/runs/ as they
# end, and a run found there is not redone, so a fresh clone continues from the committed runs.
# Checkpoints are deleted unless KEEP_CHECKPOINTS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-${EBFT_DIST_BIN:-.build/release/ebft-dist}}"
OUT="${OUT:-runs/compare}"
REPORT_DIR="${REPORT_DIR:-docs/results/equal-compute}"
TASKS="${TASKS:-qa-code code translation}"
METHODS="sft rlvr ebft"
LRS="${LRS:-1e-5 3e-5 1e-4}"
SEEDS="${SEEDS:-1 2 3}"
STEPS="${STEPS:-20}"
CHUNKS="${CHUNKS:-4}"
EVAL_CHUNKS="${EVAL_CHUNKS:-16}"
EVAL_SEEDS="${EVAL_SEEDS:-2}"
NP="${NP:-2}"
# EXTRA: more train arguments for every run, last (e.g. a smoke test on a random model:
# EXTRA="--set model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1 --set eval-down-limit=4").
read -r -a extra <<< "${EXTRA:-}"
[ -x "$BIN" ] || { echo "compare: $BIN not found (swift build -c release)" >&2; exit 1; }
mkdir -p "$OUT"

# Evaluations at step 0 and where the run ends (budget or steps), never in between.
common=(--preset small --colocate --quiet --stall-timeout 7200
        --set chunks-per-step="$CHUNKS" --set eval-every=1000000 --set eval-chunks="$EVAL_CHUNKS"
        --set eval-seeds="$EVAL_SEEDS" --set eval-down-every=1000000 --set eval-down-start=false --set save-every=0)
task_args() {
  case "$1" in
    qa-code) echo --set task=qa-code --set eval-down-max-new-tokens=128 --set rlvr-questions=4 --set rlvr-max-new-tokens=96 ;;
    code) echo --set task=code --set eval-down-max-new-tokens=128 --set rlvr-questions=4 --set rlvr-max-new-tokens=96 ;;
    translation) echo --set task=translation --set context-length=4 --set generate-length=4 --set stride=4 \
                      --set pooling=mean --set eval-down-limit=300 --set rlvr-questions=8 --set rlvr-max-new-tokens=48 ;;
    *) echo "compare: unknown task $1" >&2; exit 1 ;;
  esac
}

SWEEP=compare
# shellcheck source=scripts/sweep-run.sh
. scripts/sweep-run.sh

# field FILE KEY KIND: KEY (and KEY_se, 0 if absent) of the last record of KIND that has it.
field() {
  python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
path, key, kind = sys.argv[1:]
last = None
for line in open(path):
    r = json.loads(line)
    if r.get("kind") == kind and r.get(key) is not None:
        last = (r[key], r.get(key + "_se") or 0.0)
print("nan 0" if last is None else "%r %r" % last)
EOF
}

# The budget of TASK: STEPS steps of its EBFT step (from any finished EBFT run of the task).
budget() {
  local f=""
  for d in "$REPORT_DIR"/runs/lr-"$1"-ebft-* "$REPORT_DIR"/runs/"$1"-ebft-s*; do
    [ -f "$d/DONE" ] || continue
    f=$(field "$d/metrics.jsonl" flops train | cut -d' ' -f1); break
  done
  [ -n "$f" ] && [ "$f" != nan ] || { echo "compare: no finished EBFT run of $1 to size the budget" >&2; exit 1; }
  python3 -c "print(repr($STEPS * $f))"
}

method_args() {  # method_args TASK METHOD: the budget (EBFT: STEPS steps, the same FLOPs)
  case "$2" in
    ebft) echo --steps "$STEPS" --set method=ebft ;;
    sft) echo --steps 1000000 --set method=sft --set flop-budget="$(budget "$1")" ;;
    rlvr) echo --steps 0 --set method=rlvr --set flop-budget="$(budget "$1")" ;;
  esac
}

step_lr() {
  for task in $TASKS; do
    # EBFT first: its runs size the budget of the others.
    for m in ebft sft rlvr; do
      for lr in $LRS; do
        # shellcheck disable=SC2046
        run "$OUT/lr-$task-$m-$lr" $(task_args "$task") $(method_args "$task" "$m") \
          --set learning-rate="$lr" --set seed=1 --set eval-down-every=0
      done
    done
  done
}

# The chosen rate of TASK and METHOD (see the header), from the finished runs of step 1.
best_lr() {
  local rows="" key=eval_ce sign=-1
  [ "$2" = ebft ] && { key=eval_feature_matching_raw_pass1; sign=1; }
  for lr in $LRS; do
    local d="$REPORT_DIR/runs/lr-$1-$2-$lr"
    [ -f "$d/DONE" ] || { echo "compare: $d is not finished; run 'scripts/compare.sh lr' first" >&2; exit 1; }
    rows+="$lr $(field "$d/metrics.jsonl" "$key" eval)"$'\n'
  done
  printf '%s' "$rows" | python3 -c '
import sys
sign = float(sys.argv[1])
rows = [(float(lr), lr, sign * float(v), float(se)) for lr, v, se in (l.split() for l in sys.stdin if l.strip())]
best = max(rows, key=lambda r: r[2])
print(max(r for r in rows if r[2] >= best[2] - best[3])[1])' "$sign"
}

step_runs() {
  for task in $TASKS; do
    local rates=""
    for m in $METHODS; do rates+="$m=$(best_lr "$task" "$m") "; done
    echo "== $task: learning rates $rates"
    echo "$rates" > "$REPORT_DIR/learning-rates-$task"
    for seed in $SEEDS; do
      # shellcheck disable=SC2046
      run "$OUT/$task-base-s$seed" $(task_args "$task") --set seed="$seed" --eval-only
      for m in ebft sft rlvr; do
        local lr; lr=$(echo "$rates" | tr ' ' '\n' | sed -n "s/^$m=//p")
        # shellcheck disable=SC2046
        run "$OUT/$task-$m-s$seed" $(task_args "$task") $(method_args "$task" "$m") \
          --set learning-rate="$lr" --set seed="$seed"
      done
    done
  done
}

# From the finished runs kept in REPORT_DIR/runs (a fresh clone can redo the report without OUT).
step_report() {
  local dirs=() labels=()
  for task in $TASKS; do
    for m in base sft rlvr ebft; do
      for seed in $SEEDS; do
        local d="$REPORT_DIR/runs/$task-$m-s$seed"
        [ -f "$d/DONE" ] || continue
        dirs+=("$d"); labels+=(--label "$d=$m")
      done
    done
  done
  [ ${#dirs[@]} -gt 0 ] || { echo "compare: no finished comparison run" >&2; return 0; }
  "$BIN" report "${dirs[@]}" "${labels[@]}" --out "$REPORT_DIR" --table-name report.md
  scripts/claims.py "$REPORT_DIR/runs" "$TASKS" "$SEEDS" > "$REPORT_DIR/claims.md"
  echo "wrote $REPORT_DIR/claims.md"
}

case "${1:-all}" in
  lr) step_lr ;;
  runs) step_runs ;;
  report) step_report ;;
  all) step_lr; step_runs; step_report ;;
  *) echo "usage: scripts/compare.sh [lr|runs|report|all]" >&2; exit 2 ;;
esac
