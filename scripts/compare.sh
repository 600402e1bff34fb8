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
#   scripts/compare.sh rates    # the rate each method would get now, and the next one step 1 tries
#
# Sized for a 2-core machine: NP ranks colocated, SmolLM2-135M-Instruct, preset-small geometry
# (P = 128) with CHUNKS chunks per step. The budget of a task is STEPS EBFT steps of that task
# (an EBFT step costs the same every time; its `flops` are read from the task's first finished
# EBFT run); SFT then runs ⌈budget / its step⌉ steps, RLVR until its counted FLOPs reach the
# budget. Evaluations only at the start and the end: validation CE and the held-out
# feature-matching loss on EVAL_CHUNKS chunks × EVAL_SEEDS sampling seeds, and downstream
#   qa-code, code → HumanEval (164 problems, eval-down-samples 4: pass@1, pass@4)
#   translation   → corpus BLEU and chrF on 300 de→en test pairs.
# RLVR's verifier questions are the same on code and qa-code (stdlib doctests): with equal budgets
# its code row is its qa-code run's final weights evaluated on code's data (`twin` below), not a
# second, identical training run.
#
# Learning rates (step 1): each method's rate is the largest of the rates tried within one
# standard error of the best on its own objective, on data it was not trained on — EBFT: the final
# held-out feature-matching loss on raw features (`eval_feature_matching_raw_pass1`, higher is
# better, its SE over EVAL_SEEDS sampling seeds); SFT: the final validation CE (teacher-forced,
# no sampling, so no SE); RLVR: its mean reward over its last RLVR_TAIL (10) steps, each step's
# questions drawn afresh from a permutation of the training questions, so not yet trained on
# within the first epoch (SE over those steps). RLVR is not chosen by validation CE, which its
# updates do not aim to lower: that would favour the rate that moves RLVR least. Rates tried: LRS,
# then while the best is at the top (bottom) of the tried rates the next rate of LADDER above
# (below) it. Chosen per task. The step-1 runs skip the downstream evaluation, which is not part
# of the choice. `scripts/compare.sh rates` prints the choice so far.
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

# The rates tried for a method: LRS first; then, while the best of the tried rates is the largest
# (smallest) of them, the next larger (smaller) rate of LADDER, so that no chosen rate is the best
# only because the grid stopped there. A run that diverges (the trainer's exit 4) scores worst;
# the end of its log is kept as FAILED in REPORT_DIR/runs/<name>, and it is not run again.
LADDER="${LADDER:-1e-6 3e-6 1e-5 3e-5 1e-4 3e-4 1e-3}"

lr_run() {  # lr_run TASK METHOD LR
  local name="lr-$1-$2-$3" kept="$REPORT_DIR/runs/lr-$1-$2-$3" ok=0 as_twin=0 keep="${KEEP_CHECKPOINTS:-0}"
  [ -f "$kept/FAILED" ] && { echo "== $OUT/$name: diverged already"; return; }
  twin_of "$1" "$2" && { as_twin=1; keep=1; }
  # shellcheck disable=SC2046
  KEEP_CHECKPOINTS=$keep run "$OUT/$name" $(task_args "$1") $(method_args "$1" "$2") \
    --set learning-rate="$3" --set seed=1 --set eval-down-every=0 && ok=1
  # shellcheck disable=SC2046
  if [ $ok = 1 ] && [ $as_twin = 1 ]; then
    twin "$name" 1 $(method_args code "$2") --set learning-rate="$3" --set seed=1 --set eval-down-every=0
  fi
  [ $ok = 0 ] || return 0
  grep -q "training diverged" "$OUT/$name/log.txt" 2>/dev/null || exit 1
  mkdir -p "$kept"; cp "$OUT/$name/config.yaml" "$kept/" 2>/dev/null || true
  tail -n 20 "$OUT/$name/log.txt" > "$kept/FAILED"
  echo "   diverged: $(grep -m1 "training diverged" "$OUT/$name/log.txt")"
}

# RLVR trains on the same verifier questions on qa-code and code (stdlib doctests, RLVRTask.load):
# with the two tasks' budgets equal, its code run would repeat its qa-code run step for step. So
# its code row is the qa-code run's final weights evaluated on code's data — an evaluation-only run
# resumed from that run's checkpoint, kept until then — with code's step-0 evaluation taken from
# code's base row of the same seed (scripts/twin_metrics.py); the run's TWIN file says so. Only
# while both tasks are in TASKS and their budgets (and, in step 2, RLVR's chosen rates) agree; a
# qa-code run finished earlier has no checkpoint left, and then code's run trains. TWIN=0: never.
twin_of() {  # twin_of TASK METHOD [LR]: whether TASK's METHOD run (at LR, code's chosen rate) also gives code's row
  [ "$1" = qa-code ] && [ "$2" = rlvr ] && [ "${TWIN:-1}" = 1 ] || return 1
  case " $TASKS " in *" code "*) ;; *) return 1 ;; esac
  local a b; a=$(budget qa-code 2>/dev/null) && b=$(budget code 2>/dev/null) && [ "$a" = "$b" ] || return 1
  [ -z "${3:-}" ] || [ "$3" = "$(best_lr code rlvr 2>/dev/null)" ]
}

twin() {  # twin QA_NAME SEED ARGS...: $OUT/QA_NAME's final weights evaluated on code (ARGS: code's run's)
  local from="$OUT/$1" name="${1/qa-code/code}" seed="$2"; shift 2
  local dir="$OUT/$name" kept="$REPORT_DIR/runs/$name"
  if [ -f "$dir/DONE" ] || [ -f "$kept/DONE" ] || [ ! -d "$from/checkpoints" ]; then
    [ "${KEEP_CHECKPOINTS:-0}" = 1 ] || rm -rf "$from/checkpoints"; return 0
  fi
  # shellcheck disable=SC2046
  run "$OUT/code-base-s$seed" $(task_args code) --set seed="$seed" --eval-only
  echo "== $dir: the weights of $from, evaluated on code"
  # shellcheck disable=SC2046
  run "$dir" $(task_args code) "$@" --resume "$from" --eval-only
  scripts/twin_metrics.py "$dir/metrics.jsonl" "$OUT/code-base-s$seed/metrics.jsonl" \
    || { rm -f "$dir/DONE" "$kept/DONE"; echo "compare: $dir: metrics not merged" >&2; exit 1; }
  echo "trained as $(basename "$from") (the same questions and budget), evaluated on code" | tee "$dir/TWIN" > "$kept/TWIN"
  cp "$dir/metrics.jsonl" "$kept/"
  [ "${KEEP_CHECKPOINTS:-0}" = 1 ] || rm -rf "$from/checkpoints"
}

step_lr() {
  # EBFT first, on every task: its runs size the budget of the others (and tell `twin_of`).
  for m in ebft sft rlvr; do
    for task in $TASKS; do
      for lr in $LRS; do lr_run "$task" "$m" "$lr"; done
      local next
      while next=$(choose "$task" "$m" | cut -d' ' -f2) && [ "$next" != - ]; do
        echo "== $task $m: the best rate is at the edge of those tried; trying $next"
        lr_run "$task" "$m" "$next"
      done
    done
  done
}

# score FILE METHOD: "value se" of a finished run, higher is better — EBFT: the final held-out
# feature matching on raw features (SE over the sampling seeds); SFT: minus the final validation
# CE (teacher-forced: no SE); RLVR: the mean training reward of its last RLVR_TAIL steps, on
# questions it had not been trained on (SE over those steps; see the header).
RLVR_TAIL="${RLVR_TAIL:-10}"
score() { scripts/lr_table.py --score "$1" "$2" "$RLVR_TAIL"; }

# choose TASK METHOD: "CHOSEN NEXT" from the rates tried so far: CHOSEN is the largest rate within
# one SE of the best; NEXT the ladder's next rate to try (see step_lr), or - when there is none.
choose() {
  local rows="" lr d
  for lr in $(printf '%s\n' $LADDER $LRS | sort -g -u); do
    d="$REPORT_DIR/runs/lr-$1-$2-$lr"
    if [ -f "$d/DONE" ]; then rows+="$lr $(score "$d/metrics.jsonl" "$2")"$'\n'
    elif [ -f "$d/FAILED" ]; then rows+="$lr -inf 0"$'\n'
    fi
  done
  for lr in $LRS; do
    case " $(printf '%s' "$rows" | cut -d' ' -f1 | tr '\n' ' ') " in
      *" $lr "*) ;;
      *) echo "compare: lr-$1-$2-$lr is not finished; run 'scripts/compare.sh lr' first" >&2; exit 1 ;;
    esac
  done
  printf '%s' "$rows" | python3 -c '
import math, sys
ladder = sys.argv[1].split()
rows = sorted((float(lr), lr, float(v), float(se)) for lr, v, se in (l.split() for l in sys.stdin if l.strip()))
ok = [r for r in rows if not math.isnan(r[2]) and not math.isinf(r[2])]
if not ok:
    sys.exit("compare: no learning-rate run with a score")
best = max(ok, key=lambda r: r[2])
chosen = max(r for r in ok if r[2] >= best[2] - best[3])[1]
i, nxt = ladder.index(best[1]) if best[1] in ladder else -1, "-"
if i >= 0 and best is rows[-1] and i + 1 < len(ladder):
    nxt = ladder[i + 1]
elif i > 0 and best is rows[0]:
    nxt = ladder[i - 1]
print(chosen, nxt)' "$LADDER"
}

best_lr() { choose "$1" "$2" | cut -d' ' -f1; }

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
        local keep="${KEEP_CHECKPOINTS:-0}" as_twin=0
        twin_of "$task" "$m" "$lr" && { as_twin=1; keep=1; }
        # shellcheck disable=SC2046
        KEEP_CHECKPOINTS=$keep run "$OUT/$task-$m-s$seed" $(task_args "$task") $(method_args "$task" "$m") \
          --set learning-rate="$lr" --set seed="$seed"
        # shellcheck disable=SC2046
        [ $as_twin = 0 ] || twin "$task-$m-s$seed" "$seed" $(method_args code "$m") --set learning-rate="$lr" --set seed="$seed"
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
  { echo "# Learning rates (step 1 of scripts/compare.sh; seed 1): chosen in bold, by the column marked *"
    echo
    for task in $TASKS; do for m in ebft sft rlvr; do echo "$task $m $(choose "$task" "$m" 2>/dev/null)"; done; done \
      | scripts/lr_table.py "$REPORT_DIR/runs" "$RLVR_TAIL"; } > "$REPORT_DIR/learning-rates.md"
  echo "wrote $REPORT_DIR/learning-rates.md"
  [ ${#dirs[@]} -gt 0 ] || { echo "compare: no finished comparison run" >&2; return 0; }
  "$BIN" report "${dirs[@]}" "${labels[@]}" --out "$REPORT_DIR" --table-name report.md
  scripts/claims.py "$REPORT_DIR/runs" "$TASKS" "$SEEDS" > "$REPORT_DIR/claims.md"
  echo "wrote $REPORT_DIR/claims.md"
}

case "${1:-all}" in
  lr) step_lr ;;
  runs) step_runs ;;
  report) step_report ;;
  rates)  # the rate each method would get now, and the next rate step 1 would try (- for none)
    for task in $TASKS; do for m in $METHODS; do echo "$task $m $(choose "$task" "$m")"; done; done ;;
  all) step_lr; step_runs; step_report ;;
  *) echo "usage: scripts/compare.sh [lr|runs|report|all|rates]" >&2; exit 2 ;;
esac
