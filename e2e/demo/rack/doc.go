// Package rack is the virtual rack that rackboot's demo shows and its
// end-to-end suite tests: three machines of the example fleet (package
// examples), each with other firmware, network card, OS version and disk
// layout, and what they need to live through rackboot's whole job:
//
//   - Build makes everything rackboot serves them, in one directory: the
//     rackboot binary, the static rackboot-agent and its initramfs (with
//     the lab kernel's modules), and the demo OS images demo-1.0 and
//     demo-1.1 (package osimage);
//   - WriteProfiles writes the example fleet as rackboot's --profiles
//     directory, with the real sha256 of the images built;
//   - Machine.Install powers a machine on to be installed over the network
//     (PXE, iPXE, the agent), which ends when the agent reboots it;
//     Machine.BootDisk powers it on again, with the same disk, to boot the
//     installed OS, which reports on its console what it was given.
//
// The lab itself (namespaces, QEMU, `rackboot serve`) is package lab. The
// demo command (e2e/demo) shows the rack to people; the suite
// (e2e/rack_test.go) asserts on it.
package rack
