#!/usr/bin/env bash
# How often does the stall watchdog name a stopped rank? Runs TRIALS short training jobs on a
# tiny random model under mpirun; in each, once the first step's metrics are written, MPI rank
# RANK gets SIGSTOP. A trial counts as named when the job ends and every "stalled:" line names
# exactly the stopped rank (in "not responding: …", or in the older "waiting for rank …").
# Usage: scripts/stall-trials.sh [TRIALS=10] [RANK=1] [NP=3] [STALL_TIMEOUT=10]
# Needs a release build (or EBFT_DIST_BIN); prints one line per trial and a summary.
set -uo pipefail
trials=${1:-10}; rank=${2:-1}; np=${3:-3}; timeout=${4:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${EBFT_DIST_BIN:-$here/.build/release/ebft-dist}
named=0
for i in $(seq 1 "$trials"); do
  dir=$(mktemp -d /tmp/stall-trial-XXXXXX)
  setsid "$here/scripts/launch.sh" "$np" "$bin" train --preset small --quiet --steps 100000 \
    --set model=random:dim=32,layers=2,heads=4,kv-heads=2,ffn=64,seed=1 \
    --set corpus-root=/usr/lib/python3.11/email --set chunk-length=32 --set chunks-per-step=4 --set samples-per-chunk=4 --set eval-every=0 \
    --run-dir "$dir/run" --stall-timeout "$timeout" >"$dir/out" 2>&1 &
  job=$!
  victim=
  for _ in $(seq 1 1800); do
    if [ -s "$dir/run/metrics.jsonl" ]; then
      for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "$dir/run" || continue
        { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$rank" && victim=$pid
      done
      [ -n "$victim" ] && break
    fi
    sleep 0.1
  done
  if [ -z "$victim" ]; then
    echo "trial $i: no step done / rank $rank not found (output in $dir/out)"; kill -- -"$job" 2>/dev/null; wait "$job"
    continue
  fi
  kill -STOP "$victim"; t0=$(date +%s.%N)
  for _ in $(seq 1 1200); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  t1=$(date +%s.%N)
  kill -0 "$job" 2>/dev/null && { kill -- -"$job"; echo "trial $i: still running after 120 s"; }
  wait "$job"; rc=$?
  if { tr '\0' ' ' <"/proc/$victim/cmdline"; } 2>/dev/null | grep -q -- "$dir/run"; then
    echo "trial $i: rank $rank outlived the job; killing it"; kill -CONT "$victim"; kill -KILL "$victim"
  fi
  verdict=$(python3 - "$dir/out" "$rank" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
want = {int(sys.argv[2])}
lines = [l for l in text.splitlines() if "stalled:" in l]
sets = []
for l in lines:
    m = re.search(r"not responding: (.*?)( — |; aborting|$)", l) or re.search(r"waiting for ranks? ([0-9, ]+)", l)
    named = set(int(x) for x in re.findall(r"rank (\d+) \(", m.group(1))) if m and "not responding" in m.group(0) \
        else set(int(x) for x in re.findall(r"\d+", m.group(1))) if m else set()
    sets.append(sorted(named))
ok = bool(lines) and all(set(s) == want for s in sets)
print(("named" if ok else "WRONG") + f" lines={len(lines)} named={sets}")
PY
)
  [[ $verdict == named* ]] && named=$((named + 1))
  printf 'trial %d: rank %s (pid %s) stopped; exit %s after %.1f s; %s\n' "$i" "$rank" "$victim" "$rc" \
    "$(echo "$t1 - $t0" | bc)" "$verdict"
  grep "stalled:" "$dir/out" | sed 's/^/    /'
  rm -rf "$dir"
done
echo "named the stopped rank $rank in $named of $trials trials"
