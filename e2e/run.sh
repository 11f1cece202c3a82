#!/bin/bash
# Run rackboot's end-to-end suite: real QEMU machines PXE-boot against
# `rackboot serve` inside network namespaces (see e2e/doc.go, e2e/lab).
#   sudo e2e/run.sh [go test flags, e.g. -run TestBoot/uefi]
# env: RACKBOOT_E2E_LOGS=DIR keeps every log (serial consoles, rackboot, udhcpd)
#      RACKBOOT_E2E_CACHE=DIR kernel and initramfs cache (default /var/cache/rackboot-e2e)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# Remove lab namespaces whose owner process is gone (named rbe2e-PID-HEX-ROLE
# by lab.NewNet), killing what still runs inside them. A run killed by its
# -timeout or by SIGKILL leaves them behind; live parallel runs keep theirs.
sweep() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^rbe2e-[0-9]+-[0-9a-f]+-(srv|site|cli|app[0-9]{1,2}|etcd[0-9]{1,2})$'); do
    pid=${ns#rbe2e-}; pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null && continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" && echo "run.sh: removed leftover namespace $ns" >&2
  done
}
trap sweep EXIT
trap 'exit 130' INT TERM

RACKBOOT_E2E=1 go test -tags e2e -count=1 -v -timeout 75m ./e2e/... "$@"
