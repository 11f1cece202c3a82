// Package e2e holds rackboot's end-to-end tests: real PXE firmware (SeaBIOS
// with QEMU's iPXE ROM, OVMF with its own EDK2 PXE client) in QEMU machines
// boots against `rackboot serve` inside network namespaces, next to a plain
// site DHCP server, until the booted initramfs prints a marker.
//
// The tests carry the build tag e2e and need root, qemu-system-x86, ovmf,
// ipxe, ipxe-qemu and busybox-static. Run them with ./e2e/run.sh, or
//
//	RACKBOOT_E2E=1 go test -tags e2e -count=1 -v -timeout 30m ./e2e/...
//
// The laboratory itself (namespaces, artifacts, VMs, timelines) is package
// lab, which a demo can drive as well.
package e2e
