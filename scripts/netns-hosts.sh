#!/usr/bin/env bash
# A multi-host MPI job on one machine, for testing: each "host" is a network namespace
# (ebft-h1, ebft-h2, ...) joined to a bridge in the root namespace by a veth pair, and mpirun's
# remote launcher (plm_rsh_agent) is scripts/netns-agent.sh, which enters the namespace (with
# its own UTS hostname) instead of ssh-ing to a machine. MPI traffic between ranks is real TCP
# over the veth/bridge links; filesystem, kernel, users and CPUs are shared. See hostfiles/README.md.
#
#   scripts/netns-hosts.sh up N [SLOTS]   create hosts ebft-h1..ebft-hN (10.213.0.11, .12, ...),
#                                         SLOTS ranks each (default 1); writes hostfiles/netns.generated.
#                                         Idempotent: brings an existing setup to exactly N hosts.
#   scripts/netns-hosts.sh down           remove hosts, bridge and hostfile (no-op if absent)
#   scripts/netns-hosts.sh status         show what is up
#   scripts/netns-hosts.sh run NP [MPIRUN-OPTIONS...] -- COMMAND...
#                                         mpirun across the hosts (after `up`); one rank per slot
#   scripts/netns-hosts.sh check          self-test: compile a small C MPI program (Allreduce, each
#                                         rank reports its eth0 address), run it on 2 and on 3 hosts,
#                                         then tear everything down
#
# Environment: EBFT_NETNS_VERBOSE=1 adds Open MPI's launcher/oob debug output;
#              EBFT_NETNS_LOG=FILE makes the agent log every daemon launch to FILE.
# Needs root (ip netns, veth, bridge). Traffic stays on this machine: the bridge has no uplink,
# the namespaces have no default route and forwarding is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

BR=ebft-br0
BR_MAC=02:eb:f7:00:00:01   # locally administered
NET=10.213.0            # /24; bridge .1, host i at .(10+i)
PREFIX=ebft-h
HOSTFILE=hostfiles/netns.generated
AGENT="$REPO/scripts/netns-agent.sh"
MAX_HOSTS=50

die() { echo "netns-hosts: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (creates network namespaces, veth pairs and a bridge; the agent enters namespaces). Try: sudo $0 $*"
}
need_tools() {
  local t
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || die "'$t' not found (needs: iproute2, util-linux, Open MPI)"; done
}

our_namespaces() { ip netns list 2>/dev/null | awk -v p="^$PREFIX[0-9]+$" '$1 ~ p {print $1}' | sort -V; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }

# Remove one host: kill what still runs inside it (leftover orted/ranks would keep it alive),
# delete the namespace (its eth0 end goes with it, and so the veth pair) and its /etc/netns files.
del_host() {
  local h="$1" pids
  pids=$(ip netns pids "$h" 2>/dev/null || true)
  if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; sleep 0.2; kill -9 $pids 2>/dev/null || true; fi
  ip netns del "$h" 2>/dev/null || true
  ip link del "veth-$h" 2>/dev/null || true
  rm -rf "/etc/netns/$h"
}

up() {
  local n="${1:-2}" slots="${2:-1}" i h addr
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$MAX_HOSTS" ] || die "up: N must be 1..$MAX_HOSTS (got '$n')"
  [[ "$slots" =~ ^[0-9]+$ ]] && [ "$slots" -ge 1 ] || die "up: SLOTS must be >= 1 (got '$slots')"
  need_root up; need_tools ip

  # bridge in the root namespace (mpirun runs there and listens on $NET.1)
  # fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so adding a host could
  # change it and leave stale ARP entries for $NET.1 in the existing hosts (seen as mpirun
  # hanging after `up 2` -> `up 3`: daemons could not connect back)
  ip link show "$BR" >/dev/null 2>&1 || ip link add "$BR" address "$BR_MAC" type bridge
  ip link set "$BR" address "$BR_MAC"
  ip -4 -o addr show dev "$BR" | grep -q "inet $NET.1/24" || ip addr add "$NET.1/24" dev "$BR"
  ip link set "$BR" up

  # hosts beyond N from an earlier `up` go away
  for h in $(our_namespaces); do
    [ "${h#"$PREFIX"}" -le "$n" ] || del_host "$h"
  done

  for i in $(seq 1 "$n"); do
    h="$PREFIX$i"; addr="$NET.$((10 + i))"
    ns_exists "$h" || ip netns add "$h"
    if ! ip -n "$h" link show eth0 >/dev/null 2>&1; then
      ip link del "veth-$h" 2>/dev/null || true
      ip link add "veth-$h" type veth peer name eth0 netns "$h"
    fi
    ip link set "veth-$h" master "$BR" up
    ip -n "$h" -4 -o addr show dev eth0 | grep -q "inet $addr/24" || ip -n "$h" addr add "$addr/24" dev eth0
    ip -n "$h" link set eth0 up
    ip -n "$h" link set lo up
    # names of all hosts, visible inside the namespaces (`ip netns exec` bind-mounts
    # /etc/netns/NS/hosts over /etc/hosts), so a rank can resolve its own hostname quickly
    mkdir -p "/etc/netns/$h"
  done
  {
    echo "127.0.0.1 localhost"
    echo "$NET.1 ebft-root"
    for i in $(seq 1 "$n"); do echo "$NET.$((10 + i)) $PREFIX$i"; done
  } > "/tmp/.ebft-netns-hosts.$$"
  for i in $(seq 1 "$n"); do cp "/tmp/.ebft-netns-hosts.$$" "/etc/netns/$PREFIX$i/hosts"; done
  rm -f "/tmp/.ebft-netns-hosts.$$"

  mkdir -p "$(dirname "$HOSTFILE")"
  {
    echo "# generated by scripts/netns-hosts.sh up $n $slots -- one line per network namespace"
    echo "# (host = the namespace's eth0 address; scripts/netns-agent.sh maps it to the namespace)"
    for i in $(seq 1 "$n"); do echo "$NET.$((10 + i)) slots=$slots   # $PREFIX$i"; done
  } > "$HOSTFILE"
  echo "netns-hosts: $n host(s) up: $(our_namespaces | tr '\n' ' ')(bridge $BR $NET.1/24); hostfile: $HOSTFILE"
}

down() {
  need_root down; need_tools ip
  local h
  for h in $(our_namespaces); do del_host "$h"; done
  rm -rf /etc/netns/"$PREFIX"[0-9]* 2>/dev/null || true
  rmdir /etc/netns 2>/dev/null || true      # only if empty, i.e. only if nothing else uses it
  ip link del "$BR" 2>/dev/null || true
  rm -f "$HOSTFILE"
  echo "netns-hosts: down (no $PREFIX* namespaces, no $BR, no $HOSTFILE)"
}

status() {
  need_tools ip
  local hs; hs=$(our_namespaces)
  if [ -z "$hs" ] && ! ip link show "$BR" >/dev/null 2>&1; then echo "netns-hosts: down"; return 0; fi
  ip -br addr show dev "$BR" 2>/dev/null || echo "bridge $BR: missing"
  for h in $hs; do printf '%-10s %s\n' "$h" "$(ip -n "$h" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')"; done
  [ -f "$HOSTFILE" ] && { echo "--- $HOSTFILE"; cat "$HOSTFILE"; } || echo "no $HOSTFILE"
}

run() {
  local np="${1:-}"; shift || true
  [[ "$np" =~ ^[0-9]+$ ]] && [ "$np" -ge 1 ] || die "usage: $0 run NP [MPIRUN-OPTIONS...] -- COMMAND..."
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
  [ "${1:-}" = "--" ] || die "run: missing '--' before the command (usage: $0 run NP [MPIRUN-OPTIONS...] -- COMMAND...)"
  shift
  [ $# -ge 1 ] || die "run: no command after '--'"
  need_root run; need_tools ip mpirun unshare
  [ -f "$HOSTFILE" ] || die "run: no $HOSTFILE; run '$0 up N' first"
  [ -n "$(our_namespaces)" ] || die "run: no $PREFIX* namespaces; run '$0 up N' first"

  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
  local verbose=()
  [ -n "${EBFT_NETNS_VERBOSE:-}" ] && verbose=(--mca plm_base_verbose 10 --mca oob_base_verbose 10)
  # - plm_rsh_agent: our ssh stand-in; no_tree_spawn: mpirun launches every daemon itself
  #   (orted would otherwise re-launch through the agent from inside a namespace)
  # - oob (daemon wiring) and btl (rank data) restricted to the bridge subnet: mpirun's root
  #   namespace also has eth0/lo, and ranks must not pick loopback or the real uplink
  # - btl tcp,self: no shared memory between ranks, as between real machines
  # - bind-to none: every "host" sees the same cores; the default (bind to core) would pin the
  #   first rank of every host onto core 0
  exec mpirun -np "$np" --hostfile "$HOSTFILE" \
    --mca plm_rsh_agent "$AGENT" --mca plm_rsh_no_tree_spawn 1 \
    --mca oob_tcp_if_include "$NET.0/24" \
    --mca btl tcp,self --mca btl_tcp_if_include "$NET.0/24" \
    --bind-to none \
    -x OPENBLAS_NUM_THREADS -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "${verbose[@]}" "${opts[@]}" "$@"
}

check() {
  need_root check; need_tools ip mpirun mpicc unshare
  CHECK_DIR=$(mktemp -d /tmp/ebft-netns-check.XXXXXX)
  trap 'rm -rf "$CHECK_DIR"; down >/dev/null 2>&1 || true' EXIT
  local dir="$CHECK_DIR"
  cat > "$dir/allreduce.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <ifaddrs.h>
#include <arpa/inet.h>
int main(int argc, char **argv) {
  int rank, size, len; char host[MPI_MAX_PROCESSOR_NAME], ip[INET_ADDRSTRLEN] = "none";
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Get_processor_name(host, &len);
  struct ifaddrs *ifs, *i;
  if (getifaddrs(&ifs) == 0) {
    for (i = ifs; i; i = i->ifa_next)
      if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !strcmp(i->ifa_name, "eth0"))
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, sizeof ip);
    freeifaddrs(ifs);
  }
  long v = rank + 1, sum = 0, want = (long)size * (size + 1) / 2;
  MPI_Allreduce(&v, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  printf("rank %d/%d host %s eth0 %s allreduce %ld %s\n", rank, size, host, ip, sum, sum == want ? "OK" : "WRONG");
  MPI_Finalize();
  return sum == want ? 0 : 1;
}
EOF
  mpicc -O1 -o "$dir/allreduce" "$dir/allreduce.c" || die "check: mpicc failed"
  local n out fail=0 ips rc
  for n in 2 3; do
    echo "== $n hosts"
    up "$n" >/dev/null
    rc=0; out=$(timeout 60 "$0" run "$n" -- "$dir/allreduce" 2>&1) || rc=$?
    if [ "$rc" != 0 ]; then
      echo "$out"
      [ "$rc" = 124 ] && echo "check: FAILED on $n hosts (mpirun hung, killed after 60 s)" \
                      || echo "check: FAILED on $n hosts (mpirun exit status $rc)"
      fail=1; continue
    fi
    echo "$out" | sort
    ips=$(echo "$out" | awk '/^rank .* OK$/ {print $6}' | sort -u | grep -c "^$NET\.") || true
    if [ "$(echo "$out" | grep -c ' OK$')" -ne "$n" ] || [ "$ips" -ne "$n" ]; then
      echo "check: FAILED on $n hosts (want $n OK lines from $n distinct $NET.x addresses, got $ips addresses)"; fail=1
    fi
  done
  down >/dev/null
  [ "$fail" = 0 ] && echo "check: OK (Allreduce across 2 and 3 namespaces, torn down)" || { echo "check: FAILED" >&2; return 1; }
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  run) shift; run "$@" ;;
  check) check ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
