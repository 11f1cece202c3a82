package osimage

// initScript is the initramfs's /init, stage one of the boot: load the
// disk drivers, find the root partition by its GPT name, mount it and
// switch to it. Firmware and boot loader printed their last line without a
// newline, hence the empty echo before the first marker.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo
echo "` + MarkerInit + ` uptime=$(cut -d' ' -f1 /proc/uptime)"
fail() { echo "` + MarkerFail + ` $*"; sync; poweroff -f; }
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done < /etc/modules
` + partdevFunc + `
i=0
until root=$(partdev ` + RootPartition + `); do
	i=$((i+1))
	[ $i -gt 150 ] && fail "no partition named ` + RootPartition + `"
	sleep 0.1
done
mkdir -p /newroot
mount -t squashfs -o ro "/dev/$root" /newroot || fail "cannot mount the root file system /dev/$root"
for d in dev proc sys; do mount --move "/$d" "/newroot/$d"; done
exec switch_root /newroot /sbin/init
fail "switch_root failed"
`

// partdevFunc prints the kernel name of the first partition whose GPT
// name (PARTNAME in its uevent, the kernel's copy of the GPT entry's name)
// is $1.
const partdevFunc = `partdev() {
	for u in /sys/class/block/*/uevent; do
		if grep -qx "PARTNAME=$1" "$u"; then sed -n 's/^DEVNAME=//p' "$u"; return 0; fi
	done
	return 1
}`

// fatLabelFuncs find a FAT file system by its volume label.
//
// fatlabel prints the label in the boot sector of the FAT file system in
// file $1 (a device), read where the BPB says: at byte 71 for FAT32 (whose
// 16-bit FAT size is 0), 43 for FAT12 and FAT16. busybox findfs, like the
// FAT specification, tells FAT32 from FAT16 by the number of clusters, so
// it misreads the label of a small FAT32 file system such as the
// installer's config drive (8 MiB: 16100 clusters). Linux, blkid and
// cloud-init go by the BPB, and so does this.
//
// partlabel prints the device of the first partition whose FAT label is
// $1.
const fatLabelFuncs = `hexbytes() {
	dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | od -An -tx1 | tr -d ' \n'
}
fatlabel() {
	[ "$(hexbytes "$1" 510 2)" = 55aa ] || return 1
	off=43
	[ "$(hexbytes "$1" 22 2)" = 0000 ] && off=71
	dd if="$1" bs=1 skip=$off count=11 2>/dev/null | tr -d ' \000'
}
partlabel() {
	for u in /sys/class/block/*/uevent; do
		grep -qx DEVTYPE=partition "$u" || continue
		d=/dev/$(sed -n 's/^DEVNAME=//p' "$u")
		if [ "$(fatlabel "$d")" = "$1" ]; then echo "$d"; return 0; fi
	done
	return 1
}`

// osInit is /sbin/init on the root file system: the demo OS itself. It
// reports what it was installed with (see Report) and powers off.
//
// The config drive is the FAT partition labelled CIDATA (cloud-init's
// NoCloud data source; "cidata" is accepted too). The data partition is
// the one named "data": mounted whatever its file system (the installer
// creates the one the layout names, ext4 for the example fleet's storage
// hosts), else formatted FAT on first boot if its first 4 KiB are zeros
// (the installer zeroes the first MiB of a new partition), never if it
// holds anything else; hello.txt is written only if it is missing, so
// after a reinstall that preserved the partition it still names the
// version that created it.
const osInit = `#!/bin/busybox sh
/bin/busybox mount -t tmpfs -o mode=0755 tmpfs /run
/bin/busybox mkdir -p /run/bin /run/cidata /run/data
/bin/busybox --install -s /run/bin
export PATH=/run/bin
fail() { echo "` + MarkerFail + ` $*"; sync; poweroff -f; }
. /etc/os-release
fw=bios
[ -d /sys/firmware/efi ] && fw=efi
echo "` + MarkerOS + ` version=$VERSION_ID fw=$fw kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
` + partdevFunc + `
` + fatLabelFuncs + `
` + cidataFuncs + `

hostname=
cidata=$(partlabel CIDATA || partlabel cidata)
if [ -n "$cidata" ] && mount -t vfat -o ro "$cidata" /run/cidata; then
	hostname=$(cidata_hostname /run/cidata/meta-data)
	key=$(cidata_key /run/cidata/user-data)
	umount /run/cidata
	echo "` + MarkerHostname + ` ${hostname:-none}"
	echo "` + MarkerSSHKey + ` $(key_summary "$key")"
else
	echo "` + MarkerWarn + ` no CIDATA config drive"
fi

data=$(partdev data)
if [ -n "$data" ]; then
	if ! mount "/dev/$data" /run/data 2>/dev/null; then
		if [ -n "$(dd if="/dev/$data" bs=4096 count=1 2>/dev/null | tr -d '\000')" ]; then
			fail "partition data (/dev/$data) holds something other than FAT; not formatting it"
		fi
		mkdosfs -n DATA "/dev/$data" >/dev/null || fail "cannot format /dev/$data"
		mount -t vfat "/dev/$data" /run/data || fail "cannot mount /dev/$data"
		echo "` + MarkerFormatted + ` /dev/$data"
	fi
	[ -f /run/data/hello.txt ] || echo "created by $VERSION_ID on ${hostname:-unknown}" > /run/data/hello.txt
	echo "` + MarkerData + ` $(head -n 1 /run/data/hello.txt)"
	umount /run/data
else
	echo "` + MarkerWarn + ` no partition named data"
fi
sync
echo "` + MarkerDone + ` uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
`

// cidataFuncs read the NoCloud files of the config drive, the way
// agentapi.NoCloud.Render writes them (block-style YAML), the one
// renderer of the config drives the appliance serves.
//
// cidata_hostname prints local-hostname from meta-data. cidata_key prints
// the first item of the first ssh_authorized_keys list in user-data; only
// the item's first line, so a long key that a YAML writer folded onto
// several lines still gives its type and start. key_summary prints what
// SSHKeySummary returns.
const cidataFuncs = `cidata_hostname() {
	sed -n 's/^local-hostname:[[:space:]]*//p' "$1" | head -n 1 | tr -d "\"'\r"
}
cidata_key() {
	awk '
		/^[[:space:]]*ssh_authorized_keys:[[:space:]]*$/ { want = 1; next }
		want && /^[[:space:]]*- / { sub(/^[[:space:]]*- [[:space:]]*/, ""); gsub(/["\047\r]/, ""); print; exit }
		want && NF && !/^[[:space:]]*#/ { want = 0 }
	' "$1" 2>/dev/null
}
key_summary() {
	set -f
	set -- $1
	set +f
	if [ $# -lt 2 ]; then echo none; return; fi
	body=$(echo "$2" | cut -c1-20)
	[ ${#2} -gt 20 ] && body="$body..."
	echo "$1 $body"
}`
