#!/bin/bash
# Runs the package's unit under a real systemd: a fresh Debian 12 root
# (mmdebstrap) with systemd and the package, booted with systemd-nspawn in
# a private network namespace with one veth; the service enabled with the
# example fleet and the interface set in /etc/rackboot/rackboot.yaml, as an
# admin does. Checks that systemd calls it started (Type=notify: the
# daemon's READY=1), its status line, its user, capabilities, seccomp and
# no_new_privs, /healthz, `systemctl reload` (SIGHUP) and `restart`, the
# admin CLI as root, and prints `systemd-analyze security`.
#   sudo bash packaging/systemd-test.sh      (needs mmdebstrap, systemd-container)
# e2e/test.sh runs it after packaging/check.sh; about 40 s.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
ns=rbpkg-$$
nspawn=
cleanup() {
  if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
    kill "$nspawn"; wait "$nspawn" 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "packaging/systemd-test.sh: $*" >&2; exit 1; }

deb=$(bash packaging/build.sh "$work" 2>/dev/null | tail -1)
root=$work/root
mmdebstrap --quiet --variant=minbase --include="systemd,systemd-sysv,curl,$deb" \
  --setup-hook="mkdir -p \"\$1$work\" && cp \"$deb\" \"\$1$work/\"" \
  --customize-hook='chroot "$1" systemctl enable rackboot' \
  --customize-hook="cp examples/*.yaml \"\$1/etc/rackboot/profiles/\"" \
  --customize-hook='printf "interfaces: [rb0]\n" >>"$1/etc/rackboot/rackboot.yaml"' \
  bookworm "$root" http://deb.debian.org/debian

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add rb0 type veth peer name rb1
ip -n "$ns" addr add 10.9.0.1/24 dev rb0
ip -n "$ns" link set rb0 up
ip -n "$ns" link set rb1 up
# --keep-unit --register=no: no system bus needed (containers, CI).
systemd-nspawn -q -D "$root" -b --keep-unit --register=no --network-namespace-path="/run/netns/$ns" \
  >"$work/console.log" 2>&1 </dev/null &
nspawn=$!

# under PID ANCESTOR: whether ANCESTOR is PID or one of its parents.
under() {
  local p=$1
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    [ "$p" = "$2" ] && return 0
    p=$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
  done
  return 1
}
# The container's init: the process named systemd under nspawn.
init=
for _ in $(seq 60); do
  for p in $(pgrep -x systemd); do
    under "$p" "$nspawn" && init=$p
  done
  [ -n "$init" ] && break
  sleep 1
done
[ -n "$init" ] || fail "the container's systemd did not start: $(tail -5 "$work/console.log")"
inside() { nsenter -t "$init" -a "$@"; }
for _ in $(seq 60); do
  state=$(inside systemctl is-active rackboot 2>/dev/null || true)
  [ "$state" = active ] || [ "$state" = failed ] && break
  sleep 1
done
inside systemctl status rackboot --no-pager | head -8 || true
[ "$state" = active ] || fail "rackboot.service is $state:
$(inside journalctl -u rackboot --no-pager -o cat | tail -20)"
status=$(inside systemctl show rackboot -p StatusText --value)
case $status in serving*) ;; *) fail "StatusText \"$status\", want serving…" ;; esac

pid=$(inside systemctl show rackboot -p MainPID --value)
hostpid=
for p in $(pgrep -x rackboot); do
  if under "$p" "$init"; then hostpid=$p; break; fi
done
[ -n "$hostpid" ] || fail "no rackboot process in the container (MainPID $pid)"
uid=$(inside id -u rackboot)
grep -E '^(Uid|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "/proc/$hostpid/status"
grep -qE "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid$" "/proc/$hostpid/status" || fail "not running as rackboot ($uid)"
grep -qE '^CapEff:\s+0000000000002400$' "/proc/$hostpid/status" || fail "CapEff is not net_bind_service,net_raw"
grep -qE '^NoNewPrivs:\s+1$' "/proc/$hostpid/status" || fail "no_new_privs not set"
grep -qE '^Seccomp:\s+2$' "/proc/$hostpid/status" || fail "no seccomp filter"
[ "$(inside curl -s -m 5 http://10.9.0.1:8080/healthz)" = ok ] || fail "/healthz did not answer ok"

inside systemctl reload rackboot || fail "systemctl reload failed"
sleep 1
[ "$(inside systemctl show rackboot -p MainPID --value)" = "$pid" ] || fail "reload changed the main PID"
inside systemctl restart rackboot || fail "systemctl restart failed"
[ "$(inside systemctl is-active rackboot)" = active ] || fail "not active after restart"
inside rackboot hosts | head -3
inside systemd-analyze security rackboot --no-pager | tail -1
inside systemctl poweroff 2>/dev/null || true
wait "$nspawn" 2>/dev/null || true
nspawn=
echo "packaging/systemd-test.sh: ok"
