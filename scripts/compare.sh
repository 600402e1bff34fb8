#!/usr/bin/env bash
# The base model vs SFT vs RLVR vs EBFT comparison of docs/results/comparison (issue 6), sized
# for a 2-core machine: two MPI ranks (colocated), SmolLM2-135M-Instruct, 40 optimizer steps per
# method, on the qa-code task (downstream: HumanEval, 164 problems, pass@1/pass@4) and the
# translation task (downstream: corpus BLEU on 300 de→en test pairs).
#
# Usage: scripts/compare.sh [OUT_ROOT]     (default runs/compare; the report — report.md, the
#        SVG plots and each run's config.yaml + metrics.jsonl under runs/ — goes to
#        docs/results/comparison unless REPORT_DIR is set)
# A run whose directory holds DONE is skipped, so an interrupted comparison can be continued.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-runs/compare}"
report="${REPORT_DIR:-docs/results/comparison}"
bin="${EBFT_DIST_BIN:-.build/release/ebft-dist}"
np="${NP:-2}"
steps="${STEPS:-40}"
mkdir -p "$root"

common=(--preset small --colocate --quiet --steps "$steps" --stall-timeout 3600
        --set learning-rate=3e-5 --set eval-every=10 --set eval-chunks=16
        --set eval-down-every=20 --set eval-down-start=false)
qa_code=(--set task=qa-code --set eval-down-max-new-tokens=128
         --set rlvr-questions=4 --set rlvr-max-new-tokens=96)
translation=(--set task=translation --set context-length=4 --set generate-length=4 --set stride=4
             --set pooling=mean --set eval-down-limit=300
             --set rlvr-questions=8 --set rlvr-max-new-tokens=48)

run() {  # run NAME ARGS...
  local name="$1"; shift
  local dir="$root/$name"
  if [ -f "$dir/DONE" ]; then echo "== $name: done already"; return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  echo "== $name: $(date -u +%FT%TZ)"
  local t0=$SECONDS
  scripts/launch.sh "$np" "$bin" train "${common[@]}" "$@" --run-dir "$dir" > "$dir/log.txt" 2>&1
  echo "$(( SECONDS - t0 )) s" > "$dir/DONE"
  echo "   $name: $(( SECONDS - t0 )) s"
}

for task in translation qa-code; do
  if [ "$task" = translation ]; then args=("${translation[@]}"); else args=("${qa_code[@]}"); fi
  run "$task-base" "${args[@]}" --eval-only
  run "$task-sft"  "${args[@]}" --set method=sft
  run "$task-rlvr" "${args[@]}" --set method=rlvr
  run "$task-ebft" "${args[@]}" --set method=ebft
done

# Keep each run's config and metrics next to the report (small files; enough to redraw it).
for d in "$root"/translation-{base,sft,rlvr,ebft} "$root"/qa-code-{base,sft,rlvr,ebft}; do
  mkdir -p "$report/runs/$(basename "$d")"
  cp "$d/config.yaml" "$d/metrics.jsonl" "$d/DONE" "$report/runs/$(basename "$d")/"
done
"$bin" report "$report"/runs/translation-{base,sft,rlvr,ebft} "$report"/runs/qa-code-{base,sft,rlvr,ebft} \
  --out "$report" --table-name report.md
