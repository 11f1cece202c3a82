#!/bin/bash
# The bench, small: one short run per comparison (P1-P5, P8, P9) against rackboot
# and its peers, for CI (as root, under 3 minutes). It asserts only that
# every step completes and that rackboot answered every request: every
# DISCOVER an OFFER, every TFTP download verified (also with 1 % loss),
# every HTTP request a 2xx, the image benchmark a clean run, every agent
# report a 204, every chunked image assembled and equal to v2 (P9 on a
# synthetic 64 MiB pair: the Debian pair takes minutes to build), three
# real agents installed with peer distribution on, some chunks from peers
# (P8), and P5 and P3's script test again with rackboot on a one-member
# etcd store (issue 18; about 5 s more). Any failure ends it with a message and exit status 1; the
# namespaces are removed on every exit path. The figures mean nothing.
#
#   sudo bench/smoke.sh
set -uo pipefail
cd "$(dirname "$0")" || exit 1

export STRICT=1 REPS=1 PERIOD=2 RATES=1000 PXE_RATE=1000 PXE_CLIENTS=200
export STORM_N=20 LOSS_N=20 LOSS_FILES=undionly.kpxe HTTP_SECS=2 SCRIPT_CONNS=200 SCRIPT_CONNS_LOW=20 P4_MIB=64 P4_ITERS=1 AGENTS=100 P5_SECS=3
export P9_PAIR=synth P9_SYNTH_MIB=64
# Issue 18: rackboot on a one-member etcd store beside bbolt (P5, P3's scripts).
export STORES="bolt etcd"
# P8: three agents, a 32 MiB image, peers on only, the appliance's link
# slow enough (40 Mbit/s, about 3 s for one image) that the agents hold
# chunks while the others still fetch: some must come from peers.
export P8_N=3 P8_MIB=32 P8_MODES=on P8_ALONE=0 P8_RATE=40mbit P8_REQUIRE_PEERS=1
export BENCH_OUT=${BENCH_OUT:-$(mktemp -d /tmp/rbbench-smoke.XXXXXX)}
start=$(date +%s)
if ! bash ./run.sh; then
  echo "bench smoke: FAIL (logs in $BENCH_OUT)" >&2
  exit 1
fi
# The table must show every comparison: a step that silently produced no
# record would otherwise pass.
for p in P1 P2 P3 P4 P5 P8 P9 "P5 etcd" "P3 etcd"; do
  grep -q "^| $p |" "$BENCH_OUT/table.md" || { echo "bench smoke: FAIL: no $p row in the table" >&2; exit 1; }
done
if grep -q 'not run' "$BENCH_OUT/table.md"; then
  echo "bench smoke: FAIL: a measure was not run:" >&2
  grep 'not run' "$BENCH_OUT/table.md" >&2
  exit 1
fi
echo "bench smoke: ok in $(($(date +%s) - start)) s (logs in $BENCH_OUT)"
rm -rf "$BENCH_OUT"
