#!/bin/bash
# Runs every native fuzz target of the module for a short fixed time
# (issue 13, item 7): a fuzzer that stopped executing, or a parser change
# that a target now catches, fails CI instead of waiting for a long run.
# The targets are listed with `go test -list`, so a new FuzzXxx is run
# without editing this file. No root needed.
#   bash .ci/fuzz.sh                    (e2e/test.sh runs it)
#   RACKBOOT_FUZZTIME=60s bash .ci/fuzz.sh 'FuzzReply|FuzzLoad'   (longer, some targets)
# Each input that finds new coverage gets at most 100 executions of
# minimizing (RACKBOOT_FUZZMINIMIZE): the go command's default of 60 s let
# one large input take a whole run (profiles/fuzz_test.go), and even 3 s
# each left the targets that touch files or encode a megabyte (FuzzDisks,
# FuzzBatch) a few hundred executions in 6 s. A crasher is written to the
# package's testdata/fuzz/ by the go command: commit it with the fix.
# 28 targets at 5 s took 184 s on 2 busy cores, listing included.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${RACKBOOT_FUZZTIME:-5s}
minimize=${RACKBOOT_FUZZMINIMIZE:-100x}
filter=${1:-.}

# `go test -list` prints each package's names, then its "ok" line.
mapfile -t targets < <(go test -list '^Fuzz' ./... | awk '
  /^Fuzz/ { names[n++] = $1; next }
  /^ok/   { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }' | grep -E -- "$filter" || true)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no targets match $filter" >&2
  exit 1
fi

start=$(date +%s)
failed=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# fuzz runs one target; a failure without a failing input is the go
# command's own (on busy cores it has reported "context deadline exceeded"
# when the fuzz time ran out, with no input at fault) and gets one retry.
fuzz() {
  go test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$1" >"$out" 2>&1 && return
  grep -q 'Failing input written to' "$out" && return 1
  echo "fuzz: $2: failed without a failing input, once more:" >&2
  grep -v '^fuzz: elapsed' "$out" | tail -5 >&2
  go test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$1" >"$out" 2>&1
}
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  if fuzz "$pkg" "$name"; then
    # A target whose cached corpus takes the whole time to replay prints
    # no execs line: that is a pass, not a reason for set -e to stop here.
    execs=$( { grep -o 'execs: [0-9]*' "$out" || true; } | tail -1 | cut -d' ' -f2)
    printf '%-50s %-26s %10s execs in %s\n' "$pkg" "$name" "${execs:-?}" "$fuzztime"
  else
    printf '%-50s %-26s FAILED\n' "$pkg" "$name"
    grep -v '^fuzz: elapsed' "$out" | tail -30
    failed+=("$pkg $name")
  fi
done
echo "fuzz: ${#targets[@]} targets, $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
