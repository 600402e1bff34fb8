#!/usr/bin/env bash
# An emulated cluster with throttled links on one machine: H "hosts", each a network namespace
# with one veth link into a bridge, every link limited to a rate by a token bucket (tc tbf) in
# both directions, and mpirun across them through the ssh launcher path (scripts/netns-agent.sh,
# no sshd). For validating the planner's network model (issue 15) against measured runs.
#
#   scripts/netns-cluster.sh up --hosts H --rate RATE [--delay D] [--queue Q]
#       hosts ebft-h0..ebft-h(H-1) at 10.77.0.10, .11, ... on bridge ebft-nbr0 (10.77.0.1);
#       RATE: tc syntax (500mbit, 1gbit, 10gbit, 2.5gbit) or 'none' (no qdisc, veth speed).
#       Each host's link is limited to RATE on transmit (tbf on the namespace's eth0) and on
#       receive (tbf on the root-side veth, i.e. the bridge port's egress), like a full-duplex NIC.
#       tbf burst = RATE x 1 ms (at least 16 kB), queue = Q of RATE (default 5ms) + burst.
#       --delay D (e.g. 50us, 1ms): one-way netem delay on each host's transmit side; needs the
#       kernel's netem qdisc (refused with a clear message when absent).
#       Stays up until `down`.
#   scripts/netns-cluster.sh down          remove namespaces, veths, bridge, state (idempotent)
#   scripts/netns-cluster.sh status        hosts, addresses, qdiscs with their counters
#   scripts/netns-cluster.sh run [--hosts H] [--rate RATE [--delay D] [--queue Q]] -np N
#                                [--slots S] [--bin PATH] [--mpi ARG]... -- ARGS...
#       mpirun -np N across the hosts, running `BIN ARGS...` (BIN: --bin, else $EBFT_DIST_BIN,
#       else .build/release/ebft-dist). With a cluster already `up`, uses it (--hosts must match
#       if given; --rate must not differ). Otherwise brings one up for this run only (--hosts and
#       --rate required) and removes it when the run ends, whatever the outcome; while it
#       lives, other `up`/`down`/`run` calls refuse to touch it.
#       S slots per host (default ceil(N/H)): ranks fill host 0 first, then host 1, ...
#       Ranks on one host talk through shared memory (vader), between hosts through TCP over
#       the throttled links (btl/oob restricted to 10.77.0.0/24). OPENBLAS_NUM_THREADS defaults
#       to max(1, cores / N) as in scripts/launch.sh (all hosts share this machine's cores).
#       --mpi ARG passes ARG to mpirun (repeat for each word: --mpi --map-by --mpi node).
#   scripts/netns-cluster.sh selftest [--rate RATE]
#       up 2 hosts (default 1gbit), check reachability both ways and to the bridge, push 24 MB
#       over TCP from h0 to h1 and check the token-bucket bound (bytes <= rate x time + bursts),
#       then down. Leaves nothing behind.
#
# Environment: EBFT_NETNS_VERBOSE=1 adds Open MPI launcher/oob debug output; EBFT_NETNS_LOG=FILE
# makes the agent log each daemon launch. Needs root, iproute2 (ip, tc), util-linux (unshare),
# Open MPI; the kernel needs network namespaces, veth, bridge and sch_tbf (sch_netem for --delay).
# Shares the ebft-h* namespace names with scripts/netns-hosts.sh: only one of the two can be up.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

PREFIX=ebft-h
BR=ebft-nbr0
BR_MAC=02:eb:f7:00:00:77   # fixed: a bridge otherwise takes its ports' lowest MAC (see hostfiles/README.md)
NET=10.77.0                # /24; bridge .1, host i at .(10+i)
SUBNET="$NET.0/24"
STATE_DIR=/run/ebft-netns-cluster
AGENT="$REPO/scripts/netns-agent.sh"
PROBE="$REPO/scripts/netns/tcp-probe.py"
MAX_HOSTS=200
MIN_BURST=16000            # bytes; must exceed one full-size frame (1514) with room to spare

die() { echo "netns-cluster: $*" >&2; exit 1; }
say() { echo "netns-cluster: $*"; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (creates network namespaces, veth pairs, a bridge and tc qdiscs). Try: sudo $0 $*"
}
need_tools() {
  local t
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || die "'$t' not found (needs iproute2: ip, tc; util-linux: unshare; Open MPI: mpirun; python3 for selftest)"; done
}

# --- argument checks -------------------------------------------------------------------------
# RATE in tc's syntax -> bytes per second (tc: kbit = 1e3, mbit = 1e6, gbit = 1e9 bit/s).
rate_bytes() {
  local r="$1"
  [[ "$r" =~ ^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit|tbit)$ ]] || return 1
  awk -v v="${BASH_REMATCH[1]}" -v u="${BASH_REMATCH[3]}" 'BEGIN {
    m = (u == "bit") ? 1 : (u == "kbit") ? 1e3 : (u == "mbit") ? 1e6 : (u == "gbit") ? 1e9 : 1e12
    b = v * m / 8; if (b < 1) exit 1; printf "%.0f\n", b }'
}
check_rate() {
  [ "$1" = none ] && return 0
  local b; b=$(rate_bytes "$1") || die "--rate must be a tc rate such as 100mbit, 1gbit, 10gbit, 2.5gbit (bit/kbit/mbit/gbit/tbit), or 'none'; got '$1'"
  [ "$b" -ge 125000 ] || die "--rate must be at least 1mbit (got '$1')"
}
check_time() {   # $1 option name, $2 value: a tc time (us, ms, s)
  [[ "$2" =~ ^[0-9]+(\.[0-9]+)?(us|ms|s)$ ]] || die "$1 must be a time such as 50us, 1ms, 0.5ms; got '$2'"
}
check_count() {  # $1 option name, $2 value, $3 max
  [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le "$3" ] || die "$1 must be an integer 1..$3; got '${2:-}'"
}
time_us() {      # tc time -> microseconds
  [[ "$1" =~ ^([0-9]+(\.[0-9]+)?)(us|ms|s)$ ]]
  awk -v v="${BASH_REMATCH[1]}" -v u="${BASH_REMATCH[3]}" 'BEGIN { printf "%.0f\n", v * (u == "us" ? 1 : u == "ms" ? 1e3 : 1e6) }'
}
burst_bytes() {  # RATE x 1 ms, at least MIN_BURST
  local b; b=$(rate_bytes "$1"); b=$(( b / 1000 )); [ "$b" -ge "$MIN_BURST" ] || b=$MIN_BURST; echo "$b"
}
limit_bytes() {  # queue: RATE x QUEUE + burst
  local b; b=$(rate_bytes "$1")
  awk -v b="$b" -v q="$(time_us "$2")" -v bu="$(burst_bytes "$1")" 'BEGIN { printf "%.0f\n", b * q / 1e6 + bu }'
}

# --- namespaces -----------------------------------------------------------------------------
our_namespaces() { ip netns list 2>/dev/null | awk -v p="^$PREFIX[0-9]+$" '$1 ~ p {print $1}' | sort -V; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }
is_up() { [ -f "$STATE_DIR/state" ] && [ -n "$(our_namespaces)" ]; }
state_get() { [ -f "$STATE_DIR/state" ] || return 0; awk -F= -v k="$1" '$1 == k {print substr($0, length(k) + 2)}' "$STATE_DIR/state"; }

# Probe in a scratch namespace that this kernel and these tools can do what `up` needs, so that
# a missing feature is reported as such (not as a half-built cluster).
preflight() {  # $1 rate, $2 delay ('' = none)
  local ns="ebft-probe$$" v="veth-probe$$" err
  err=$(ip netns add "$ns" 2>&1) || die "cannot create a network namespace ('ip netns add' said: $err)"
  if ! err=$(ip link add "$v" type veth peer name eth0 netns "$ns" 2>&1); then
    ip netns del "$ns" 2>/dev/null; die "cannot create a veth pair (kernel CONFIG_VETH? 'ip link' said: $err)"
  fi
  if [ "$1" != none ] && ! err=$(tc qdisc add dev "$v" root handle 1: tbf rate "$1" burst "$(burst_bytes "$1")" limit "$(limit_bytes "$1" 5ms)" 2>&1); then
    ip link del "$v" 2>/dev/null; ip netns del "$ns" 2>/dev/null
    die "the kernel has no usable tbf qdisc (CONFIG_NET_SCH_TBF; 'tc' said: $err); only --rate none works here"
  fi
  if [ -n "$2" ] && ! err=$(tc qdisc add dev "$v" $( [ "$1" = none ] && echo root || echo parent 1:1 ) netem delay "$2" 2>&1); then
    ip link del "$v" 2>/dev/null; ip netns del "$ns" 2>/dev/null
    local hint=CONFIG_NET_SCH_NETEM
    [ -r /proc/config.gz ] && grep -q '^# CONFIG_NET_SCH_NETEM is not set' <(zcat /proc/config.gz 2>/dev/null) && hint="$hint is not set in /proc/config.gz"
    die "--delay needs the netem qdisc, which this kernel lacks ($hint; 'tc' said: $err); run without --delay"
  fi
  ip link del "$v" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  err=$(ip link add "ebft-pbr$$" type bridge 2>&1) || die "cannot create a bridge (CONFIG_BRIDGE? 'ip link' said: $err)"
  ip link del "ebft-pbr$$" 2>/dev/null || true
}

# One direction of a host's link: tbf at RATE (root qdisc), netem delay as its child if asked.
shape() {  # $1 'ip -n NS' prefix or '', $2 dev, $3 rate, $4 queue, $5 delay
  local ns_args=() ; [ -n "$1" ] && ns_args=(-n "$1")
  tc "${ns_args[@]}" qdisc del dev "$2" root 2>/dev/null || true
  if [ "$3" != none ]; then
    tc "${ns_args[@]}" qdisc add dev "$2" root handle 1: tbf rate "$3" burst "$(burst_bytes "$3")" limit "$(limit_bytes "$3" "$4")"
    [ -z "$5" ] || tc "${ns_args[@]}" qdisc add dev "$2" parent 1:1 handle 10: netem delay "$5"
  elif [ -n "$5" ]; then
    tc "${ns_args[@]}" qdisc add dev "$2" root handle 1: netem delay "$5"
  fi
}

del_host() {
  local h="$1" pids
  pids=$(ip netns pids "$h" 2>/dev/null || true)
  if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; sleep 0.3; kill -9 $pids 2>/dev/null || true; fi
  ip netns del "$h" 2>/dev/null || true
  ip link del "veth-$h" 2>/dev/null || true
  rm -rf "/etc/netns/$h"
}

# down without the summary line; safe to call at any point of a failed `up`.
teardown() {
  local h
  for h in $(our_namespaces); do del_host "$h"; done
  rmdir /etc/netns 2>/dev/null || true    # only if empty
  ip link del "$BR" 2>/dev/null || true
  rm -rf "$STATE_DIR"
}

# A cluster that a `run` brought up for itself belongs to that run (state 'owner=PID'):
# nobody else may use, rebuild or remove it while that process lives.
busy_check() {
  local o; o=$(state_get owner)
  [ -n "$o" ] && [ "$o" != "$$" ] && kill -0 "$o" 2>/dev/null \
    && die "a 'run' (pid $o) is using a cluster it brought up for itself; wait for it to end"
  return 0
}

cmd_up() {  # hosts rate delay queue
  local n="$1" rate="$2" delay="$3" queue="$4" i h addr
  need_root up; need_tools ip tc
  # refuse to mix with scripts/netns-hosts.sh (same namespace names, other subnet)
  for h in $(our_namespaces); do
    ip -n "$h" -4 -o addr show dev eth0 2>/dev/null | grep -q "inet $NET\." \
      || die "namespace $h exists but is not ours (scripts/netns-hosts.sh is up?); run 'scripts/netns-hosts.sh down' first"
  done
  busy_check
  preflight "$rate" "$delay"
  is_up && [ -z "$(state_get owner)" ] && [ "$(our_namespaces | wc -l)" = "$n" ] && [ "$(state_get hosts)" = "$n" ] && [ "$(state_get rate)" = "$rate" ] && [ "$(state_get delay)" = "$delay" ] \
    && [ "$(state_get queue)" = "$queue" ] && { say "already up: $n host(s) at $rate"; return 0; }
  teardown   # simplest way to an exact configuration: start from nothing
  trap 'rc=$?; set +e; if [ $rc != 0 ]; then echo "netns-cluster: up failed; removing what was made" >&2; teardown; fi' EXIT
  mkdir -p "$STATE_DIR"
  ip link add "$BR" address "$BR_MAC" type bridge
  ip addr add "$NET.1/24" dev "$BR"
  ip link set "$BR" up
  for i in $(seq 0 $((n - 1))); do
    h="$PREFIX$i"; addr="$NET.$((10 + i))"
    ip netns add "$h"
    ip link add "veth-$h" type veth peer name eth0 netns "$h"
    ip link set "veth-$h" master "$BR" up
    ip -n "$h" addr add "$addr/24" dev eth0
    ip -n "$h" link set eth0 up
    ip -n "$h" link set lo up
    shape "$h" eth0 "$rate" "$queue" "$delay"   # host transmit (delay once per path)
    shape "" "veth-$h" "$rate" "$queue" ""        # host receive
    mkdir -p "/etc/netns/$h"
  done
  {
    echo "127.0.0.1 localhost"
    echo "$NET.1 ebft-nroot"
    for i in $(seq 0 $((n - 1))); do echo "$NET.$((10 + i)) $PREFIX$i"; done
  } > "$STATE_DIR/hosts"
  for i in $(seq 0 $((n - 1))); do cp "$STATE_DIR/hosts" "/etc/netns/$PREFIX$i/hosts"; done
  printf 'hosts=%s\nrate=%s\ndelay=%s\nqueue=%s\n' "$n" "$rate" "$delay" "$queue" > "$STATE_DIR/state"
  trap - EXIT
  local shaped="unthrottled (veth speed)"
  [ "$rate" = none ] || shaped="$rate each way per host (tbf burst $(burst_bytes "$rate") B, queue $queue + burst)"
  [ -z "$delay" ] || shaped="$shaped, +$delay one-way delay"
  say "$n host(s) up: $(our_namespaces | tr '\n' ' ')on $BR $NET.1/24; links $shaped"
}

cmd_down() {
  need_root down; need_tools ip
  busy_check
  teardown
  say "down (no $PREFIX* namespaces, no $BR, no $STATE_DIR)"
}

cmd_status() {
  need_tools ip tc
  if ! is_up; then
    if [ -n "$(our_namespaces)" ] || ip link show "$BR" >/dev/null 2>&1; then
      echo "netns-cluster: partial state (run 'down'): namespaces: $(our_namespaces | tr '\n' ' ')"
    else echo "netns-cluster: down"; fi
    return 0
  fi
  echo "netns-cluster: up: hosts=$(state_get hosts) rate=$(state_get rate) delay=$(state_get delay) queue=$(state_get queue)$( [ -z "$(state_get owner)" ] || echo " (temporary, for the run with pid $(state_get owner))")"
  ip -br addr show dev "$BR"
  local h
  for h in $(our_namespaces); do
    printf '%-9s %-14s pids: %s\n' "$h" "$(ip -n "$h" -4 -o addr show dev eth0 | awk '{print $4}')" "$(ip netns pids "$h" | wc -l)"
    echo "  transmit (eth0 in $h):"; tc -s -n "$h" qdisc show dev eth0 | sed 's/^/    /'
    echo "  receive (veth-$h):";     tc -s qdisc show dev "veth-$h" | sed 's/^/    /'
  done
}

# Bytes each host has sent and received over its link so far ("tx rx" per host, one line each):
# the root-side veth's counters, its rx being the host's transmit.
link_bytes() {
  local i d
  for i in $(seq 0 $(($1 - 1))); do
    d=/sys/class/net/veth-$PREFIX$i/statistics
    echo "$(cat "$d/rx_bytes" 2>/dev/null || echo 0) $(cat "$d/tx_bytes" 2>/dev/null || echo 0)"
  done
}
report_links() {  # hosts, counters before, after
  paste -d' ' <(echo "$2") <(echo "$3") | awk -v p="$PREFIX" '{
    printf "%s%s%d sent %.1f MB, received %.1f MB", (NR == 1 ? "netns-cluster: link traffic during the run: " : "; "), p, NR - 1, ($3 - $1) / 1e6, ($4 - $2) / 1e6 }
    END { print "" }'
}

# EXIT trap of a run that brought its own cluster up: stop mpirun if it still runs, remove all.
run_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "${MPIRUN_PID:-}" ]; then
    kill -TERM "$MPIRUN_PID" 2>/dev/null
    wait "$MPIRUN_PID" 2>/dev/null
  fi
  teardown
  say "run: cluster removed"
  exit "$rc"
}

cmd_run() {
  local hosts="" rate="" delay="" queue=5ms np="" slots="" bin="${EBFT_DIST_BIN:-$REPO/.build/release/ebft-dist}"
  local mpi=() ephemeral=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --hosts) hosts="${2:-}"; shift 2 || die "--hosts needs a value" ;;
      --rate) rate="${2:-}"; shift 2 || die "--rate needs a value" ;;
      --delay) delay="${2:-}"; shift 2 || die "--delay needs a value" ;;
      --queue) queue="${2:-}"; shift 2 || die "--queue needs a value" ;;
      -np|--np) np="${2:-}"; shift 2 || die "-np needs a value" ;;
      --slots) slots="${2:-}"; shift 2 || die "--slots needs a value" ;;
      --bin) bin="${2:-}"; shift 2 || die "--bin needs a value" ;;
      --mpi) [ $# -ge 2 ] || die "--mpi needs a value"; mpi+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) die "run: unknown option '$1' (options: --hosts H --rate R --delay D --queue Q -np N --slots S --bin PATH --mpi ARG, then -- ARGS)" ;;
    esac
  done
  [ -n "$np" ] || die "run: -np N is required"
  check_count -np "$np" 4096
  [ -x "$bin" ] || die "run: '$bin' is not an executable (build it, or pass --bin PATH / set EBFT_DIST_BIN)"
  [ -z "$hosts" ] || check_count --hosts "$hosts" "$MAX_HOSTS"
  [ -z "$rate" ] || check_rate "$rate"
  [ -z "$delay" ] || check_time --delay "$delay"
  check_time --queue "$queue"
  need_root run; need_tools ip tc mpirun unshare

  busy_check
  if is_up; then
    local up_hosts; up_hosts=$(state_get hosts)
    [ -z "$hosts" ] || [ "$hosts" = "$up_hosts" ] || die "run: the cluster is up with $up_hosts host(s), not $hosts ('down' first, or omit --hosts)"
    [ -z "$rate" ] || [ "$rate" = "$(state_get rate)" ] || die "run: the cluster is up at rate $(state_get rate), not $rate ('down' first, or omit --rate)"
    [ -z "$delay" ] || [ "$delay" = "$(state_get delay)" ] || die "run: the cluster is up with delay '$(state_get delay)', not $delay"
    hosts="$up_hosts"; rate=$(state_get rate)
  else
    [ -n "$hosts" ] || die "run: no cluster is up; give --hosts H and --rate R (or run 'up' first)"
    [ -n "$rate" ] || die "run: no cluster is up; give --rate R (or 'none') to bring one up for this run"
    ephemeral=1
    # from here on, whatever happens, the namespaces go away with this run
    trap run_cleanup EXIT
    trap 'exit 130' INT; trap 'exit 143' TERM
    cmd_up "$hosts" "$rate" "$delay" "$queue"
    # cmd_up cleared the EXIT trap on success: set it again
    trap run_cleanup EXIT
    echo "owner=$$" >> "$STATE_DIR/state"
  fi
  [ -n "$slots" ] || slots=$(( (np + hosts - 1) / hosts ))
  check_count --slots "$slots" 4096

  local hostfile="$STATE_DIR/hostfile" i
  {
    echo "# netns-cluster: host = the namespace's eth0 address (scripts/netns-agent.sh maps it to the namespace)"
    for i in $(seq 0 $((hosts - 1))); do echo "$NET.$((10 + i)) slots=$slots   # $PREFIX$i"; done
  } > "$hostfile"

  # a fresh environment for mpirun: nothing from an enclosing Open MPI/PMIx job
  local v
  for v in $(compgen -e); do case "$v" in OMPI_*|PMIX_*|OPAL_*|ORTE_*|PRTE_*) unset "$v" ;; esac; done
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  local threads=$(( $(nproc) / np )); [ "$threads" -ge 1 ] || threads=1
  export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$threads}"
  local verbose=()
  [ -n "${EBFT_NETNS_VERBOSE:-}" ] && verbose=(--mca plm_base_verbose 10 --mca oob_base_verbose 10)
  say "mpirun -np $np over $hosts host(s) x $slots slot(s), links $rate, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS: $bin $*"
  # - plm_rsh_agent: the ssh stand-in (enters the namespace, own UTS hostname);
  #   no_tree_spawn: mpirun starts every daemon itself
  # - oob and btl on the cluster subnet only, so that traffic between hosts crosses the
  #   throttled links; vader (shared memory) among the ranks of one host, as on a real node
  # - bind-to none: all "hosts" share this machine's cores; oversubscribe: ranks > cores is fine
  local before; before=$(link_bytes "$hosts")
  set +e
  mpirun -np "$np" --hostfile "$hostfile" --oversubscribe --bind-to none \
    --mca plm_rsh_agent "$AGENT" --mca plm_rsh_no_tree_spawn 1 \
    --mca oob_tcp_if_include "$SUBNET" \
    --mca btl tcp,self,vader --mca btl_tcp_if_include "$SUBNET" \
    -x OPENBLAS_NUM_THREADS -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "${verbose[@]}" "${mpi[@]}" "$bin" "$@" &
  MPIRUN_PID=$!
  wait "$MPIRUN_PID"; local rc=$?
  MPIRUN_PID=""
  set -e
  report_links "$hosts" "$before" "$(link_bytes "$hosts")"
  [ "$rc" = 0 ] || echo "netns-cluster: mpirun exited with status $rc" >&2
  return "$rc"
}

cmd_selftest() {
  local rate="$1"
  need_root selftest; need_tools ip tc python3
  is_up && die "selftest: a cluster is up; 'down' it first (selftest builds and removes its own)"
  [ -n "$(our_namespaces)" ] && die "selftest: $PREFIX* namespaces exist (scripts/netns-hosts.sh up?); remove them first"
  trap 'rc=$?; set +e; trap - EXIT; teardown; exit $rc' EXIT
  cmd_up 2 "$rate" "" 5ms
  trap 'rc=$?; set +e; trap - EXIT; teardown; exit $rc' EXIT
  local fail=0 a b out
  for a in 0 1; do
    b=$((1 - a))
    # reachability: a TCP connection from h$a to h$b's address (no ping binary needed)
    if out=$(python3 "$PROBE" pair "$PREFIX$b" "$NET.$((10 + b))" "$PREFIX$a" 0 2>&1); then
      echo "ok   $PREFIX$a -> $PREFIX$b ($NET.$((10 + b))): $out"
    else echo "FAIL $PREFIX$a -> $PREFIX$b: $out"; fail=1; fi
  done
  if out=$(ip netns exec "${PREFIX}0" python3 "$PROBE" connect "$NET.1" 2>&1); then
    echo "ok   ${PREFIX}0 -> bridge $NET.1: $out"
  else echo "FAIL ${PREFIX}0 -> bridge $NET.1: $out"; fail=1; fi
  # nothing outside the cluster is reachable (no default route)
  if ip netns exec "${PREFIX}0" python3 "$PROBE" connect 1.1.1.1 >/dev/null 2>&1; then
    echo "FAIL ${PREFIX}0 reaches 1.1.1.1 (the cluster must be isolated)"; fail=1
  else echo "ok   ${PREFIX}0 has no route out of $SUBNET"; fi
  if [ "$rate" = none ]; then
    if out=$(python3 "$PROBE" pair "${PREFIX}1" "$NET.11" "${PREFIX}0" 240000000 2>&1); then
      echo "info throughput h0 -> h1 unthrottled: $(echo "$out" | awk '{printf "%s B in %s s = %.3f GB/s", $2, $4, $2 / $4 / 1e9}')"
    else echo "FAIL throughput probe: $out"; fail=1; fi
  else
    # the token bucket's guarantee: bytes through a tbf in any interval t <= burst + rate x t.
    # Two buckets in series (h0 transmit, h1 receive); payload bytes < wire bytes, so
    # payload <= 2 x burst + rate x t must hold. Unthrottled veth moves GB/s and would fail it.
    local bytes=24000000 bps burst
    bps=$(rate_bytes "$rate"); burst=$(burst_bytes "$rate")
    if out=$(python3 "$PROBE" pair "${PREFIX}1" "$NET.11" "${PREFIX}0" "$bytes" 2>&1); then
      read -r got secs <<< "$(echo "$out" | awk '{print $2, $4}')"
      local verdict measured configured
      read -r verdict measured configured <<< "$(awk -v g="$got" -v s="$secs" -v r="$bps" -v bu="$burst" 'BEGIN {
        lim = 2 * bu + r * s; printf "%s %.3f %.3f", (g <= lim ? "ok" : "FAIL"), g / s / 1e9, r / 1e9 }')"
      echo "$verdict   throughput h0 -> h1: $got B in $secs s = $measured GB/s measured vs $configured GB/s configured ($rate); bound: bytes <= 2 x $burst + rate x time"
      [ "$verdict" = ok ] || fail=1
    else echo "FAIL throughput probe: $out"; fail=1; fi
  fi
  teardown
  trap - EXIT
  [ -z "$(our_namespaces)" ] && ! ip link show "$BR" >/dev/null 2>&1 || { echo "FAIL teardown left something behind"; fail=1; }
  [ "$fail" = 0 ] && say "selftest OK (2 hosts at $rate, torn down)" || { echo "netns-cluster: selftest FAILED" >&2; return 1; }
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# options of up / selftest
parse_up() {  # sets UP_HOSTS UP_RATE UP_DELAY UP_QUEUE
  UP_HOSTS=""; UP_RATE=""; UP_DELAY=""; UP_QUEUE=5ms
  while [ $# -gt 0 ]; do
    case "$1" in
      --hosts) UP_HOSTS="${2:-}"; shift 2 || die "--hosts needs a value" ;;
      --rate) UP_RATE="${2:-}"; shift 2 || die "--rate needs a value" ;;
      --delay) UP_DELAY="${2:-}"; shift 2 || die "--delay needs a value" ;;
      --queue) UP_QUEUE="${2:-}"; shift 2 || die "--queue needs a value" ;;
      *) die "unknown option '$1' (options: --hosts H --rate R [--delay D] [--queue Q])" ;;
    esac
  done
}

case "${1:-}" in
  up)
    shift; parse_up "$@"
    [ -n "$UP_HOSTS" ] || die "up: --hosts H is required"
    [ -n "$UP_RATE" ] || die "up: --rate R is required (tc rate such as 1gbit, or 'none')"
    check_count --hosts "$UP_HOSTS" "$MAX_HOSTS"; check_rate "$UP_RATE"; check_time --queue "$UP_QUEUE"
    [ -z "$UP_DELAY" ] || check_time --delay "$UP_DELAY"
    cmd_up "$UP_HOSTS" "$UP_RATE" "$UP_DELAY" "$UP_QUEUE" ;;
  down) shift; [ $# = 0 ] || die "down takes no arguments"; cmd_down ;;
  status) shift; [ $# = 0 ] || die "status takes no arguments"; cmd_status ;;
  run) shift; cmd_run "$@" ;;
  selftest)
    shift; parse_up "$@"
    [ -z "$UP_HOSTS" ] || [ "$UP_HOSTS" = 2 ] || die "selftest always uses 2 hosts"
    [ -z "$UP_DELAY" ] || die "selftest does not take --delay"
    UP_RATE="${UP_RATE:-1gbit}"; check_rate "$UP_RATE"
    cmd_selftest "$UP_RATE" ;;
  -h|--help|help) usage ;;
  "") usage >&2; exit 2 ;;
  *) echo "netns-cluster: unknown command '$1'" >&2; usage >&2; exit 2 ;;
esac
