#!/usr/bin/env bash
# A launcher with scripts/launch.sh's interface (NP BINARY ARGS...) that runs the job across
# emulated hosts with throttled links: scripts/netns-cluster.sh run (a temporary cluster per
# job, removed afterwards). HOSTS (default 2) and RATE (default 1gbit) choose the cluster.
# For scripts/plan-validate.sh:  LAUNCH=scripts/netns-launch.sh PLAN_ARGS="--hosts 2 …"
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 NP BINARY [ARGS...]" >&2; exit 2; }
np=$1; bin=$2; shift 2
exec "$(dirname "$0")/netns-cluster.sh" run --hosts "${HOSTS:-2}" --rate "${RATE:-1gbit}" -np "$np" --bin "$bin" -- "$@"
