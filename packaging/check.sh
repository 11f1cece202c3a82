#!/bin/bash
# Checks rackboot's Debian package: two builds of this tree are
# byte-identical, lintian finds no error, the package holds exactly the
# files of packaging/contents.txt (mode, owner, path, link target), and
# `systemd-analyze verify` accepts its unit.
#   bash packaging/check.sh      (e2e/test.sh runs it; needs go, dpkg-dev
#                                 tools, lintian and systemd)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== packaging: build twice"
a=$(bash packaging/build.sh "$work/a" | tail -1)
b=$(bash packaging/build.sh "$work/b" | tail -1)
sa=$(sha256sum <"$a" | cut -d' ' -f1)
sb=$(sha256sum <"$b" | cut -d' ' -f1)
if [ "$sa" != "$sb" ]; then
  echo "packaging: two builds differ: $sa and $sb (install diffoscope to see where)" >&2
  exit 1
fi
echo "$(basename "$a"): sha256 $sa, twice"

echo "== packaging: lintian"
lintian --fail-on error --suppress-tags spelling-error-in-binary "$a"

echo "== packaging: contents against packaging/contents.txt"
# Mode, owner, path and a link's target: sizes change with every commit,
# the dates are SOURCE_DATE_EPOCH.
dpkg-deb -c "$a" | awk '{ $3 = $4 = $5 = ""; print }' | tr -s ' ' | sort -k3 >"$work/contents"
grep -v '^#' packaging/contents.txt | sed '/^$/d' | sort -k3 >"$work/want"
if ! diff -u "$work/want" "$work/contents" >"$work/diff"; then
  echo "packaging: the package's files are not packaging/contents.txt (- expected, + in the package):" >&2
  cat "$work/diff" >&2
  # These come from verbs and files other branches add (packaging/README.md).
  if grep -qE '^-.*(rackboot\.1\.gz|bash-completion|zsh/vendor-completions|dashboard\.json|alerts\.yml)' "$work/diff"; then
    echo "packaging: missing man page, completions or metrics files: this tree's rackboot lacks" >&2
    echo "  'rackboot manpage' / 'rackboot completion bash|zsh', or metrics/dashboard.json, metrics/alerts.yml" >&2
  fi
  exit 1
fi

echo "== packaging: systemd-analyze verify"
# verify checks that the unit's commands exist, so it runs against a root
# holding the package's files, /bin/kill (ExecReload) and the host
# systemd's own units (the targets the unit is ordered against).
root=$work/root
dpkg-deb -x "$a" "$root"
mkdir -p "$root/bin" "$root/etc"
cp /bin/kill "$root/bin/kill"
cp -a /lib/systemd/system/*.target /lib/systemd/system/*.slice "$root/lib/systemd/system/"
# Clean means silent: an unknown key or a bad value is only a warning.
# verify runs man(1) for Documentation=man:rackboot(1): MANPATH points it
# at the package's own pages.
if ! MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" /lib/systemd/system/rackboot.service >"$work/verify" 2>&1 || [ -s "$work/verify" ]; then
  echo "packaging: systemd-analyze verify rackboot.service:" >&2
  cat "$work/verify" >&2
  exit 1
fi
echo "packaging: ok"
