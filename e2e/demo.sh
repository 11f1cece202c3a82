#!/bin/bash
# rackboot's main job on an embedded default: three machines (BIOS with a
# virtio NIC, UEFI with a virtio NIC, UEFI with an Intel e1000) are powered
# on at once with blank disks in a private virtual lab; rackboot installs
# a real Debian 12 on them over the network while `rackboot watch` shows it
# live; then they boot it from their disks, cloud-init configures them from
# rackboot's config drive, and the demo logs in to each over SSH with a key
# made for the run and shows what it says (hostname, addresses, df -h /,
# cloud-init status); a table sums it up. Everything it builds goes to one
# work directory, removed at the end (also on Ctrl-C); only the Debian
# kernel and the Debian image (built with mmdebstrap from the mirror the
# first time: 5 to 8 minutes) stay cached in /var/cache/rackboot-e2e.
# Installs the Debian packages it needs.
#   bash e2e/demo.sh [--keep] [--timeout 12m]      (as root; see e2e/demo/main.go)
# RACKBOOT_SKIP_APT=1 skips the package step (offline machines that have them).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "e2e/demo.sh: the demo needs root: it creates network namespaces and a bridge," >&2
  echo "  plugs QEMU machines into tap interfaces, and serves DHCP and TFTP on ports 67 and 69" >&2
  echo "  (all inside the namespaces, removed at the end); mmdebstrap builds the Debian image" >&2
  echo "  in a chroot. Run: sudo bash e2e/demo.sh" >&2
  exit 1
fi
# sudo's secure_path usually lacks the Go of the official tarball.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  PATH=$PATH:/usr/local/go/bin
fi
if ! command -v go >/dev/null; then
  echo "e2e/demo.sh: the demo needs Go (go.mod names the version); PATH has no go" >&2
  exit 1
fi

# The lab's packages (e2e/lab), then what building the Debian image needs
# (e2e/osimage, CheckDebianHost); e2e/test.sh installs these and the tests'
# own tools.
pkgs=(qemu-system-x86 ipxe ipxe-qemu ovmf busybox-static kmod iproute2
      mmdebstrap e2fsprogs dosfstools mtools)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${RACKBOOT_SKIP_APT:-0}" != 1 ]; then
  echo "== installing the lab's packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# exec: no shell in between. Ctrl-C reaches the demo from the terminal;
# a SIGTERM ends go run, which the demo takes as its own SIGTERM
# (e2e/demo/parent_linux.go). Either way it removes the lab before exiting.
exec go run ./e2e/demo "$@"
