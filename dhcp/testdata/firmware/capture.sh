#!/bin/bash
# Recapture the firmware DHCP fixtures of this folder: boot each kind of lab
# client once against `rackboot serve` (built from the committed HEAD of this
# repository) beside a plain site DHCP server (busybox udhcpd), and keep only
# the DHCP packets of its network boot.
#
#   sudo dhcp/testdata/firmware/capture.sh [CLIENT...]
#
# CLIENT is one of (all when none is given; each writes CLIENT.pcap here):
#   seabios-ipxe          SeaBIOS + QEMU's iPXE ROM (pxe-virtio.rom)
#   ovmf-ipxe             OVMF + QEMU's iPXE EFI ROM (efi-virtio.rom)
#   ovmf-edk2-pxe         OVMF's own PXE client (no NIC ROM) -> snponly.efi
#   ovmf-httpboot         OVMF's HTTP boot client (PXE boot options hidden)
#   ovmf-edk2-bootserver  OVMF's own PXE client, but the proxy offer comes
#                         from dnsmasq, whose PXE menu names rackboot as boot
#                         server: the firmware asks rackboot on port 4011
#                         (rackboot's own offers make EDK2 skip that step)
# Needs root, Go and the Debian packages qemu-system-x86 ipxe ipxe-qemu ovmf
# busybox-static tcpdump dnsmasq-base. TCG only: well under a minute per
# client. Nothing leaves the network namespaces the script makes (no uplink,
# no default route); it removes them, and stops what it started, when it
# ends. The tests never run this: the pcaps are committed, and README.md
# says how they were made.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(seabios-ipxe ovmf-ipxe ovmf-edk2-pxe ovmf-httpboot ovmf-edk2-bootserver)
TIMEOUT=${TIMEOUT:-180} # seconds a client gets to fetch iPXE's script

# The lab segment, as in e2e/lab, plus a namespace for dnsmasq.
SRV_IP=192.168.77.1
SITE_IP=192.168.77.2
BOOT_IP=192.168.77.4
HTTP_PORT=8080
NS=rbcap-$$-srv
SITE=rbcap-$$-site
BOOT=rbcap-$$-boot
work=$(mktemp -d /tmp/rbcap.XXXXXX)
pids=()
rackboot=

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 1
	for ns in "$NS" "$SITE" "$BOOT"; do
		if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
			for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done
			ip netns del "$ns"
		fi
	done
	echo "logs and serial consoles kept in $work"
}
trap cleanup EXIT

mac_of() {
	case $1 in
	seabios-ipxe) echo 52:54:00:77:00:11 ;;
	ovmf-ipxe) echo 52:54:00:77:00:12 ;;
	ovmf-edk2-pxe) echo 52:54:00:77:00:13 ;;
	ovmf-httpboot) echo 52:54:00:77:00:14 ;;
	ovmf-edk2-bootserver) echo 52:54:00:77:00:15 ;;
	*)
		echo "unknown client $1" >&2
		exit 2
		;;
	esac
}
for c in "${clients[@]}"; do mac_of "$c" >/dev/null; done

# rackboot as committed (HEAD, not the work tree, which may be mid-edit), a
# fleet that knows every client's MAC, and an empty artifacts directory (the
# clients are stopped before they load any).
commit=$(git -C "$repo" rev-parse HEAD)
mkdir -p "$work/src" "$work/profiles" "$work/artifacts" "$work/data"
git -C "$repo" archive "$commit" | tar -x -C "$work/src"
(cd "$work/src" && go build -o "$work/rackboot" ./cmd/rackboot)
echo "rackboot built from $commit"
{
	echo 'defaults:'
	echo '  installer: { kernel: vmlinuz, initrd: initrd.img, cmdline: "console=ttyS0,115200" }'
	echo 'hosts:'
	for c in seabios-ipxe ovmf-ipxe ovmf-edk2-pxe ovmf-httpboot ovmf-edk2-bootserver; do
		echo "  - { mac: \"$(mac_of "$c")\", hostname: $c }"
	done
} >"$work/profiles/fleet.yaml"

# The appliance and the VMs' taps on a bridge in $NS, the site DHCP server
# in $SITE, dnsmasq (only while ovmf-edk2-bootserver boots) in $BOOT.
ip netns add "$NS"
ip netns add "$SITE"
ip netns add "$BOOT"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge stp_state 0 forward_delay 0
ip -n "$NS" addr add "$SRV_IP/24" dev br0
ip -n "$NS" link add vsite-br type veth peer name vsite0 netns "$SITE"
ip -n "$NS" link set vsite-br master br0 up
ip -n "$NS" link add vboot-br type veth peer name vboot0 netns "$BOOT"
ip -n "$NS" link set vboot-br master br0 up
ip -n "$NS" link set br0 up
ip -n "$SITE" link set lo up
ip -n "$SITE" addr add "$SITE_IP/24" dev vsite0
ip -n "$SITE" link set vsite0 up
ip -n "$BOOT" link set lo up
ip -n "$BOOT" addr add "$BOOT_IP/24" dev vboot0
ip -n "$BOOT" link set vboot0 up
sleep 2 # IPv6 duplicate address detection on br0, for the RA responder

cat >"$work/udhcpd.conf" <<EOF
start 192.168.77.100
end 192.168.77.150
interface vsite0
lease_file $work/udhcpd.leases
pidfile $work/udhcpd.pid
opt subnet 255.255.255.0
opt lease 3600
EOF
: >"$work/udhcpd.leases"
ip netns exec "$SITE" busybox udhcpd -f "$work/udhcpd.conf" >"$work/udhcpd.log" 2>&1 &
pids+=($!)

# start_rackboot [FLAG...]: (re)start rackboot serve on br0 with the lab's
# flags and FLAGs, and wait until it serves.
start_rackboot() {
	if [ -n "$rackboot" ]; then
		kill "$rackboot"
		wait "$rackboot" 2>/dev/null || true
	fi
	local log=$work/rackboot.log
	local from
	from=0
	if [ -f "$log" ]; then from=$(wc -l <"$log"); fi
	ip netns exec "$NS" "$work/rackboot" serve --profiles "$work/profiles" --data "$work/data" \
		--artifacts "$work/artifacts" --ipxe-dir /usr/lib/ipxe --interface br0 \
		--http-port "$HTTP_PORT" --tftp-port 69 --dhcp-port 67 --ipv6-ra \
		--log-format json --log-level debug "$@" >>"$log" 2>&1 &
	rackboot=$!
	pids+=("$rackboot")
	for _ in $(seq 100); do
		tail -n +"$((from + 1))" "$log" | grep -q '"rackboot serving"' && return 0
		sleep 0.1
	done
	tail -n 20 "$log" >&2
	exit 1
}

# The boot server case: dnsmasq as a second proxy whose PXE menu item (boot
# server type 1) names rackboot as its boot server, so that the firmware
# asks rackboot's port 4011 for its boot file (PXE 2.1 boot server
# discovery); rackboot's port 67 is off so that its own offer, which skips
# that step, does not compete. Chained iPXE gets its script from dnsmasq.
start_dnsmasq() {
	cat >"$work/dnsmasq.conf" <<EOF
port=0
interface=vboot0
bind-interfaces
log-dhcp
dhcp-range=192.168.77.0,proxy,255.255.255.0
dhcp-match=set:ipxe,175
pxe-service=tag:!ipxe,BC_EFI,"rackboot boot server",1,$SRV_IP
pxe-service=tag:!ipxe,X86-64_EFI,"rackboot boot server",1,$SRV_IP
dhcp-boot=tag:ipxe,http://$SRV_IP:$HTTP_PORT/boot.ipxe,,$SRV_IP
EOF
	ip netns exec "$BOOT" dnsmasq -k --conf-file="$work/dnsmasq.conf" --log-facility=- >"$work/dnsmasq.log" 2>&1 &
	dnsmasq=$!
	pids+=("$dnsmasq")
	sleep 1
}

i=0
for c in "${clients[@]}"; do
	mac=$(mac_of "$c")
	tap=tap$i
	i=$((i + 1))
	dnsmasq=
	if [ "$c" = ovmf-edk2-bootserver ]; then
		start_rackboot --dhcp-port 0
		start_dnsmasq
	else
		start_rackboot
	fi
	ip -n "$NS" tuntap add dev "$tap" mode tap
	ip -n "$NS" link set "$tap" master br0 up

	# A machine UUID (SMBIOS), as real hardware has, so that option 97 is
	# not all zeros: its last 12 digits are the MAC's.
	args=(-accel tcg -machine q35 -m 1024 -smp 1 -nographic -monitor none -serial stdio -no-reboot
		-uuid "8f3a9c20-1d2e-4b5f-a687-${mac//:/}"
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no")
	case $c in
	seabios-ipxe) # SeaBIOS + QEMU's iPXE ROM
		args+=(-device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1" -boot n) ;;
	ovmf-ipxe) # OVMF + QEMU's iPXE EFI ROM
		args+=(-device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1") ;;
	ovmf-edk2-pxe | ovmf-edk2-bootserver) # OVMF's own PXE client: no NIC ROM
		args+=(-device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1,romfile=") ;;
	ovmf-httpboot) # OVMF's HTTP boot client: no NIC ROM, PXE boot options hidden
		args+=(-device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1,romfile="
			-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=n
			-fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n) ;;
	esac
	if [ "$c" != seabios-ipxe ]; then
		cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/$c.vars.fd" # fresh NVRAM
		args+=(-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
			-drive "if=pflash,format=raw,unit=1,file=$work/$c.vars.fd")
	fi
	echo "qemu-system-x86_64 ${args[*]}" >"$work/$c.cmd"

	# The VM's own port of the bridge: its requests and every answer to it
	# (broadcast or not), and nothing of the other clients.
	ip netns exec "$NS" tcpdump -i "$tap" -n -U -s 0 -w "$work/$c.pcap" \
		'udp port 67 or udp port 68 or udp port 4011' 2>"$work/$c.tcpdump.log" &
	tcpdump=$!
	pids+=("$tcpdump")
	sleep 1
	ip netns exec "$NS" qemu-system-x86_64 "${args[@]}" </dev/null >"$work/$c.serial.log" 2>"$work/$c.qemu.log" &
	qemu=$!
	pids+=("$qemu")
	# iPXE (the ROM, or the snponly.efi the firmware loaded) fetching the
	# script means every DHCP exchange of the boot is over.
	ok=
	for _ in $(seq $((TIMEOUT * 2))); do
		if grep -aq 'boot\.ipxe' "$work/$c.serial.log"; then
			ok=1
			break
		fi
		kill -0 "$qemu" 2>/dev/null || break
		sleep 0.5
	done
	sleep 3 # late answers
	kill "$qemu" 2>/dev/null || true
	wait "$qemu" 2>/dev/null || true
	kill -INT "$tcpdump"
	wait "$tcpdump" 2>/dev/null || true
	if [ -n "$dnsmasq" ]; then
		kill "$dnsmasq"
		wait "$dnsmasq" 2>/dev/null || true
	fi
	ip -n "$NS" link del "$tap"
	cp "$work/$c.pcap" "$here/$c.pcap"
	n=$(tcpdump -r "$here/$c.pcap" -n 2>/dev/null | wc -l)
	if [ -n "$ok" ]; then
		echo "$c: $n packets, iPXE fetched its script"
	else
		echo "$c: $n packets, iPXE's script NOT fetched in ${TIMEOUT}s; the console ends:" >&2
		tail -c 2000 "$work/$c.serial.log" | tr -d '\033' >&2
	fi
done
