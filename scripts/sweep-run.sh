# Sourced by scripts/ablations.sh and scripts/compare.sh: one training run of a sweep.
#
#   run DIR ARGS...   scripts/launch.sh NP BIN train "${common[@]}" ARGS... "${extra[@]}" --run-dir DIR
#
# Uses the caller's NP, BIN, REPORT_DIR, SWEEP (its name, for messages) and the arrays common and
# extra. A run whose DIR holds DONE is skipped, so an interrupted sweep continues where it stopped
# (an unfinished run restarts). Each finished run's config.yaml, metrics.jsonl and DONE are also
# kept in REPORT_DIR/runs/<name of DIR>, which is in git, and a run found there is not run again:
# a fresh clone continues from the committed runs. Checkpoints are deleted unless KEEP_CHECKPOINTS=1.
run() {
  local dir="$1"; shift
  local kept; kept="$REPORT_DIR/runs/$(basename "$dir")"
  if [ ! -f "$dir/DONE" ] && [ -f "$kept/DONE" ]; then
    mkdir -p "$dir"; cp "$kept/config.yaml" "$kept/metrics.jsonl" "$kept/DONE" "$dir/"
  fi
  if [ -f "$dir/DONE" ]; then echo "== $dir: done already"; return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  echo "== $dir: $(date -u +%FT%TZ)"
  local t0=$SECONDS
  scripts/launch.sh "$NP" "$BIN" train "${common[@]}" "$@" "${extra[@]}" --run-dir "$dir" > "$dir/log.txt" 2>&1 \
    || { echo "$SWEEP: $dir failed, see $dir/log.txt" >&2; return 1; }
  echo "$(( SECONDS - t0 )) s" > "$dir/DONE"
  # The final checkpoint (≈ 0.5 GB for SmolLM2) is not needed for the tables.
  [ "${KEEP_CHECKPOINTS:-0}" = 1 ] || rm -rf "$dir/checkpoints"
  mkdir -p "$kept"; cp "$dir/config.yaml" "$dir/metrics.jsonl" "$dir/DONE" "$kept/"
  echo "   $(( SECONDS - t0 )) s"
}
