#!/usr/bin/env bash
# mpirun's remote launcher for scripts/netns-hosts.sh (set as `--mca plm_rsh_agent`).
# Called like ssh:  netns-agent.sh [ssh-options] HOST COMMAND...
# HOST is a namespace name (ebft-h2) or the address of its eth0 (10.213.0.12); COMMAND runs
# inside that network namespace (same filesystem, same user, same kernel), in a private UTS
# namespace whose hostname is the namespace name. The hostname matters: Open MPI names its
# session directory /tmp/ompi.<hostname>.<uid>, and with one shared /tmp and one shared
# hostname every "host" would use the same directory (and MPI_Get_processor_name would
# report the same name on every rank).
# EBFT_NETNS_LOG=/path: append each launch (host, namespace, command) to that file.
set -u
# drop ssh-style options (mpirun passes none by default; plm_rsh_args could add some)
while [ $# -gt 0 ]; do
  case "$1" in
    -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;   # ssh options that take an argument
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "netns-agent: usage: $0 [ssh-options] HOST COMMAND..." >&2; exit 255; }
host="$1"; shift
ns=""
if [ -n "$(ip netns list 2>/dev/null | awk -v h="$host" '$1 == h')" ]; then
  ns="$host"
else
  for n in $(ip netns list 2>/dev/null | awk '/^ebft-h[0-9]+/ {print $1}'); do
    if [ -n "$(ip -n "$n" -4 -o addr show dev eth0 2>/dev/null | awk -v h="$host" 'index($4, h "/") == 1')" ]; then
      ns="$n"; break
    fi
  done
fi
if [ -z "$ns" ]; then
  echo "netns-agent: no ebft-h* network namespace owns host '$host' (did you run 'scripts/netns-hosts.sh up N'?)" >&2
  exit 255   # what ssh returns when it cannot reach the host
fi
[ -n "${EBFT_NETNS_LOG:-}" ] && echo "$(date +%T) agent: host=$host ns=$ns cmd=$*" >> "$EBFT_NETNS_LOG"
# ip netns exec: enter the network namespace (and bind /etc/netns/$ns/hosts over /etc/hosts);
# unshare --uts + hostname: own hostname; then the command, through a shell as ssh would.
exec ip netns exec "$ns" unshare --uts /bin/sh -c 'hostname "$0" && exec /bin/sh -c "$1"' "$ns" "$*"
