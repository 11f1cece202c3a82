#!/bin/bash
# Runs every test of rackboot: vet, unit tests and a short run of every fuzz
# target (no root needed for these), and, as root, the end-to-end suite that
# boots real QEMU machines over PXE in private network namespaces. Installs
# what the tests need from Debian packages.
#   bash e2e/test.sh            (the README's test command; CI runs it as root)
# RACKBOOT_SKIP_APT=1 skips the package step (offline machines that have them).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(qemu-system-x86 ipxe ipxe-qemu ovmf busybox-static kmod cpio dosfstools gdisk
      iproute2 curl atftp zstd systemd-boot-efi syslinux syslinux-common mtools squashfs-tools
      cloud-init mmdebstrap e2fsprogs xfsprogs prometheus lintian systemd procps util-linux
      systemd-container openipmi ipmitool etcd-server etcd-client)
if [ "$(id -u)" != 0 ]; then
  echo "e2e/test.sh: the end-to-end suite needs root (network namespaces, QEMU taps, port 67)." >&2
  echo "  run it as root, or run only the unit tests: go vet ./... && go test ./..." >&2
  exit 1
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${RACKBOOT_SKIP_APT:-0}" != 1 ]; then
  echo "== installing test dependencies: ${missing[*]}"
  # cloud-init is here for its checkers (schema, net-convert, its readers):
  # a host that did not run it before must not start configuring itself
  # from it at its next boot.
  if [[ " ${missing[*]} " == *" cloud-init "* ]] && [ ! -e /etc/cloud/cloud-init.disabled ]; then
    mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  # prometheus is here for promtool; the package also starts a Prometheus
  # server (port 9090) that nothing here needs.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus.service 2>/dev/null || true
  fi
  # etcd-server is here for TestSharedStore, which runs its own members
  # in the lab's namespaces; the package also starts one on the host
  # (localhost:2379) that nothing here needs.
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now etcd.service 2>/dev/null || true
  fi
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change: $bad" >&2; exit 1; fi
echo "== go vet"
go vet ./...
go vet -tags e2e ./e2e/...
echo "== unit tests"
go test -count=1 ./...
echo "== alert rules (promtool; metrics/README.md)"
promtool check rules metrics/alerts.yml
promtool test rules metrics/alerts_test.yml
echo "== Debian package (packaging/check.sh: reproducible, lintian, contents, systemd-analyze)"
bash packaging/check.sh
echo "== the package's unit under systemd (packaging/systemd-test.sh: systemd-nspawn)"
bash packaging/systemd-test.sh
echo "== fuzzing (every target briefly; .ci/fuzz.sh)"
bash .ci/fuzz.sh
echo "== end-to-end tests (QEMU, network namespaces)"
bash e2e/run.sh
