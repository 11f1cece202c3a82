# Shared shell of bench/run.sh and bench/smoke.sh (sourced, not executed).
#
# The benchmark network: two namespaces named rbbench-PID-srv and
# rbbench-PID-cli, joined by a veth pair on a bridge, with no uplink:
#
#   rbbench-PID-srv: br0 192.168.77.1/24   the server under test (rackboot or a peer)
#   rbbench-PID-cli: vcli0 192.168.77.3/24  the load generators
#
# A server namespace and a client namespace on one veth pair. Everything
# this file starts is recorded by pid and stopped by pid; bench_cleanup (run
# on exit and on Ctrl-C) kills what is left in the namespaces and deletes
# them. Namespaces left by a run that was SIGKILLed are swept at the next
# start (their owner pid is gone). P8 adds namespaces of its own, on a
# bridge of their own (bench/run.sh, run_p8); the same rules hold.

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
NS_SRV=rbbench-$$-srv
NS_CLI=rbbench-$$-cli
BR=br0
SRV_IP=192.168.77.1
CLI_IP=192.168.77.3
HTTP_PORT=8080
CORES=$(nproc)
# Server on the last core, load generators on the first (as measured for bench/README.md: the
# server gets exactly one core and the generator does not steal from it).
SRV_CPU=${SRV_CPU:-$((CORES > 1 ? CORES - 1 : 0))}
CLI_CPU=${CLI_CPU:-0}
ALL_CPUS=${ALL_CPUS:-0-$((CORES - 1))}

BENCH_PIDS=()   # servers started by bench_start (and etcd members) not yet stopped
ETCD_PIDS=()    # the etcd members of the store under test (bench_etcd_start)
BENCH_SCRATCH=() # large scratch folders (P8's disks) removed on every exit
BENCH_RESTORE=() # commands that undo a run's changes to the host (P8's ARP table limits)

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: FAIL: %s\n' "$*" >&2; exit 1; }

# bench_need_root fails at once without root: namespaces, port 67, taskset.
bench_need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, ports 67/69, packages); run it with sudo"
}

# bench_packages [PKG...] installs the peers, and the extra packages
# given, from Debian packages when missing (BENCH_SKIP_APT=1 skips this on
# offline machines that have them).
bench_packages() {
  local pkgs=(dnsmasq tftpd-hpa nginx-light kea-admin wrk zstd ipxe casync iproute2 util-linux coreutils "$@")
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "${BENCH_SKIP_APT:-0}" = 1 ] && die "missing packages: ${missing[*]} (and BENCH_SKIP_APT=1)"
    say "installing ${missing[*]}"
    # Debian's maintainer scripts would start nginx, tftpd-hpa and dnsmasq
    # as services on the host; a policy-rc.d that says "no" for the length
    # of the install keeps them stopped. Each benchmark starts its own.
    local policy=/usr/sbin/policy-rc.d made=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
    fi
    apt-get update -q >&2 || { [ $made = 1 ] && rm -f "$policy"; die "apt-get update failed"; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    local rc=$?
    [ $made = 1 ] && rm -f "$policy"
    [ $rc = 0 ] || die "apt-get install ${missing[*]} failed"
  fi
  for p in perfdhcp dnsmasq in.tftpd nginx wrk zstd casync taskset; do
    command -v "$p" >/dev/null || die "$p not found after installing the packages"
  done
}

# bench_sweep removes rbbench- namespaces whose owner process is gone.
bench_sweep() {
  local ns pid p
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^rbbench-[0-9]+-[a-z0-9]+$'); do
    pid=${ns#rbbench-}; pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null && continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null && say "removed leftover namespace $ns"
  done
}

# bench_net_up creates the two namespaces (bench_cleanup removes them).
bench_net_up() {
  bench_sweep
  ip netns add "$NS_SRV" || die "ip netns add $NS_SRV"
  ip netns add "$NS_CLI" || die "ip netns add $NS_CLI"
  local S="ip -n $NS_SRV" C="ip -n $NS_CLI"
  $S link set lo up
  $S link add "$BR" type bridge stp_state 0 forward_delay 0
  $S addr add "$SRV_IP/24" dev "$BR"
  $S link add vcli-br type veth peer name vcli0 netns "$NS_CLI"
  $S link set vcli-br master "$BR" up
  $S link set "$BR" up
  $C link set lo up
  $C addr add "$CLI_IP/24" dev vcli0
  $C link set vcli0 up
  # The bridge forwards only once its port has left the learning state.
  local i
  for i in $(seq 50); do
    bridge -n "$NS_SRV" link show dev vcli-br 2>/dev/null | grep -q 'state forwarding' && return 0
    sleep 0.1
  done
  die "the bridge port of $NS_CLI is not forwarding after 5 s"
}

# bench_cleanup stops every server we started, kills whatever still runs in
# our namespaces and deletes them. Safe to call more than once.
bench_cleanup() {
  local p ns i
  # The server still running (bench_stop forgets the ones it stopped, so
  # no pid that the system may have reused is ever signalled).
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for i in $(seq 20); do
    [ ${#BENCH_PIDS[@]} -eq 0 ] && break
    local alive=0
    for p in "${BENCH_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  # Whatever still runs inside our own namespaces is ours: the two above
  # and P8's (rbbench-PID-app, -sw and one per agent, -aNNN).
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^rbbench-$$-[a-z0-9]+\$"); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  for p in "${BENCH_SCRATCH[@]}"; do rm -rf "$p"; done
  for p in "${BENCH_RESTORE[@]}"; do eval "$p"; done
  BENCH_RESTORE=()
  BENCH_PIDS=()
  ETCD_PIDS=()
}

# bench_traps installs the cleanup on exit and on Ctrl-C/TERM.
bench_traps() {
  # fd 9 is the original stderr: a trap may run while a command's stderr
  # is redirected to a file.
  exec 9>&2
  trap 'bench_cleanup' EXIT
  trap 'echo "bench: interrupted, cleaning up" >&9; exit 130' INT TERM
}

# bench_start NAME CPUS CMD...: run CMD in the server namespace pinned to
# CPUS, logging to $WORK/NAME.log; sets SRV_PID. `ip netns exec` and
# taskset exec in place, so the pid is the server's own.
bench_start() {
  local name=$1 cpus=$2; shift 2
  ip netns exec "$NS_SRV" taskset -c "$cpus" "$@" >"$WORK/$name.log" 2>&1 &
  SRV_PID=$!
  BENCH_PIDS+=("$SRV_PID")
}

# bench_stop stops the server SRV_PID and waits for it (at most 15 s, then
# SIGKILL): the next server needs its ports.
bench_stop() {
  local p=${SRV_PID:-}
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null
  local i q keep=()
  for i in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  for q in "${BENCH_PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  BENCH_PIDS=("${keep[@]}")
  SRV_PID=
}

# bench_etcd_start DIR MEMBERS CPUS: a fresh etcd cluster of MEMBERS
# members in the server namespace, on its loopback, pinned to CPUS, its
# data (and each member's log) under DIR; returns once every member
# answers a health check. Member i listens for clients on 2379 + 10000 i
# and for peers on 2380 + 10000 i. Sets ETCD_PIDS and ETCD_ENDPOINTS
# (host:port,...: what rackboot's --store etcd:// takes).
bench_etcd_start() {
  local dir=$1 members=$2 cpus=$3 i cluster="" urls=() name
  rm -rf "$dir"; mkdir -p "$dir"
  ETCD_ENDPOINTS=""
  for ((i = 0; i < members; i++)); do
    cluster+="${cluster:+,}m$i=http://127.0.0.1:$((2380 + 10000 * i))"
    ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}127.0.0.1:$((2379 + 10000 * i))"
    urls+=("http://127.0.0.1:$((2379 + 10000 * i))")
  done
  for ((i = 0; i < members; i++)); do
    name=m$i
    # --pre-vote: a member that was cut off does not disrupt the leader
    # when it comes back (the setting rackboot's docs ask for).
    ip netns exec "$NS_SRV" taskset -c "$cpus" etcd --name "$name" --data-dir "$dir/$name" \
      --listen-client-urls "${urls[i]}" --advertise-client-urls "${urls[i]}" \
      --listen-peer-urls "http://127.0.0.1:$((2380 + 10000 * i))" --initial-advertise-peer-urls "http://127.0.0.1:$((2380 + 10000 * i))" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "rbbench-$$" \
      --pre-vote=true --enable-pprof --logger zap --log-level warn >"$dir/$name.log" 2>&1 &
    ETCD_PIDS+=("$!")
    BENCH_PIDS+=("$!")
  done
  local ep
  ep=$(IFS=,; echo "${urls[*]}")
  for i in $(seq 300); do
    if ip netns exec "$NS_SRV" etcdctl --endpoints "$ep" --command-timeout 2s endpoint health >/dev/null 2>&1; then return 0; fi
    for name in "${ETCD_PIDS[@]}"; do
      kill -0 "$name" 2>/dev/null || { tail -20 "$dir"/m*.log >&2; die "etcd exited at start (logs in $dir)"; }
    done
    sleep 0.1
  done
  tail -20 "$dir"/m*.log >&2
  die "etcd is not healthy after 30 s (logs in $dir)"
}

# bench_etcd_stop stops the members started by bench_etcd_start and waits
# for them (at most 15 s, then SIGKILL): the next cluster needs the ports.
bench_etcd_stop() {
  local p i q keep
  for p in "${ETCD_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${ETCD_PIDS[@]}"; do
    for i in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    keep=()
    for q in "${BENCH_PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    BENCH_PIDS=("${keep[@]}")
  done
  ETCD_PIDS=()
}

# bench_wait_port PROTO PORT NAME: wait until the server listens (5 s at most
# for a peer, 30 s for rackboot, which stages files first).
bench_wait_port() {
  local proto=$1 port=$2 name=$3 i flag=-lnt
  [ "$proto" = udp ] && flag=-lnu
  for i in $(seq 300); do
    if ip netns exec "$NS_SRV" ss "$flag" "sport = :$port" 2>/dev/null | grep -q ":$port"; then return 0; fi
    kill -0 "$SRV_PID" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  tail -20 "$WORK/$name.log" >&2
  die "$name does not listen on $proto port $port after 30 s"
}

# cpu_ticks PID: utime+stime of a process, its reaped children (tftpd-hpa's
# forks) and its live children (nginx's workers), in clock ticks.
cpu_ticks() {
  local p t=0 c
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    c=$(awk '{print $14+$15+$16+$17}' "/proc/$p/stat" 2>/dev/null) && t=$((t + c))
  done
  echo "$t"
}

# busy_ticks: CPU time the whole machine spent busy, every core, in clock
# ticks: user, nice, system, irq and steal. softirq (packet processing on
# behalf of whoever sent or receives) is left out.
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$9; exit}' /proc/stat; }

# udp_rcvbuf_errors: UDP datagrams the server namespace dropped because a
# socket's receive buffer was full (/proc/net/snmp is per namespace).
udp_rcvbuf_errors() {
  ip netns exec "$NS_SRV" awk '/^Udp:/ { if (++n == 2) { print $6; exit } }' /proc/net/snmp
}

# measured OUT CPUS CMD...: run a load generator in the client namespace,
# its stdout to OUT (stderr to OUT.err, then shown), and measure who used the CPU meanwhile: sets
# M_SERVER, M_CLIENT (the generator) and M_OTHERS (everything else on the
# machine: other people's work sharing these cores), in % of one core, and
# M_SECS, and M_RCVBUF, the datagrams the server's sockets dropped for a
# full receive buffer; with an etcd store running (ETCD_PIDS), M_STORE is
# its members' CPU, which is not counted as other work. Returns the
# generator's exit status.
measured() {
  local out=$1 cpus=$2; shift 2
  local hz t0 t1 b0 b1 s0 s1 e0=0 e1=0 rc cl p
  hz=$(getconf CLK_TCK)
  local r0 r1
  r0=$(udp_rcvbuf_errors)
  for p in "${ETCD_PIDS[@]}"; do e0=$((e0 + $(cpu_ticks "$p"))); done
  t0=$(date +%s.%N); b0=$(busy_ticks); s0=$(cpu_ticks "${SRV_PID:-0}")
  local TIMEFORMAT='%3U %3S'
  { time ip netns exec "$NS_CLI" taskset -c "$cpus" "$@" >"$out" 2>"$out.err"; } 2>"$WORK/time.out"
  rc=$?
  t1=$(date +%s.%N); b1=$(busy_ticks); s1=$(cpu_ticks "${SRV_PID:-0}")
  for p in "${ETCD_PIDS[@]}"; do e1=$((e1 + $(cpu_ticks "$p"))); done
  r1=$(udp_rcvbuf_errors)
  M_RCVBUF=$(( ${r1:-0} - ${r0:-0} ))
  cl=$(awk '{print $1+$2}' "$WORK/time.out" 2>/dev/null || echo 0)
  read -r M_SECS M_SERVER M_CLIENT M_OTHERS M_STORE < <(awk -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" \
    -v s0="$s0" -v s1="$s1" -v e0="$e0" -v e1="$e1" -v cl="$cl" -v hz="$hz" 'BEGIN{
      secs = t1 - t0; srv = (s1 - s0) / hz; busy = (b1 - b0) / hz; st = (e1 - e0) / hz
      others = busy - srv - cl - st; if (others < 0) others = 0
      printf "%.3f %.1f %.1f %.1f %.1f\n", secs, srv / secs * 100, cl / secs * 100, others / secs * 100, st / secs * 100 }')
  cat "$out.err" >&2
  return $rc
}

# cli CPUS CMD...: run a load generator in the client namespace.
cli() {
  local cpus=$1; shift
  ip netns exec "$NS_CLI" taskset -c "$cpus" "$@"
}

# hexstr STRING: a string as hex, for perfdhcp -o.
hexstr() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
