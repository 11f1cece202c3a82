#!/bin/bash
# Builds rackboot's Debian package from the repository, reproducibly: the
# same commit (and Go toolchain) gives a byte-identical .deb.
#   bash packaging/build.sh OUTDIR     -> OUTDIR/rackboot_VERSION_amd64.deb
# Prints the path of the .deb on its last line. Needs go, git and dpkg-deb
# (Debian's dpkg); nothing else. packaging/README.md explains the choices.
set -euo pipefail
out=${1:?usage: packaging/build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd) # relative to the caller's directory
cd "$(dirname "$0")/.."

# Time and version come from the commit, never from the clock: every
# timestamp in the package is SOURCE_DATE_EPOCH.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export TZ=UTC LC_ALL=C.UTF-8
umask 022
rev=$(git rev-parse --short=12 HEAD)
day=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d)
# 0.1.0~git: sorts below a released 0.1.0; the date orders snapshots, the
# revision names the commit. A tree with uncommitted changes is not that
# commit: it says so in its version.
version="0.1.0~git${day}.${rev}"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  version="${version}+dirty"
  echo "packaging/build.sh: uncommitted changes: version $version is not reproducible from a commit" >&2
fi
arch=amd64

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root

# Both binaries are static (CGO_ENABLED=0): the agent must be (it is the
# installer's PID 1), and the daemon needs nothing of the C library (Go's
# own resolver and user lookup), so the package depends on no libc version
# and the build on no C compiler. -trimpath and an empty build ID keep
# the build machine's paths and IDs out of the binaries; -s -w strip the
# symbol and DWARF tables (Debian ships stripped binaries; panics still
# print file:line, from the pclntab).
export CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-trimpath
go build -ldflags="-s -w -buildid=" -o "$work/rackboot" ./cmd/rackboot
go build -ldflags="-s -w -buildid=" -o "$work/rackboot-agent" ./cmd/rackboot-agent

install -d -m 0755 "$root"
put() { # put MODE SRC DST: install one file, creating its directories
  install -D -m "$1" "$2" "$root/$3"
}
put 0755 "$work/rackboot" usr/bin/rackboot
put 0755 "$work/rackboot-agent" usr/lib/rackboot/rackboot-agent
put 0644 packaging/rackboot.service lib/systemd/system/rackboot.service
put 0644 packaging/rackboot.yaml etc/rackboot/rackboot.yaml
install -d -m 0755 "$root/etc/rackboot/profiles"
for f in examples/*.yaml; do
  put 0644 "$f" "usr/share/rackboot/examples/$(basename "$f")"
done
put 0644 packaging/copyright usr/share/doc/rackboot/copyright
put 0644 packaging/lintian-overrides usr/share/lintian/overrides/rackboot
# The profiles' JSON Schema, from the binary: the examples' modelines
# (yaml-language-server) name ./rackboot.schema.json, so it is linked
# beside them and into the default profiles directory.
"$work/rackboot" schema >"$work/rackboot.schema.json"
put 0644 "$work/rackboot.schema.json" usr/share/rackboot/rackboot.schema.json
ln -s ../rackboot.schema.json "$root/usr/share/rackboot/examples/rackboot.schema.json"
ln -s /usr/share/rackboot/rackboot.schema.json "$root/etc/rackboot/profiles/rackboot.schema.json"
# The Grafana dashboard and the Prometheus alerts, when the tree has them.
for f in metrics/dashboard.json metrics/alerts.yml; do
  if [ -f "$f" ]; then put 0644 "$f" "usr/share/rackboot/$(basename "$f")"; fi
done
# The man page and shell completions come from the binary itself, when it
# has the verbs (rackboot manpage, rackboot completion bash|zsh).
if "$work/rackboot" manpage >"$work/rackboot.1" 2>/dev/null && [ -s "$work/rackboot.1" ]; then
  gzip -n -9 <"$work/rackboot.1" >"$work/rackboot.1.gz"
  put 0644 "$work/rackboot.1.gz" usr/share/man/man1/rackboot.1.gz
fi
if "$work/rackboot" completion bash >"$work/bash" 2>/dev/null && [ -s "$work/bash" ]; then
  put 0644 "$work/bash" usr/share/bash-completion/completions/rackboot
fi
if "$work/rackboot" completion zsh >"$work/zsh" 2>/dev/null && [ -s "$work/zsh" ]; then
  put 0644 "$work/zsh" usr/share/zsh/vendor-completions/_rackboot
fi

# The changelog of a native package (the version has no Debian revision:
# the package is built from the project's own tree), one entry for this
# commit.
{
  echo "rackboot ($version) unstable; urgency=medium"
  echo
  echo "  * Snapshot of commit $(git rev-parse HEAD)."
  echo
  echo " -- rackboot maintainers <maintainers@rackboot.invalid>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -n -9 >"$work/changelog.gz"
put 0644 "$work/changelog.gz" usr/share/doc/rackboot/changelog.gz

# Control files. Installed-Size the way dpkg-gencontrol counts it: KiB
# per file rounded up, one per directory.
install -d -m 0755 "$root/DEBIAN"
size=$(cd "$root" && find . -path ./DEBIAN -prune -o \( -type f -printf '%s\n' -o -printf '0\n' \) |
  awk '{ n += ($1 == 0) ? 1 : int(($1 + 1023) / 1024) } END { print n }')
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/control >"$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control"
echo /etc/rackboot/rackboot.yaml >"$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"
for s in postinst postrm; do install -m 0755 "packaging/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs -r md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

# Fixed times on everything; dpkg-deb sorts the members and stamps the ar
# and tar headers with SOURCE_DATE_EPOCH.
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="$out/rackboot_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
