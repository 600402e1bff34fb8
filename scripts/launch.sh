#!/usr/bin/env bash
# mpirun with the settings this machine needs, applied only when needed:
#  - running as root requires Open MPI's explicit opt-in variables;
#  - more ranks than cores requires --oversubscribe, and then every rank runs OpenBLAS on one
#    thread so that ranks × threads stays within the cores.
# Usage: scripts/launch.sh NP command [args...]
set -euo pipefail
np="$1"; shift
cores=$(nproc)
# --bind-to none: Open MPI otherwise pins each rank to one core (np ≤ 2), and OpenBLAS then
# runs a single thread whatever OPENBLAS_NUM_THREADS says.
args=(-np "$np" --bind-to none)
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ "$np" -gt "$cores" ]; then
  args+=(--oversubscribe)
fi
threads=$(( cores / np )); [ "$threads" -ge 1 ] || threads=1
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$threads}"
args+=(-x OPENBLAS_NUM_THREADS)
exec mpirun "${args[@]}" "$@"
