// Package lab is rackboot's end-to-end laboratory: real PXE firmware in QEMU
// virtual machines, booting against a server on a private network that lives
// entirely inside Linux network namespaces.
//
// It owns six things:
//
//   - Net: three namespaces joined by a bridge (server, site DHCP, clients),
//     the hosts added to the segment (AddHost: a second appliance, etcd
//     members), the taps the virtual machines plug into, and the processes
//     started in them; Close removes it all, and Sweep removes what a
//     killed run left.
//   - Etcd: a cluster of Debian's etcd, one member per host, whose members
//     a test kills and restarts (appliances sharing one store).
//   - Artifacts: a distribution kernel fetched with apt from the Debian
//     mirrors and a tiny busybox initramfs that prints a marker line on the
//     serial console and powers off.
//   - VM: one QEMU machine (SeaBIOS or OVMF) whose serial console is captured
//     with timestamps relative to power-on.
//   - BMCVM and IPMISim: a QEMU machine whose power a BMC drives (ipmi_sim,
//     or a Redfish double through its methods), with a one-time network
//     boot, its state in a directory that ipmi_sim's chassis program
//     (ChassisMain) operates too.
//   - Timeline: seconds from power-on to the milestones of a network boot,
//     read from the serial console and from the server's JSON log.
//
// Nothing here is specific to a test framework, so a demo command can drive
// the same lab. Most of it needs root, qemu-system-x86, ovmf, ipxe and
// busybox-static; CheckHost says what is missing. No traffic leaves the
// namespaces: they have no uplink and no default route.
package lab
