#!/usr/bin/env bash
# The planner's predicted step time beside the measured one, for every learner/worker split at
# each N in $NPS (issue 15 item 4; docs/results/planner.md).
#
#   scripts/plan-validate.sh [OUT_DIR]        (default runs/plan-validate)
#
# 1. Calibrations: `bench step` at np 1 (3 steps, median of steps 2-3) with 1 BLAS thread and
#    with all cores, unless $CALIBRATION names existing files (comma-separated).
# 2. For each N and split (N = 1: colocated; N ≥ 2: --learners 1 … N−1):
#      $LAUNCH N $BIN train --preset $PRESET --steps $STEPS --learners L --set eval-every=0 \
#          --set eval-down-every=0 --quiet --run-dir OUT/npN-LL
#    measured = mean `time_step` of steps 2…$STEPS (step 1 also faults pages in);
#    predicted = `$BIN plan --ranks N --json $PLAN_ARGS` for that split.
# 3. Prints N, L, predicted, measured, error; per N the split `--learners auto` would pick
#    and the measured-fastest one.
#
# Environment:
#   BIN          ebft-dist binary (default .build/release/ebft-dist)
#   LAUNCH       launcher taking "NP COMMAND..." (default scripts/launch.sh; e.g. a wrapper
#                around scripts/netns-hosts.sh run for namespace "hosts")
#   PLAN_ARGS    extra `plan` options matching LAUNCH's cluster, e.g.
#                "--hosts 2 --bandwidth 0.125 --latency 100 --shared-cores --cores-per-rank 1"
#   NPS          ranks to try (default "1 2 3 4")
#   PRESET       (default small); STEPS (default 3, at least 2); SETS: extra "--set k=v ..." for
#                bench step, plan and train alike
#   CALIBRATION  calibration files, comma-separated (default OUT/calibration-1.json and
#                OUT/calibration-<nproc>.json, measured if absent)
# Takes about (1 + number of splits) × STEPS steps: at the small preset on 2 cores ≈ 15-25 s a
# step, so the default NPS is ≈ 8 runs × 3 steps ≈ 10 min. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/plan-validate}"
BIN="${BIN:-.build/release/ebft-dist}"
LAUNCH="${LAUNCH:-scripts/launch.sh}"
PLAN_ARGS="${PLAN_ARGS:-}"
NPS="${NPS:-1 2 3 4}"
PRESET="${PRESET:-small}"
STEPS="${STEPS:-3}"
SETS="${SETS:-}"
CORES=$(nproc)
if [ "$CORES" = 1 ]; then CALS="${CALIBRATION:-$OUT/calibration-1.json}"; else CALS="${CALIBRATION:-$OUT/calibration-1.json,$OUT/calibration-$CORES.json}"; fi
[ -x "$BIN" ] || { echo "plan-validate: $BIN not found (swift build -c release)" >&2; exit 1; }
[ "$STEPS" -ge 2 ] || { echo "plan-validate: STEPS must be at least 2" >&2; exit 1; }
mkdir -p "$OUT"
# One calibration per BLAS thread count a rank may get here: 1 (np > cores/2) and all cores
# (np 1); the planner interpolates between them.
for t in 1 "$CORES"; do
  cal="$OUT/calibration-$t.json"
  case ",$CALS," in *",$cal,"*) ;; *) continue ;; esac
  [ -f "$cal" ] && continue
  echo "calibration: OPENBLAS_NUM_THREADS=$t scripts/launch.sh 1 $BIN bench step --preset $PRESET --steps 3 $SETS --calibration-out $cal"
  # shellcheck disable=SC2086
  OPENBLAS_NUM_THREADS=$t scripts/launch.sh 1 "$BIN" bench step --preset "$PRESET" --steps 3 $SETS --calibration-out "$cal" \
    > "$OUT/calibration-$t.log" 2>&1 || { echo "plan-validate: bench step failed, see $OUT/calibration-$t.log" >&2; exit 1; }
done
CAL_ARGS=()
IFS=, read -r -a cal_files <<< "$CALS"
for f in "${cal_files[@]}"; do CAL_ARGS+=(--calibration "$f"); done

rows="$OUT/rows.tsv"
: > "$rows"
for n in $NPS; do
  # shellcheck disable=SC2086
  "$BIN" plan "${CAL_ARGS[@]}" --ranks "$n" --preset "$PRESET" $SETS $PLAN_ARGS --json > "$OUT/plan-np$n.json"
  if [ "$n" = 1 ]; then splits="0"; else splits="$(seq 1 $((n - 1)))"; fi
  for l in $splits; do
    run="$OUT/np$n-L$l"
    args=(train --preset "$PRESET" --steps "$STEPS" --set eval-every=0 --set eval-down-every=0 --quiet --run-dir "$run")
    [ "$l" = 0 ] || args+=(--learners "$l")
    echo "run: $LAUNCH $n $BIN ${args[*]} $SETS"
    rm -rf "$run"
    # shellcheck disable=SC2086
    if ! $LAUNCH "$n" "$BIN" "${args[@]}" $SETS > "$run.log" 2>&1; then
      echo "plan-validate: np $n L $l failed, see $run.log" >&2
      continue
    fi
    python3 - "$run/metrics.jsonl" "$OUT/plan-np$n.json" "$n" "$l" >> "$rows" <<'EOF'
import json, sys
metrics, plan, n, l = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
steps = [json.loads(x) for x in open(metrics) if x.strip()]
steps = [r for r in steps if r.get("kind") == "train" and r["step"] >= 2]
measured = sum(r["time_step"] for r in steps) / len(steps)
p = json.load(open(plan))
split = [s for s in p["splits"] if (s["colocated"] if l == 0 else (not s["colocated"] and s["learners"] == l))][0]
print(f"{n}\t{l}\t{split['step']:.3f}\t{measured:.3f}\t{p['auto_learners']}")
EOF
  done
done

python3 - "$rows" <<'EOF'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
print()
print(f"{'np':>3} {'split':>10} {'predicted s':>12} {'measured s':>11} {'error':>8}")
worst = 0.0
for n, l, pred, meas, auto in rows:
    pred, meas = float(pred), float(meas)
    err = 100 * (pred - meas) / meas
    worst = max(worst, abs(err))
    name = "colocated" if l == "0" else f"L={l}"
    print(f"{n:>3} {name:>10} {pred:>12.2f} {meas:>11.2f} {err:>+7.1f}%")
print(f"largest |error|: {worst:.1f}%")
for n in sorted({r[0] for r in rows}, key=int):
    sub = [r for r in rows if r[0] == n and r[1] != "0"]
    if not sub:
        continue
    fastest = min(sub, key=lambda r: float(r[3]))
    print(f"np {n}: --learners auto picks L={sub[0][4]}; measured fastest L={fastest[1]}"
          + (" (agree)" if sub[0][4] == fastest[1] else " (DISAGREE)"))
EOF
