#!/bin/bash
# rackboot against the peers people would otherwise run, on this machine, in
# one run ("make bench"; issue 7). Installs the peers from Debian packages,
# builds rackboot and the load generators, creates the network namespaces
# rbbench-PID-srv/-cli (removed at the end and on Ctrl-C), runs P1-P5, P9 and P8 and
# prints the table of ratios with the raw figures, the core count and date.
#
#   sudo bench/run.sh                 # everything (about 35 minutes; P8 needs ~28 GB of disk)
#   sudo bench/run.sh P2 P3           # some comparisons
#
# Environment (defaults in brackets):
#   REPS [3]        repetitions of every run; servers alternate who goes first
#   PERIOD [10]     seconds per perfdhcp / pxeload step (P1)
#   RATES ["10000 40000 80000 120000 160000"]  perfdhcp -r steps (P1)
#   STORM_N ["50 200"]  TFTP clients per storm (P2); LOSS_N [200] clients with
#                   1 % loss, fetching each of LOSS_FILES ["undionly.kpxe ipxe.efi"]
#   HTTP_SECS [10]  seconds per wrk run (P3); SCRIPT_CONNS [1000] wrk connections of the script tests,
#                   SCRIPT_CONNS_LOW [100] of the latency-at-low-concurrency script tests
#   P4_MIB [2048]   image size; P4_ITERS [3] rotations of the three variants
#   AGENTS [1000]   P5 agents; P5_SECS [60] how long they report; P5_REPS [REPS]
#   STORES ["bolt etcd"]  the registry stores P5 and P3's script test run rackboot
#                   on, interleaved like servers (issue 18): bolt (the default,
#                   DATA/registry.db), etcd (Debian's etcd, one member), etcd3 (three
#                   members on the server namespace's loopback); every other test
#                   runs on bolt only
#   ETCD_CPUS [the server's]  where the etcd members run (pinned as rackboot is:
#                   the store is part of the server under test)
#   P5_PROFILE=1    perf record (-g, 999 Hz) rackboot and its etcd members during
#                   each P5 run, into BENCH_OUT/p5-*.perf (perturbs the run a little)
#   P8_N ["20 50 100"] agents per wave (P8; each wave with peers on and off, and
#                   one agent alone first); P8_MIB [256] the image; P8_RATE [1gbit] the
#                   appliance's link (tc tbf); P8_AGENT_RATE [none] each agent's link;
#                   P8_MODES ["on off"]; P8_OFF_N [P8_N] the N that also run with peers
#                   off; P8_PEERS [all] serve's --peers when on; P8_ALONE [1];
#                   P8_LINGER [10m] the agents' -linger (the bench stops them once all
#                   ended); P8_TIMEOUT [30m] per wave; P8_DISKS [BENCH_OUT/p8/disks] where
#                   the agents' disk files go (not tmpfs; N × P8_MIB MiB are written);
#                   P8_REPS [REPS]
#   P9_PAIR [debian] the v1 -> v2 pair of P9: "debian" (the e2e test's debian-12.1
#                   and debian-12.2 = 12.1 + jq, built or found in the lab cache by
#                   e2e/osimage/cmd/mkdebian; needs root and the Debian mirror the
#                   first time) or "synth" (chunkbench mkpair, P9_SYNTH_MIB [256] MiB)
#   BENCH_OUT       where logs, results.jsonl and table.md go [/tmp/rbbench-DATE]
#   BENCH_SKIP_APT=1  do not install packages (fail if missing)
#   STRICT=1        fail when rackboot leaves any request unanswered (smoke.sh)
set -uo pipefail
source "$(dirname "$0")/lib.sh"

REPS=${REPS:-3}
PERIOD=${PERIOD:-10}
RATES=${RATES:-"10000 40000 80000 120000 160000"}
STORM_N=${STORM_N:-"50 200"}
LOSS_N=${LOSS_N:-200}
LOSS_FILES=${LOSS_FILES:-"undionly.kpxe ipxe.efi"}
HTTP_SECS=${HTTP_SECS:-10}
P4_MIB=${P4_MIB:-2048}
P4_ITERS=${P4_ITERS:-3}
AGENTS=${AGENTS:-1000}
P5_SECS=${P5_SECS:-60}
P5_REPS=${P5_REPS:-$REPS}
STORES=${STORES:-"bolt etcd"}
STRICT=${STRICT:-0}
PXE_CLIENTS=${PXE_CLIENTS:-1000}
SCRIPT_CONNS=${SCRIPT_CONNS:-1000}
SCRIPT_CONNS_LOW=${SCRIPT_CONNS_LOW:-100}
MAC_PREFIX=52:54:02       # the bench fleet (agentload -write-fleet)
WANT=("$@")
[ ${#WANT[@]} -gt 0 ] || WANT=(P1 P2 P3 P4 P5 P9 P8)
for w in "${WANT[@]}"; do
  case $w in P1|P2|P3|P4|P5|P8|P9) ;; *) echo "usage: bench/run.sh [P1 P2 P3 P4 P5 P8 P9]: unknown comparison $w" >&2; exit 2 ;; esac
done
for w in $STORES; do
  case $w in bolt|etcd|etcd[1-9]) ;; *) echo "bench/run.sh: STORES: unknown store $w (want bolt, etcd or etcdN: N members)" >&2; exit 2 ;; esac
done

bench_need_root
WORK=${BENCH_OUT:-/tmp/rbbench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$WORK" && chmod 755 "$WORK" || die "cannot create $WORK"
RES=$WORK/results.jsonl
: >"$RES"
BIN=$WORK/bin
bench_traps

want() { local w; for w in "${WANT[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

# check_failed MSG: in STRICT mode, a failed check of rackboot ends the run.
# Outside it the failure is reported and the run goes on: a full bench
# should print its table even when one figure misses.
check_failed() {
  if [ "$STRICT" = 1 ]; then die "$*"; fi
  echo "bench: WARNING: $*" >&2
}

# order REP SERVERS...: the servers in the order of repetition REP; odd
# repetitions start with rackboot, even ones end with it, so slow drift of
# the machine (other work, page cache, thermal) does not favour anyone.
order() {
  local rep=$1; shift
  if [ $((rep % 2)) = 1 ]; then echo "$@"; else echo "$@" | tr ' ' '\n' | tac | tr '\n' ' '; fi
}

# ---- preparation -----------------------------------------------------------

prepare() {
  local extra=()
  # Debian's etcd 3.4 for the etcd stores (its maintainer scripts start
  # no service without systemd, and policy-rc.d keeps them from it).
  [[ " $STORES " != *" etcd"* ]] || extra=(etcd-server etcd-client)
  bench_packages "${extra[@]}"
  command -v go >/dev/null || die "go not found in PATH (sudo may have reset it: sudo env PATH=\"\$PATH\" bench/run.sh)"
  say "building rackboot and the load generators into $BIN"
  mkdir -p "$BIN"
  (cd "$ROOT" && go build -o "$BIN/rackboot" ./cmd/rackboot) || die "go build ./cmd/rackboot"
  if want P8; then (cd "$ROOT" && go build -o "$BIN/rackboot-agent" ./cmd/rackboot-agent) || die "go build ./cmd/rackboot-agent"; fi
  (cd "$ROOT" && go build -o "$BIN/" ./bench/cmd/...) || die "go build ./bench/cmd/..."
  if want P3 || want P5; then
    local st
    for st in $STORES; do store_runnable "$st" && RUN_STORES+="$st "; done
  fi
  # wrk's connections, the agents' connections and the TFTP sockets.
  local need=$((SCRIPT_CONNS + AGENTS + 512))
  ulimit -n "$(ulimit -Hn)" 2>/dev/null
  [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need" ] ||
    die "the open-file limit is $(ulimit -n); this run needs $need (SCRIPT_CONNS, AGENTS, TFTP sockets)"

  # The iPXE binaries, dereferenced (Debian's ipxe.efi is a link to /boot):
  # rackboot's --ipxe-dir and the peers' TFTP root hold the same bytes.
  mkdir -p "$WORK/ipxe" "$WORK/tftp" "$WORK/www" "$WORK/artifacts" "$WORK/profiles"
  local f
  for f in undionly.kpxe ipxe.efi; do
    cp -L "/usr/lib/ipxe/$f" "$WORK/ipxe/$f" || die "/usr/lib/ipxe/$f missing (package ipxe)"
    cp "$WORK/ipxe/$f" "$WORK/tftp/$f"
  done
  if [ "$STRICT" = 1 ] || want P3; then
    # P3's 64 MiB file, random (incompressible), and a 140-byte iPXE script.
    head -c $((64 << 20)) /dev/urandom >"$WORK/www/big64.bin"
    ln -f "$WORK/www/big64.bin" "$WORK/artifacts/big64.bin" 2>/dev/null || cp "$WORK/www/big64.bin" "$WORK/artifacts/big64.bin"
    printf '#!ipxe\nkernel http://192.168.77.1:8080/vmlinuz initrd=initrd.img console=ttyS0\ninitrd --name initrd.img http://192.168.77.1:8080/initrd.img\nboot\n' >"$WORK/www/boot.ipxe"
  fi
  chmod -R a+rX "$WORK"
  # One fleet for every rackboot run: the P5 agents' MACs (P3 asks for
  # their scripts; P1's pxeload sends from them).
  "$BIN/agentload" -write-fleet "$WORK/profiles/fleet.yaml" -artifacts "$WORK/artifacts" -agents "$AGENTS" -mac-prefix "$MAC_PREFIX" || die "agentload -write-fleet"

  local commit peers
  commit=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(cd "$ROOT" && git status --porcelain -- . 2>/dev/null | head -1)" ]; then commit="$commit+changes"; fi
  peers=$(dpkg-query -W -f='${Package} ${Version}, ' casync dnsmasq tftpd-hpa nginx-light kea-admin wrk zstd etcd-server 2>/dev/null)
  "$BIN/benchtab" record -tag cmp=meta -tag "date=$(date -u '+%Y-%m-%d %H:%M UTC')" -tag "cores=$CORES" \
    -tag "cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)" -tag "kernel=$(uname -r)" \
    -tag "load=$(cut -d' ' -f1-3 /proc/loadavg)" -tag "commit=$commit" -tag "peers=${peers%, }" >>"$RES"
}

# ---- servers ---------------------------------------------------------------

# start_rackboot CPUS [FLAGS...]: rackboot serve in the server namespace
# with a fresh data directory, logging warnings only (the peers log nothing
# per request either). A P2 storm's clients all send from the client
# namespace's one address, where a rack's machines each have their own: so
# the per-address TFTP and HTTP caps (8 transfers, 64 connections by
# default) are off, as the peers have none.
# For the same reason the load generators' address is trusted to speak for
# the machines it names (--trust-routed): the link-layer check would refuse
# every simulated machine but the one whose MAC the client veth has.
start_rackboot() {
  local cpus=$1; shift
  rm -rf "$WORK/rb-data"
  bench_start rackboot "$cpus" "$BIN/rackboot" serve --profiles "$WORK/profiles" --data "$WORK/rb-data" \
    --artifacts "$WORK/artifacts" --ipxe-dir "$WORK/ipxe" --interface "$BR" \
    --http-port "$HTTP_PORT" --tftp-port 69 --dhcp-port 67 --tftp-max-per-client 0 --http-max-per-client 0 --trust-routed "$CLI_IP/32" --log-level warn --log-format json "$@"
  bench_wait_port udp 67 rackboot
  bench_wait_port udp 69 rackboot
  bench_wait_port tcp "$HTTP_PORT" rackboot
  bench_wait_port tcp 8443 rackboot # the agent API, over HTTPS (--https-port default)
  sleep 0.5 # sockets open before the servers start; let them start
}

# dnsmasq in proxy mode as a site would configure it for P1, with quiet-dhcp
# (logging off, the same work as rackboot at --log-level warn).
start_dnsmasq_proxy() {
  cat >"$WORK/dnsmasq-proxy.conf" <<EOF
port=0
interface=$BR
bind-interfaces
dhcp-leasefile=$WORK/dnsmasq.leases
dhcp-match=set:ipxe,175
dhcp-match=set:efi,option:client-arch,7
dhcp-match=set:efi,option:client-arch,9
dhcp-range=192.168.77.0,proxy,255.255.255.0
pxe-service=tag:!ipxe,x86PC,"rackboot lab: chain iPXE",undionly.kpxe
pxe-service=tag:!ipxe,BC_EFI,"rackboot lab: chain iPXE",ipxe.efi
pxe-service=tag:!ipxe,X86-64_EFI,"rackboot lab: chain iPXE",ipxe.efi
dhcp-boot=tag:ipxe,http://$SRV_IP:$HTTP_PORT/boot.ipxe,,$SRV_IP
quiet-dhcp
EOF
  bench_start dnsmasq "$SRV_CPU" dnsmasq -k --conf-file="$WORK/dnsmasq-proxy.conf" --log-facility=-
  bench_wait_port udp 67 dnsmasq
}

start_server() { # start_server NAME CPUS: the P-specific peers
  case $1 in
    hpa) bench_start hpa "$2" in.tftpd -L -s -u tftp -a "$SRV_IP:69" "$WORK/tftp"; bench_wait_port udp 69 hpa ;;
    dnsmasq-tftp) bench_start dnsmasq-tftp "$2" dnsmasq -k --port=0 --interface="$BR" --bind-interfaces \
                    --enable-tftp --tftp-root="$WORK/tftp" --log-facility=- --conf-file=/dev/null
                  bench_wait_port udp 69 dnsmasq-tftp ;;
    nginx) write_nginx_conf; bench_start nginx "$2" nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;'
           bench_wait_port tcp "$HTTP_PORT" nginx ;;
    *) die "unknown server $1" ;;
  esac
}

# nginx as tuned for P3: a worker per core, sendfile, access_log off.
write_nginx_conf() {
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $CORES;
worker_rlimit_nofile 16384;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  access_log off;
  keepalive_timeout 65;
  client_body_temp_path $WORK/nginx/tmp;
  proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp;
  scgi_temp_path $WORK/nginx/tmp;
  server { listen $SRV_IP:$HTTP_PORT backlog=4096; root $WORK/www; }
}
EOF
}

# ---- registry stores (issue 18) ------------------------------------------------

# rb_server STORE: the server name of rackboot on a store, as start and
# order take it: rackboot (bolt, the default, as every other test runs)
# or rackboot@etcd, rackboot@etcd3.
rb_server() { if [ "$1" = bolt ]; then echo rackboot; else echo "rackboot@$1"; fi; }

# store_of SERVER: the store of a rackboot server name (bolt for plain
# rackboot), empty for a peer.
store_of() {
  case $1 in rackboot) echo bolt ;; rackboot@*) echo "${1#rackboot@}" ;; esac
}

# store_runnable STORE: whether this rackboot and machine can run STORE.
# A missing --store flag (a rackboot before issue 18's wiring) is a
# failure under STRICT, a warning otherwise, and the store is left out.
store_runnable() {
  [ "$1" = bolt ] && return 0
  local help
  help=$("$BIN/rackboot" serve -h 2>&1)
  if [[ $help != *"-store "* ]]; then
    check_failed "rackboot serve has no --store flag: store $1 not run"
    return 1
  fi
  command -v etcd >/dev/null && command -v etcdctl >/dev/null || { check_failed "etcd not found (packages etcd-server etcd-client): store $1 not run"; return 1; }
  return 0
}

# RUN_STORES: the STORES this run can measure (set by prepare, in the
# main shell: under STRICT a store that cannot run ends the run).
RUN_STORES=""

# start_rackboot_on STORE CPUS [FLAGS...]: a fresh etcd cluster of the
# store's members (pinned to ETCD_CPUS, by default rackboot's CPUS: the
# server side gets the same cores whichever store it uses, as bbolt's
# work runs inside rackboot's process), then rackboot on it.
start_rackboot_on() {
  local store=$1 cpus=$2 members; shift 2
  if [ "$store" = bolt ]; then start_rackboot "$cpus" "$@"; return; fi
  members=${store#etcd}
  bench_etcd_start "$WORK/etcd-data" "${members:-1}" "${ETCD_CPUS:-$cpus}"
  start_rackboot "$cpus" --store "etcd://$ETCD_ENDPOINTS" "$@"
}

# stop_servers stops the server under test and its etcd store, if any.
stop_servers() {
  bench_stop
  bench_etcd_stop
}

# store_tags SERVER: benchtab's tags of a rackboot run's store: the
# store's name and its members (0 for bolt, in-process).
store_tags() {
  local st
  st=$(store_of "$1")
  [ -n "$st" ] || return 0
  local members=0 where=""
  if [ "$st" != bolt ]; then members=${st#etcd}; members=${members:-1}; where="-tag etcd_cpus=${ETCD_CPUS:-as-server}"; fi
  echo "-tag store=$st -tag store_members=$members $where"
}

# start SERVER CPUS [FLAGS...]: any server of the bench by name.
start() {
  local server=$1 cpus=$2; shift 2
  case $server in
    rackboot) start_rackboot "$cpus" "$@" ;;
    rackboot@*) start_rackboot_on "${server#rackboot@}" "$cpus" "$@" ;;
    dnsmasq-proxy) start_dnsmasq_proxy ;;
    *) start_server "$server" "$cpus" ;;
  esac
}

# mflags: the measured() figures as benchtab -m flags.
mflags() {
  echo "-m secs=$M_SECS -m server_cpu_pct=$M_SERVER -m client_cpu_pct=$M_CLIENT -m others_pct=$M_OTHERS -m server_rcvbuf_drops=$M_RCVBUF"
  [ ${#ETCD_PIDS[@]} = 0 ] || echo "-m store_cpu_pct=$M_STORE"
}

# gen_record OUT DESC [FLAGS...]: pass a Go generator's record through
# benchtab json with the CPU figures; a missing record is a failure.
gen_record() {
  local out=$1 desc=$2; shift 2
  # shellcheck disable=SC2046
  "$BIN/benchtab" json $(mflags) "$@" <"$out" >>"$RES" || check_failed "$desc: no result"
}

# Every comparison interleaves finely: for each step (a rate, a storm, a
# test) and repetition, each server in turn is started fresh, measured and
# stopped, the order alternating between repetitions. Other work on this
# machine comes and goes by the minute; this way it falls on every server
# alike, and each record carries how much CPU it took (others_pct).

# ---- P1 proxy-DHCP ----------------------------------------------------------

P1_O60_BIOS=$(hexstr "PXEClient:Arch:00000:UNDI:002001")

p1_perfdhcp() { # p1_perfdhcp SERVER REP RATE
  local server=$1 rep=$2 rate=$3 req="" out
  out="$WORK/p1-$server-$rate-$rep.out"
  [ "$server" = rackboot ] && [ "$STRICT" = 1 ] && req="received>0,drops=0"
  # perfdhcp's proxy form; -W waits for the last answers so that a DISCOVER
  # still in flight at the end is not counted as a drop.
  measured "$out" "$CLI_CPU" perfdhcp -4 -g single -l "$CLI_IP" -i -R 100000 -r "$rate" -p "$PERIOD" -W 500000 \
    -o "60,$P1_O60_BIOS" -o 93,0000 "$SRV_IP"
  # shellcheck disable=SC2046
  "$BIN/benchtab" perfdhcp -period "$PERIOD" -tag cmp=P1 -tag tool=perfdhcp -tag arch=bios -tag "server=$server" \
    -tag "rate=$rate" -tag "rep=$rep" $(mflags) -require "$req" <"$out" >>"$RES" ||
    { tail -20 "$out" >&2; check_failed "P1 perfdhcp against $server at $rate/s"; }
}

p1_pxeload() { # p1_pxeload SERVER REP RATE
  local server=$1 rep=$2 rate=$3 strict=() out
  out="$WORK/p1-pxeload-$server-$rate-$rep.out"
  [ "$server" = rackboot ] && [ "$STRICT" = 1 ] && strict=(-require-all)
  measured "$out" "$CLI_CPU" "$BIN/pxeload" -iface vcli0 -rate "$rate" -duration "${PERIOD}s" -clients "$PXE_CLIENTS" \
    -mac-prefix "$MAC_PREFIX" -arch 0,7 -tag cmp=P1 -tag tool=pxeload -tag "server=$server" -tag "rate=$rate" \
    -tag "rep=$rep" -tag "clients=$PXE_CLIENTS" "${strict[@]}" ||
    check_failed "P1 pxeload against $server at $rate/s"
  gen_record "$out" "P1 pxeload against $server"
}

run_p1() {
  say "P1 proxyDHCP: perfdhcp -i at ${RATES// /, }/s and pxeload at ${PXE_RATE:-10000}/s, ${PERIOD} s each, $REPS repetitions"
  local rep server rate
  for rate in $RATES pxeload; do
    for rep in $(seq "$REPS"); do
      for server in $(order "$rep" rackboot dnsmasq); do
        # Discovery on: perfdhcp's clients are random MACs, and dnsmasq
        # answers every PXE client too.
        if [ "$server" = rackboot ]; then start rackboot "$SRV_CPU" --discovery; else start dnsmasq-proxy "$SRV_CPU"; fi
        if [ "$rate" = pxeload ]; then
          p1_pxeload "$server" "$rep" "${PXE_RATE:-10000}"
        else
          p1_perfdhcp "$server" "$rep" "$rate"
        fi
        bench_stop
      done
    done
  done
}

# ---- P2 TFTP ---------------------------------------------------------------

p2_storm() { # p2_storm SERVER REP FILE N LOSS
  local server=$1 rep=$2 file=$3 n=$4 loss=$5 strict=() out
  out="$WORK/p2-$server-$file-$n-$loss-$rep.out"
  [ "$server" = rackboot ] && [ "$STRICT" = 1 ] && strict=(-require-all)
  measured "$out" "$CLI_CPU" "$BIN/tftpstorm" -server "$SRV_IP:69" -n "$n" -files "$file" -blksize 1468 -ref "$WORK/tftp" \
    -loss "$loss" -seed "$rep" -tag cmp=P2 -tag "server=$server" -tag "file=$file" -tag "n=$n" -tag "loss=$loss" \
    -tag "rep=$rep" "${strict[@]}" || check_failed "P2 storm of $n × $file (loss $loss) against $server"
  gen_record "$out" "P2 storm against $server"
}

run_p2() {
  say "P2 TFTP storms: N = $STORM_N × {undionly.kpxe, ipxe.efi} at blksize 1468, and $LOSS_N × {$LOSS_FILES} with 1 % loss; $REPS repetitions"
  local rep server n file steps=() step
  for file in undionly.kpxe ipxe.efi; do for n in $STORM_N; do steps+=("$file:$n:0"); done; done
  if [ -n "$LOSS_N" ]; then for file in $LOSS_FILES; do steps+=("$file:$LOSS_N:0.01"); done; fi
  for step in "${steps[@]}"; do
    IFS=: read -r file n loss <<<"$step"
    for rep in $(seq "$REPS"); do
      for server in $(order "$rep" rackboot hpa dnsmasq-tftp); do
        start "$server" "$SRV_CPU"
        p2_storm "${server%-tftp}" "$rep" "$file" "$n" "$loss"
        bench_stop
      done
    done
  done
}

# ---- P3 HTTP ---------------------------------------------------------------

p3_wrk() { # p3_wrk SERVER REP TEST CONNS URL [ENV...]; SERVER rackboot@STORE: rackboot on an etcd store
  local server=$1 rep=$2 test=$3 conns=$4 url=$5 req=""; shift 5
  local out="$WORK/p3-${server/@/-}-$test-$rep.out"
  [ "${server%@*}" = rackboot ] && [ "$STRICT" = 1 ] && req="requests>0,non2xx=0,socket_errors=0"
  # wrk in the client namespace, unpinned, -t2.
  measured "$out" "$ALL_CPUS" env "$@" wrk -t2 -c"$conns" -d"${HTTP_SECS}s" --timeout 30s -s "$BENCH/wrk/report.lua" "$url"
  # shellcheck disable=SC2046
  "$BIN/benchtab" wrk -tag cmp=P3 -tag "server=${server%@*}" $(store_tags "$server") -tag "test=$test" -tag "rep=$rep" -tag "conns=$conns" -tag "hosts=${HOSTS_TAG:-}" \
    $(mflags) -require "$req" <"$out" >>"$RES" || { tail -20 "$out" >&2; check_failed "P3 $test against $server"; }
}

run_p3() {
  say "P3 HTTP: 100 × 64 MiB downloads and 1,000 connections of scripts, wrk ${HTTP_SECS} s; $REPS repetitions"
  local rep server test base=http://$SRV_IP:$HTTP_PORT st others=()
  # The script test also runs rackboot on each other store (issue 18).
  for st in $RUN_STORES; do [ "$st" = bolt ] || others+=("$(rb_server "$st")"); done
  for test in big script; do
    for rep in $(seq "$REPS"); do
      local servers=(rackboot nginx)
      [ "$test" = script ] && servers=(rackboot "${others[@]}" nginx)
      for server in $(order "$rep" "${servers[@]}"); do
        # P3: unpinned, the server and wrk share every core.
        start "$server" "$ALL_CPUS"
        case $server:$test in
          rackboot:big) p3_wrk rackboot "$rep" big 100 "$base/artifacts/big64.bin" ;;
          nginx:big) p3_wrk nginx "$rep" big 100 "$base/big64.bin" ;;
          rackboot:script)
            HOSTS_TAG=$AGENTS p3_wrk rackboot "$rep" script "$SCRIPT_CONNS" "$base/ipxe" RBBENCH_MACS="$AGENTS" RBBENCH_PATH=/ipxe
            p3_wrk rackboot "$rep" bootipxe "$SCRIPT_CONNS" "$base/boot.ipxe"
            HOSTS_TAG=$AGENTS p3_wrk rackboot "$rep" script100 "$SCRIPT_CONNS_LOW" "$base/ipxe" RBBENCH_MACS="$AGENTS" RBBENCH_PATH=/ipxe ;;
          rackboot@*:script)
            HOSTS_TAG=$AGENTS p3_wrk "$server" "$rep" script "$SCRIPT_CONNS" "$base/ipxe" RBBENCH_MACS="$AGENTS" RBBENCH_PATH=/ipxe ;;
          nginx:script)
            p3_wrk nginx "$rep" tiny "$SCRIPT_CONNS" "$base/boot.ipxe"
            p3_wrk nginx "$rep" tiny100 "$SCRIPT_CONNS_LOW" "$base/boot.ipxe" ;;
        esac
        stop_servers
      done
    done
  done
}

# ---- P4 imaging ------------------------------------------------------------

run_p4() {
  say "P4 image write: go test -bench Stream ./imaging, ${P4_MIB} MiB, ${P4_ITERS} rotations (stream, O_DIRECT, shell)"
  local out=$WORK/p4.out b0 b1 t0 t1 hz
  hz=$(getconf CLK_TCK)
  t0=$(date +%s.%N); b0=$(busy_ticks)
  # BenchmarkStream makes the image (zstd -3 of OS-like data) and, after a
  # warm-up, runs Stream (page cache), Stream (O_DIRECT, as the installer)
  # and the shell pipeline in rotating order, each ending with fsync.
  (cd "$ROOT" && TMPDIR=$WORK RACKBOOT_BENCH_SIZE=$P4_MIB go test -run '^$' -bench 'Stream/(zstd|raw)$' \
    -benchtime "${P4_ITERS}x" -timeout 60m ./imaging) >"$out" 2>&1 || { tail -30 "$out" >&2; check_failed "P4 go test -bench Stream failed"; return; }
  t1=$(date +%s.%N); b1=$(busy_ticks)
  # Both cores are the benchmark's here; report the machine's load instead.
  local busy
  busy=$(awk -v a="$b0" -v b="$b1" -v t0="$t0" -v t1="$t1" -v hz="$hz" 'BEGIN{printf "%.1f", (b-a)/hz/(t1-t0)*100}')
  "$BIN/benchtab" gobench -tag cmp=P4 -tag "size_mib=$P4_MIB" -tag server=rackboot -m "machine_busy_pct=$busy" \
    -require "direct_mb_per_s>0" <"$out" >>"$RES" || { tail -30 "$out" >&2; check_failed "P4: no benchmark figures"; }
}

# ---- P5 agents ---------------------------------------------------------------

run_p5() {
  local stores=$RUN_STORES
  say "P5 agents: $AGENTS agents post progress every second for ${P5_SECS} s, rackboot on ${stores% }; $P5_REPS repetitions"
  local rep strict=() out server st
  [ "$STRICT" = 1 ] && strict=(-require-all)
  for rep in $(seq "$P5_REPS"); do
    # Each store in turn, the order alternating between repetitions.
    # shellcheck disable=SC2046
    for server in $(order "$rep" $(for st in $stores; do rb_server "$st"; done)); do
      out=$WORK/p5-${server/@/-}-$rep.out
      start "$server" "$SRV_CPU"
      # The agents take the API's https URL from their scripts and trust the
      # CA rackboot generated in its data directory, as the installer does.
      local perf=""
      if [ "${P5_PROFILE:-0}" = 1 ]; then
        perf record -q -F 999 -g -p "$(IFS=,; echo "$SRV_PID${ETCD_PIDS[*]:+,${ETCD_PIDS[*]}}")" -o "${out%.out}.perf" 2>"${out%.out}.perf.log" &
        perf=$!
      fi
      # shellcheck disable=SC2046
      measured "$out" "$CLI_CPU" "$BIN/agentload" -base "http://$SRV_IP:$HTTP_PORT" -ca "$WORK/rb-data/tls/ca.pem" -agents "$AGENTS" -mac-prefix "$MAC_PREFIX" \
        -interval 1s -duration "${P5_SECS}s" -tag cmp=P5 -tag server=rackboot $(store_tags "$server") -tag "agents=$AGENTS" -tag "secs=$P5_SECS" -tag "rep=$rep" \
        "${strict[@]}" || check_failed "P5 agents against $server"
      [ -z "$perf" ] || { kill -INT "$perf"; wait "$perf"; }
      gen_record "$out" "P5 agents against $server"
      # What the servers counted meanwhile, for reading the run afterwards:
      # rackboot's metrics, and etcd's (request, disk and raft histograms).
      ip netns exec "$NS_SRV" curl -s --max-time 5 "http://$SRV_IP:$HTTP_PORT/metrics" >"${out%.out}.rackboot-metrics.txt"
      [ ${#ETCD_PIDS[@]} = 0 ] || ip netns exec "$NS_SRV" curl -s --max-time 5 http://127.0.0.1:2379/metrics >"${out%.out}.etcd-metrics.txt"
      stop_servers
    done
  done
}

# ---- P9 chunked images ---------------------------------------------------------

# P9 (issue 14): content-addressed chunked images against casync on the same
# v1 -> v2 pair, and a fresh install from chunks against today's zstd
# stream. Local, like P4: one counting HTTP server (chunkbench serve, on
# loopback) serves both tools' stores for every run, so "fetched" is the
# bytes it sent, counted alike. Nothing is pinned; the page cache is left
# as it is (equally warm for both: every file read was just written or
# read), and every run starts after sync(1) from a target made the same way.
P9_PAIR=${P9_PAIR:-debian}
P9_SYNTH_MIB=${P9_SYNTH_MIB:-256}
P9_CHUNKS=16384:65536:262144 # imaging's MinChunk:AvgChunk:MaxChunk, casync's defaults, given explicitly

# p9_pair DIR: the raw v1.img and v2.img in DIR, and v2's zstd file (the
# stream's) in DIR/www/v2.img.zst.
p9_pair() {
  local d=$1 spec zst v
  case $P9_PAIR in
    debian)
      # The e2e pair (TestDebian): debian-12.1, and debian-12.2 = the same
      # plus the package jq. mkdebian finds them in the lab cache when they
      # were built from the same inputs, or builds them (minutes).
      for v in 1 2; do
        spec=(debian-12.1)
        [ "$v" = 2 ] && spec=(-package jq debian-12.2)
        (cd "$ROOT" && go run ./e2e/osimage/cmd/mkdebian "${spec[@]}") >"$d/mkdebian-v$v.json" 2>"$d/mkdebian-v$v.log" ||
          { tail -20 "$d/mkdebian-v$v.log" >&2; die "P9: mkdebian ${spec[*]} failed"; }
        zst=$(sed -n 's/^ *"path": "\(.*\)",$/\1/p' "$d/mkdebian-v$v.json" | head -1)
        [ -f "$zst" ] || die "P9: no image path in $d/mkdebian-v$v.json"
        zstd -dq -f "$zst" -o "$d/v$v.img" || die "P9: zstd -d $zst"
        [ "$v" = 2 ] && { ln -f "$zst" "$d/www/v2.img.zst" 2>/dev/null || cp "$zst" "$d/www/v2.img.zst"; }
      done ;;
    synth)
      "$BIN/chunkbench" mkpair -size-mib "$P9_SYNTH_MIB" "$d/v1.img" "$d/v2.img" || die "P9: chunkbench mkpair"
      zstd -q -3 -T0 -f "$d/v2.img" -o "$d/www/v2.img.zst" || die "P9: zstd -3" ;;
    *) die "P9_PAIR=$P9_PAIR: want debian or synth" ;;
  esac
}

# p9_serve: the counting server over DIR/www for one run; sets SRV_PID
# (bench_stop stops it) and P9_URL.
p9_serve() {
  local d=$1 i
  rm -f "$d/ready"
  "$BIN/chunkbench" serve -dir "$d/www" -ready "$d/ready" >"$d/served.txt" 2>>"$d/serve.log" &
  SRV_PID=$!
  BENCH_PIDS+=("$SRV_PID")
  for i in $(seq 100); do [ -s "$d/ready" ] && break; sleep 0.05; done
  [ -s "$d/ready" ] || die "P9: chunkbench serve did not start (see $d/serve.log)"
  P9_URL=http://$(cat "$d/ready")
}

p9_warn() { echo "bench: WARNING: $*" >&2; }

# p9_run DIR REP CASE: one timed run. The clock runs from the tool's
# start to its exit plus the target's fsync (sync FILE; imaging already
# syncs, casync does not), then the server says what it sent and the
# target is compared with v2.
p9_run() {
  local d=$1 rep=$2 c=$3 t=$1/target.img out=$1/$3-$2.out cmd tool
  rm -f "$t"
  # The update cases start from a copy of v1 on the target, as a
  # reinstalled machine's disk is.
  case $c in update|casync-inplace) cp --sparse=always "$d/v1.img" "$t" || die "P9: cp v1.img" ;; esac
  sync
  p9_serve "$d"
  local u=$P9_URL
  case $c in
    update) cmd=("$BIN/chunkbench" assemble -index "$u/v2.idx" -seed "$u/v1.idx" -store "$u/store" -target "$t") ;;
    fresh) cmd=("$BIN/chunkbench" assemble -fresh -index "$u/v2.idx" -store "$u/store" -target "$t") ;;
    stream) cmd=("$BIN/chunkbench" stream -direct -url "$u/v2.img.zst" -sha256 "$P9_SHA" -target "$t") ;;
    stream-cache) cmd=("$BIN/chunkbench" stream -url "$u/v2.img.zst" -sha256 "$P9_SHA" -target "$t") ;;
    # casync as its documentation has it: v1 as a separate seed file,
    # extracted into a new file.
    casync-seed) cmd=(casync extract -v --store="$u/castore/" --seed="$d/v1.img" --reflink=no --hardlink=no "$u/v2.caibx" "$t") ;;
    # casync over a copy of v1, its only seed the output itself
    # (--seed-output, the default): the same situation as rackboot's update.
    casync-inplace) cmd=(casync extract -v --store="$u/castore/" --reflink=no --hardlink=no "$u/v2.caibx" "$t") ;;
  esac
  local hz t0 t1 b0 b1 s1 rc
  hz=$(getconf CLK_TCK)
  t0=$(date +%s.%N); b0=$(busy_ticks)
  local TIMEFORMAT='%3U %3S'
  { time { "${cmd[@]}" >"$out" 2>"$out.err" && sync "$t"; }; } 2>"$d/time.out"
  rc=$?
  t1=$(date +%s.%N); b1=$(busy_ticks); s1=$(cpu_ticks "$SRV_PID")
  bench_stop
  local reqs bytes
  read -r reqs bytes <"$d/served.txt"
  tool=rackboot; case $c in casync-*) tool=casync ;; esac
  # A failure of casync is reported, not a failure of the bench (STRICT
  # is about rackboot); its row then says "not run".
  local fail=check_failed
  [ "$tool" = casync ] && fail=p9_warn
  if [ "$rc" != 0 ]; then
    tail -5 "$out.err" >&2; $fail "P9 $c (rep $rep) failed"; return
  fi
  cmp -s "$t" "$d/v2.img" || { $fail "P9 $c (rep $rep): the target is not v2"; return; }
  local secs tool_cpu srv_cpu busy
  read -r secs tool_cpu srv_cpu busy < <(awk -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" -v s1="$s1" -v hz="$hz" \
    -v cl="$(awk '{print $1+$2}' "$d/time.out")" 'BEGIN{ secs = t1 - t0
      printf "%.3f %.3f %.3f %.1f\n", secs, cl, s1 / hz, (b1 - b0) / hz / secs * 100 }')
  local m=(-tag cmp=P9 -tag "tool=$tool" -tag "case=${c#casync-}" -tag "rep=$rep" -tag "pair=$P9_PAIR"
    -m "secs=$secs" -m "served_bytes=${bytes:-0}" -m "requests=${reqs:-0}" -m "tool_cpu_s=$tool_cpu" -m "server_cpu_s=$srv_cpu"
    -m "machine_busy_pct=$busy" -m "image_bytes=$P9_SIZE" -m "zst_bytes=$P9_ZST")
  if [ "$tool" = rackboot ]; then
    "$BIN/benchtab" json "${m[@]}" <"$out" >>"$RES" || check_failed "P9 $c: no record"
  else
    "$BIN/benchtab" record "${m[@]}" >>"$RES"
  fi
  rm -f "$t"
}

run_p9() {
  say "P9 chunked images: the $P9_PAIR v1 -> v2 pair, rackboot (chunkstore.Import, imaging.Assemble) against casync; $REPS repetitions"
  command -v casync >/dev/null || die "casync not found (package casync)"
  local d=$WORK/p9 rep c t0 secs
  rm -rf "$d"; mkdir -p "$d/www"
  p9_pair "$d"
  P9_SIZE=$(stat -c %s "$d/v2.img")
  P9_ZST=$(stat -c %s "$d/www/v2.img.zst")
  P9_SHA=$(sha256sum "$d/www/v2.img.zst" | cut -d' ' -f1)
  # The stores, once each: rackboot's holds v1 and v2 (the appliance keeps
  # both versions), casync's v2 (its seed is v1's file, chunked at extract).
  for v in v1 v2; do
    "$BIN/chunkbench" import -store "$d/www/store" -index "$d/www/$v.idx" -tag cmp=P9 -tag tool=rackboot -tag case=import \
      -tag "image=$v" -tag "pair=$P9_PAIR" "$d/$v.img" >>"$RES" 2>>"$d/import.log" || die "P9: chunkbench import $v"
  done
  t0=$(date +%s.%N)
  casync make --store="$d/www/castore" --chunk-size="$P9_CHUNKS" "$d/www/v2.caibx" "$d/v2.img" >"$d/casync-make.log" 2>&1 ||
    { tail -5 "$d/casync-make.log" >&2; die "P9: casync make"; }
  secs=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN{printf "%.3f", t1 - t0}')
  "$BIN/benchtab" record -tag cmp=P9 -tag tool=casync -tag case=make -tag image=v2 -tag "pair=$P9_PAIR" -m "secs=$secs" \
    -m "stored=$(find "$d/www/castore" -type f -printf '%s\n' | awk '{n += $1} END {print n + 0}')" \
    -m "chunks=$(find "$d/www/castore" -type f | wc -l)" -m "size=$P9_SIZE" >>"$RES"
  for rep in $(seq "$REPS"); do
    for c in $(order "$rep" update casync-seed casync-inplace fresh stream stream-cache); do
      p9_run "$d" "$rep" "$c"
    done
  done
  # The images and stores are large; the logs and indexes stay.
  rm -rf "$d/v1.img" "$d/v2.img" "$d/www/store" "$d/www/castore" "$d/www/v2.img.zst"
}

# ---- P8 peer distribution -------------------------------------------------------

# P8 (issue 15): N real rackboot-agent processes, each in its own network
# namespace with its machine's MAC, install one chunked whole-disk image
# at once onto file-backed disks (sparse files on disk, not tmpfs), from
# an appliance whose link is rate-limited with tc; peer distribution on
# (serve --peers P8_PEERS) and off, interleaved, and each alone first.
#
#   rbbench-PID-app:  app0 10.78.0.1/24, tbf at P8_RATE on its egress: the appliance
#         │ veth
#   rbbench-PID-sw:   br8, the switch (no address)
#         │ veth × N, unlimited (or P8_AGENT_RATE on each agent's egress)
#   rbbench-PID-aNNN: v0 10.78.0.(10+NNN)/24, MAC 52:54:08:00:HH:LL: agent NNN
#
# The appliance's bytes are its link's: app0's tx_bytes before and after
# the wave, every byte it sent (chunks, redirects, plans, TLS). The wall
# time runs from the agents' start to the last success the appliance
# recorded (its history's `finished`); the agents then keep serving
# (-linger) until the bench stops them. Each agent fetched its iPXE script
# from its own namespace first (GET /ipxe?mac=), as agentload does, and
# runs with the rackboot.* words of its kernel line: the appliance checks
# each request's MAC against its neighbour table, so no --trust-routed.
P8_N=${P8_N-"20 50 100"} # empty: one install alone only
P8_MIB=${P8_MIB:-256}
P8_RATE=${P8_RATE:-1gbit}
P8_AGENT_RATE=${P8_AGENT_RATE:-}
P8_MODES=${P8_MODES:-"on off"}
P8_PEERS=${P8_PEERS:-all}
P8_LINGER=${P8_LINGER:-10m}
P8_TIMEOUT=${P8_TIMEOUT:-30m}
P8_ALONE=${P8_ALONE:-1}
P8_OFF_N=${P8_OFF_N-$P8_N} # the N of P8_N that run with peers off too (a slow link makes off N× one install's time)
P8_NET=10.78.0
P8_MAC_PREFIX=52:54:08

p8_ns() { printf 'rbbench-%s-a%03d' $$ "$1"; } # agent i's namespace
p8_mac() { printf '%s:00:%02x:%02x' "$P8_MAC_PREFIX" $(($1 >> 8)) $(($1 & 255)); }
p8_ip() { echo "$P8_NET.$((10 + $1))"; }

# p8_bytes_per_s RATE: tc's rate (1gbit, 50mbit, 800kbit) in bytes/s.
p8_bytes_per_s() {
  awk -v r="$1" 'BEGIN{ n = r + 0; u = tolower(substr(r, length(n "") + 1))
    m = 1; if (u ~ /^k/) m = 1e3; else if (u ~ /^m/) m = 1e6; else if (u ~ /^g/) m = 1e9
    if (u ~ /bit$/) m /= 8; printf "%d\n", n * m }'
}

# p8_limit NS DEV RATE: a token bucket on DEV's egress. The bucket holds
# 10 ms at the rate (at least 64 KiB): the kernel's timers and GSO bursts
# need it, and 10 ms is about a switch port's buffer.
p8_limit() {
  local burst
  burst=$(($(p8_bytes_per_s "$3") / 100))
  [ "$burst" -ge 65536 ] || burst=65536
  ip netns exec "$1" tc qdisc replace dev "$2" root tbf rate "$3" burst "$burst" latency 100ms ||
    die "P8: tc tbf rate $3 on $2"
}

# p8_net_up NMAX: the switch, the appliance and NMAX agents.
p8_net_up() {
  local nmax=$1 i ns sw=rbbench-$$-sw app=rbbench-$$-app
  say "P8: the network: appliance, switch and $nmax agent namespaces"
  ip netns add "$sw" && ip netns add "$app" || die "P8: ip netns add"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br8 type bridge stp_state 0 forward_delay 0
  ip -n "$sw" link set br8 up
  ip -n "$app" link set lo up
  ip -n "$app" link add app0 type veth peer name p-app netns "$sw" || die "P8: veth of the appliance"
  ip -n "$app" addr add "$P8_NET.1/24" dev app0
  ip -n "$app" link set app0 up
  ip -n "$sw" link set p-app master br8 up
  p8_limit "$app" app0 "$P8_RATE"
  # The kernel's ARP table is one for every namespace, and its limits
  # (net.ipv4.neigh.default.gc_thresh1-3, 128/512/1024 by default) count
  # the entries of all: N agents that each resolve their N peers need
  # N × N. Over gc_thresh3 new entries fail ("neighbour: arp_cache:
  # neighbor table overflow!"), the SYN to a peer is dropped and its
  # connect times out: at N = 50 most peer fetches failed that way. A
  # rack's machines each have their own table; raise the shared one for
  # the run (restored at exit).
  local need=$(((nmax + 2) * (nmax + 2) * 2)) t
  P8_NEIGH_OLD=$(sysctl -n net.ipv4.neigh.default.gc_thresh1 net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3 | tr '\n' ' ')
  t=$(sysctl -n net.ipv4.neigh.default.gc_thresh3)
  if [ "$t" -lt "$need" ]; then
    sysctl -q -w net.ipv4.neigh.default.gc_thresh1=$((need / 4)) net.ipv4.neigh.default.gc_thresh2=$((need / 2)) \
      net.ipv4.neigh.default.gc_thresh3="$need" || die "P8: cannot raise net.ipv4.neigh.default.gc_thresh3 to $need"
    BENCH_RESTORE+=("sysctl -q -w net.ipv4.neigh.default.gc_thresh1=$(echo "$P8_NEIGH_OLD" | cut -d' ' -f1) net.ipv4.neigh.default.gc_thresh2=$(echo "$P8_NEIGH_OLD" | cut -d' ' -f2) net.ipv4.neigh.default.gc_thresh3=$(echo "$P8_NEIGH_OLD" | cut -d' ' -f3)")
  fi
  for ((i = 0; i < nmax; i++)); do
    ns=$(p8_ns "$i")
    ip netns add "$ns" || die "P8: ip netns add $ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add v0 address "$(p8_mac "$i")" type veth peer name "p$i" netns "$sw" || die "P8: veth of agent $i"
    ip -n "$ns" addr add "$(p8_ip "$i")/24" dev v0
    ip -n "$ns" link set v0 up
    ip -n "$sw" link set "p$i" master br8 up
    [ -z "$P8_AGENT_RATE" ] || p8_limit "$ns" v0 "$P8_AGENT_RATE"
  done
  for i in $(seq 50); do
    bridge -n "$sw" link show 2>/dev/null | grep -v -q 'state forwarding' || return 0
    sleep 0.1
  done
  die "P8: ports of br8 are not forwarding after 5 s"
}

# p8_image DIR NMAX: the image (peerbench mkdisk) imported chunked into
# DIR/art as `rackboot image add` does, and a fleet of NMAX machines in
# DIR/profiles. Sets P8_SIZE, P8_STORED and P8_DISK_MIB.
p8_image() {
  local d=$1 nmax=$2 sha i
  mkdir -p "$d/art" "$d/profiles"
  "$BIN/peerbench" mkdisk -size-mib "$P8_MIB" "$d/p8.img" || die "P8: peerbench mkdisk"
  "$BIN/rackboot" image add "$d/p8.img" --name p8-1 --number 1 --artifacts "$d/art" >"$d/image-add.out" 2>&1 ||
    { cat "$d/image-add.out" >&2; die "P8: rackboot image add"; }
  sha=$(sed -n 's/.*sha256: \([0-9a-f]\{64\}\).*/\1/p' "$d/image-add.out" | head -1)
  [ -n "$sha" ] || { cat "$d/image-add.out" >&2; die "P8: no sha256 in the output of rackboot image add"; }
  # The installer's files: the agents run in namespaces, not booted, but
  # rackboot holds the hosts of a version whose installer files are missing.
  printf 'bench: no machine boots this\n' >"$d/art/vmlinuz"
  printf 'bench: no machine boots this\n' >"$d/art/initrd.img"
  P8_SIZE=$(stat -c %s "$d/p8.img")
  P8_STORED=$(find "$d/art/chunks" -type f -printf '%s\n' | awk '{n += $1} END {print n + 0}')
  # The disk: the image, the config drive at its end, GPT and alignment.
  P8_DISK_MIB=$((P8_MIB + 64))
  {
    printf '# Written by bench/run.sh P8: %d machines installing one chunked image.\n' "$nmax"
    printf 'versions:\n  - name: p8-1\n    number: 1\n'
    printf '    image: { url: images/p8-1.rbidx, sha256: %s, format: chunked, kind: whole-disk }\n' "$sha"
    printf '    installer: { kernel: vmlinuz, initrd: initrd.img, cmdline: "console=ttyS0,115200" }\n'
    printf 'layouts:\n  - name: p8\n    disk: { select: smallest, min_size: %dMiB }\n' $((P8_MIB + 32))
    printf '    partitions:\n      - { name: cidata, size: 16MiB, type: linux, content: config }\n'
    printf 'defaults:\n  version: p8-1\n  layout: p8\nhosts:\n'
    for ((i = 0; i < nmax; i++)); do printf '  - { mac: "%s", hostname: p8-%03d }\n' "$(p8_mac "$i")" "$i"; done
  } >"$d/profiles/fleet.yaml"
  say "P8: image of $P8_MIB MiB, $((P8_STORED >> 20)) MiB stored in $(find "$d/art/chunks" -type f | wc -l) chunks"
}

# p8_serve_flags MODE: serve's flags for peer distribution on or off.
p8_serve_flags() {
  # The help into a variable first: with pipefail, grep -q closing the
  # pipe early would fail the command that is still writing.
  local help
  help=$("$BIN/rackboot" serve -h 2>&1)
  if [[ $help != *-peers* ]]; then
    [ "$1" = off ] && return 0
    die "P8: this rackboot serve has no --peers flag (peer distribution not wired)"
  fi
  if [ "$1" = on ]; then echo "--peers $P8_PEERS"; else echo "--peers off"; fi
}

# p8_wave DIR N MODE REP: one wave of N installs at once; one record.
p8_wave() {
  local d=$1 n=$2 mode=$3 rep=$4 i mac words name out flags
  local NS_SRV=rbbench-$$-app # for bench_start and bench_wait_port: the appliance's namespace
  name=p8-$n-$mode-$rep
  out=$d/$name
  mkdir -p "$out"
  local avail need
  avail=$(df -Pm "$P8_DISKS" | awk 'NR == 2 {print $4}')
  need=$((n * P8_MIB + 2048))
  if [ "$avail" -lt "$need" ]; then
    check_failed "P8 N=$n: $avail MiB free under $P8_DISKS, $need needed; not run"
    return
  fi
  rm -rf "$d/rb-data" "${P8_DISKS:?}"/*
  flags=$(p8_serve_flags "$mode") || exit 1
  # shellcheck disable=SC2086
  bench_start "$name" "$ALL_CPUS" "$BIN/rackboot" serve --profiles "$d/profiles" --data "$d/rb-data" \
    --artifacts "$d/art" --ipxe-dir "$WORK/ipxe" --interface app0 --http-port "$HTTP_PORT" \
    --tftp-port 69 --dhcp-port 67 --log-level warn --log-format json $flags
  bench_wait_port tcp "$HTTP_PORT" "$name"
  bench_wait_port tcp 8443 "$name"
  sleep 0.5
  # Each machine's script, fetched from its own namespace, and its disk.
  local agent_flags=() argv=()
  local help
  help=$("$BIN/rackboot-agent" -h 2>&1)
  [[ $help != *"-ca "* ]] || agent_flags+=(-ca "$d/rb-data/tls/ca.pem")
  : >"$out/macs"
  for ((i = 0; i < n; i++)); do
    mac=$(p8_mac "$i")
    words=$(ip netns exec "$(p8_ns "$i")" curl -sf --max-time 10 \
      "http://$P8_NET.1:$HTTP_PORT/ipxe?mac=${mac//:/-}&arch=x86_64&platform=pcbios" | grep -o 'rackboot\.[a-z]*=[^ ]*' | tr '\n' ' ')
    case $words in
      *rackboot.token=*) ;;
      *) bench_stop; check_failed "P8: no install token in the script of $mac"; return ;;
    esac
    argv[i]=$words
    echo "$mac" >>"$out/macs"
    truncate -s "${P8_DISK_MIB}M" "$P8_DISKS/a$i.img"
  done
  sync
  local hz tx0 tx1 c0 c1 s0 s1 b0 b1 t0 t1 pids=() rc
  hz=$(getconf CLK_TCK)
  tx0=$(ip netns exec "$NS_SRV" cat /sys/class/net/app0/statistics/tx_bytes)
  # The agents are this shell's children: their CPU is the growth of its
  # children's times (/proc/$$/stat: cutime, cstime) once they are reaped.
  c0=$(awk '{print $16 + $17}' /proc/$$/stat)
  s0=$(cpu_ticks "$SRV_PID")
  b0=$(busy_ticks)
  t0=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    # shellcheck disable=SC2086
    ip netns exec "$(p8_ns "$i")" "$BIN/rackboot-agent" -disk "$P8_DISKS/a$i.img" -linger "$P8_LINGER" "${agent_flags[@]}" \
      ${argv[i]} 2>"$out/agent-$i.log" &
    pids+=($!)
  done
  echo "${pids[*]}" >"$out/pids"
  # Not timed with bash's `time`: it would count the agents reaped
  # meanwhile as its command's children; peerbench reports its own CPU.
  ip netns exec "$NS_SRV" "$BIN/peerbench" wait -server "https://$P8_NET.1:8443" -ca "$d/rb-data/tls/ca.pem" \
    -token-file "$d/rb-data/admin.token" -macs "$out/macs" -pids-file "$out/pids" -start "$t0" -timeout "$P8_TIMEOUT" \
    -tag cmp=P8 -tag "peers=$mode" -tag "n=$n" -tag "rep=$rep" -tag "rate=$P8_RATE" -tag "agent_rate=${P8_AGENT_RATE:-none}" \
    -tag "mib=$P8_MIB" >"$out/wait.out" 2>"$out/wait.err"
  rc=$?
  t1=$(date +%s.%N)
  b1=$(busy_ticks)
  s1=$(cpu_ticks "$SRV_PID")
  tx1=$(ip netns exec "$NS_SRV" cat /sys/class/net/app0/statistics/tx_bytes)
  cat "$out/wait.err" >&2
  # The wave is over: stop the lingering agents.
  for i in "${pids[@]}"; do kill "$i" 2>/dev/null; done
  local codes=() q
  for i in "${pids[@]}"; do
    for q in $(seq 150); do kill -0 "$i" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$i" 2>/dev/null
    wait "$i"
    codes+=($?)
  done
  c1=$(awk '{print $16 + $17}' /proc/$$/stat)
  bench_stop
  # Two disks compared with the image past its partition table (the agent
  # adds the config drive to the table): the root partition's bytes.
  local bad=0
  for i in $(printf '%s\n' 0 $((n - 1)) | sort -u); do
    cmp -s -n $((P8_SIZE - (2 << 20))) -i $((1 << 20)):$((1 << 20)) "$d/p8.img" "$P8_DISKS/a$i.img" ||
      { bad=$((bad + 1)); echo "bench: P8: the disk of agent $i does not hold the image" >&2; }
  done
  rm -f "${P8_DISKS:?}"/*
  if [ "$rc" != 0 ]; then
    tail -5 "$out/wait.err" >&2
    check_failed "P8 N=$n peers $mode: peerbench wait failed"
    return
  fi
  local m
  m=$(awk -v c0="$c0" -v c1="$c1" -v hz="$hz" -v pb="$(sed -n 's/.*"wait_cpu_s":\([0-9.e+-]*\).*/\1/p' "$out/wait.out")" -v n="$n" \
    -v s0="$s0" -v s1="$s1" -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" 'BEGIN{
      a = (c1 - c0) / hz - pb; if (a < 0) a = 0
      printf "-m agent_cpu_s=%.3f -m agent_cpu_per_install_s=%.3f -m appliance_cpu_s=%.3f -m machine_busy_pct=%.1f -m secs=%.3f",
        a, a / n, (s1 - s0) / hz, (b1 - b0) / hz / (t1 - t0) * 100, t1 - t0 }')
  local nonzero=0
  for q in "${codes[@]}"; do [ "$q" = 0 ] || nonzero=$((nonzero + 1)); done
  local req=""
  [ "$STRICT" = 1 ] && req="installed=$n,disks_bad=0"
  # The agents' reports of what came from peers, when the appliance
  # records them (peerbench wait finds the field by name).
  if [ "${P8_REQUIRE_PEERS:-0}" = 1 ] && [ "$mode" = on ] && [ "$n" -gt 1 ]; then
    if grep -q '"peer_bytes"' "$out/wait.out"; then req="$req,peer_bytes>0"; else
      echo "bench: P8: the appliance's history records no bytes from peers; not checked" >&2; fi
  fi
  # shellcheck disable=SC2086
  "$BIN/benchtab" json $m -m "tx_bytes=$((tx1 - tx0))" -m "image_bytes=$P8_SIZE" -m "stored_bytes=$P8_STORED" \
    -m "disks_bad=$bad" -m "agents_nonzero_exit=$nonzero" -require "${req#,}" <"$out/wait.out" >>"$RES" ||
    check_failed "P8 N=$n peers $mode: not every machine installed, or a disk is wrong, or nothing came from peers (see $out)"
  [ "$bad" = 0 ] || echo "bench: WARNING: P8 N=$n peers $mode: $bad disks do not hold the image" >&2
  say "P8 N=$n peers $mode: the appliance sent $(((tx1 - tx0) >> 20)) MiB; agents' exit statuses: ${codes[*]:0:20}"
}

run_p8() {
  local max=1 n rep k=0 mode d=$WORK/p8
  for n in $P8_N; do [ "$n" -gt "$max" ] && max=$n; done
  [ "$max" -le 240 ] || die "P8: at most 240 agents (one /24)"
  say "P8 peer distribution: N = ${P8_N// /, } agents (and 1 alone) × peers {$P8_MODES}, a ${P8_MIB} MiB image, the appliance's link at $P8_RATE; $REPS repetitions"
  P8_DISKS=${P8_DISKS:-$d/disks}
  mkdir -p "$d" "$P8_DISKS" || die "P8: mkdir $P8_DISKS"
  BENCH_SCRATCH+=("$P8_DISKS")
  # The disks are sparse, but every agent writes the image's data: refuse
  # a run that would fill the file system (other people's work shares it).
  local avail need=$((max * P8_MIB + 2048 + 3 * P8_MIB))
  avail=$(df -Pm "$P8_DISKS" | awk 'NR == 2 {print $4}')
  [ "$avail" -ge "$need" ] || die "P8: $avail MiB free under $P8_DISKS; N = $max needs $need (set P8_DISKS elsewhere, or a smaller P8_N)"
  [ "$(stat -f -c %T "$P8_DISKS")" != tmpfs ] || die "P8: $P8_DISKS is on tmpfs; the disks must be files on a disk"
  p8_image "$d" "$max"
  p8_net_up "$max"
  for rep in $(seq "${P8_REPS:-$REPS}"); do
    local steps=()
    [ "$P8_ALONE" = 1 ] && steps+=(1)
    # shellcheck disable=SC2206
    steps+=($P8_N)
    for n in "${steps[@]}"; do
      k=$((k + 1))
      # On and off alternate who goes first from one step to the next.
      # shellcheck disable=SC2086
      for mode in $(order "$k" $P8_MODES); do
        if [ "$mode" = off ] && [ "$n" != 1 ] && ! grep -qw "$n" <<<"$P8_OFF_N"; then continue; fi
        p8_wave "$d" "$n" "$mode" "$rep"
      done
    done
  done
  rm -f "$d/p8.img"
}

# ---- main --------------------------------------------------------------------

prepare
bench_net_up
started=$(date +%s)
for p in P1 P2 P3 P4 P5 P9 P8; do
  want "$p" || continue
  case $p in P1) run_p1 ;; P2) run_p2 ;; P3) run_p3 ;; P4) run_p4 ;; P5) run_p5 ;; P8) run_p8 ;; P9) run_p9 ;; esac
done
bench_cleanup
"$BIN/benchtab" record -tag cmp=meta-end -tag "load=$(cut -d' ' -f1-3 /proc/loadavg)" -m "seconds=$(($(date +%s) - started))" >>"$RES"
echo
"$BIN/benchtab" table "$RES" | tee "$WORK/table.md"
echo
echo "raw results: $RES; logs: $WORK"
