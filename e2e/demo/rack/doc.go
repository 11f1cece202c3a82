// Package rack is the virtual rack that rackboot's demo shows and its
// end-to-end suite tests: machines that boot in three ways (BIOS with a
// virtio NIC, UEFI through its firmware's PXE client, UEFI with an Intel
// e1000 and its iPXE ROM), and what they need to live through rackboot's
// whole job. It comes in two fleets:
//
//   - the example rack (Machines): three hosts of the example fleet
//     (package examples), with the busybox demo images demo-1.0 and
//     demo-1.1 and two disk layouts, which the suite's TestRack installs,
//     upgrades and breaks in seconds; WriteProfiles writes the example
//     fleet as rackboot's --profiles directory with the images' sha256;
//   - the Debian rack (DebianMachines): three machines of the demo's own
//     fleet (debian.yaml.tmpl), installing a real Debian 12
//     (DebianVersion), each with a static address, a preserved data
//     partition and a user with the run's SSH key; WriteDebianProfiles
//     writes it.
//
// Build makes everything rackboot serves either rack, in one directory:
// the rackboot binary, the static rackboot-agent and its initramfs (with
// the lab kernel's modules), and the OS images (package osimage).
// Machine.PowerOn powers a machine on, network first, then its disk:
// WaitInstall follows its install over the network (PXE, iPXE, the agent)
// to the agent's reboot; the next power-on boots the installed OS, which
// the demo OS reports on its console (WaitOS) and Debian answers over SSH
// (e2e/demo).
//
// The lab itself (namespaces, QEMU, `rackboot serve`) is package lab. The
// demo command (e2e/demo) shows the Debian rack to people; the suite
// (e2e/rack_test.go) asserts on the example rack.
package rack
