package main

// Pointing UEFI firmware at the installed system.
//
// After an install the machine must come up from its disk, and it must
// still ask rackboot first at every later boot, so that `rackboot
// reinstall` takes effect at the next power cycle without anyone touching
// the machine. rackboot's script for an installed machine ends with
// `exit`, which under UEFI returns to the boot manager, and the boot
// manager then tries the next entry of BootOrder (UEFI 2.10 section 3.1.1).
// So the agent, still running on the machine when the image is written:
//
//   - makes a Boot#### entry for the installed system: the removable-media
//     loader (\EFI\BOOT\BOOTX64.EFI) on the image's EFI System Partition,
//     as a short-form HD() device path (partition number, start, size and
//     GPT partition GUID), reusing an entry that already boots that file on
//     that partition, or rackboot's own entry of an earlier install;
//   - puts it in BootOrder right after the network entry the machine
//     booted rackboot through (BootCurrent), or after the leading network
//     entries: the network stays first, and the disk is what `exit` falls
//     through to, before any other NIC or IP version times out;
//   - sets BootNext to it: the boot right after the install goes straight
//     to the disk (the firmware clears BootNext as it uses it), with no
//     network boot in between.
//
// OVMF under QEMU is a special case: at every boot it rebuilds BootOrder
// from QEMU's bootindex list and deletes the entries of devices not on it
// that start with HD() or PciRoot() (OvmfPkg QemuBootOrderLib,
// BootOrderComplete), this one included, BootNext with it. A QEMU
// machine's disk needs a bootindex (after the NIC's) for any OS's boot
// entry to survive; OVMF then also puts all of the NIC's entries first.
//
// Firmware that remembers no entry (a fresh NVRAM, a replaced board) still
// boots rackboot's script, and `exit` then reaches whatever the firmware
// enumerates on its own. A failure here therefore does not fail the
// install: the disk is written and verified; it is logged.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"slices"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
)

// efiVars reads and writes the variables of the EFI global variable
// namespace (EFI_GLOBAL_VARIABLE, UEFI 2.10 section 3.3), where the boot
// manager's are. efivarfs implements it on Linux.
type efiVars interface {
	// names lists the namespace's variables ("Boot0001", "BootOrder").
	names() ([]string, error)
	// get returns a variable's value without its attributes, or an error
	// wrapping fs.ErrNotExist when it is not set.
	get(name string) ([]byte, error)
	// set writes a non-volatile variable visible to boot and runtime
	// services, as the boot manager's variables are.
	set(name string, value []byte) error
}

// descriptionPrefix starts the description of the entries rackboot
// creates, which the next install may take over.
const descriptionPrefix = "rackboot "

// diskBoot is the boot entry of an installed system.
type diskBoot struct {
	Description string
	ESP         hardDrive
	Loader      string // path on the ESP, with backslashes
}

// bootChange is what setDiskBoot did.
type bootChange struct {
	Entry   uint16
	Written bool     // Boot#### was written: new, or changed
	Order   []uint16 // BootOrder as it is now
}

// setDiskBoot makes want an entry of the firmware's boot manager, places
// it in BootOrder after the network entries and sets BootNext to it.
// Everything is read before the first write, so a variable that does not
// decode changes nothing.
func setDiskBoot(vars efiVars, want diskBoot) (bootChange, error) {
	options, used, err := readOptions(vars)
	if err != nil {
		return bootChange{}, err
	}
	order, err := readUint16s(vars, "BootOrder")
	if err != nil {
		return bootChange{}, err
	}
	cur, err := readUint16s(vars, "BootCurrent")
	if err != nil {
		return bootChange{}, err
	}

	entry, ok := chooseEntry(options, used, want)
	if !ok {
		return bootChange{}, errors.New("no free Boot#### number")
	}
	opt := loadOption{Attributes: loadOptionActive, Description: want.Description, FilePath: diskPath(want.ESP, want.Loader)}
	old, exists := options[entry]
	if exists && bootsLoader(old.FilePath, want.ESP, want.Loader) && old.Attributes&loadOptionActive != 0 &&
		!strings.HasPrefix(old.Description, descriptionPrefix) {
		opt = old // the OS's own entry for this loader: keep its name and data
	}
	ch := bootChange{Entry: entry}
	if !exists || !bytes.Equal(old.marshal(), opt.marshal()) {
		if err := vars.set(bootName(entry), opt.marshal()); err != nil {
			return bootChange{}, fmt.Errorf("writing %s: %w", bootName(entry), err)
		}
		ch.Written = true
	}
	options[entry] = opt

	network := func(n uint16) bool {
		o, ok := options[n]
		return ok && isNetwork(o.FilePath)
	}
	var current uint16
	if len(cur) == 1 {
		current = cur[0]
	}
	ch.Order = placeEntry(order, entry, current, len(cur) == 1, network)
	if !slices.Equal(ch.Order, order) {
		if err := vars.set("BootOrder", marshalUint16s(ch.Order...)); err != nil {
			return bootChange{}, fmt.Errorf("writing BootOrder: %w", err)
		}
	}
	// Last: a BootNext naming an entry not yet written would be ignored
	// by the firmware at best.
	if err := vars.set("BootNext", marshalUint16s(entry)); err != nil {
		return bootChange{}, fmt.Errorf("writing BootNext: %w", err)
	}
	return ch, nil
}

// readOptions returns the Boot#### options that decode, and every number
// in use. An option that does not decode is someone else's: it is neither
// reused nor overwritten.
func readOptions(vars efiVars) (map[uint16]loadOption, map[uint16]bool, error) {
	names, err := vars.names()
	if err != nil {
		return nil, nil, err
	}
	options := map[uint16]loadOption{}
	used := map[uint16]bool{}
	for _, name := range names {
		n, ok := parseBootName(name)
		if !ok {
			continue
		}
		used[n] = true
		b, err := vars.get(name)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if o, err := parseLoadOption(b); err == nil {
			options[n] = o
		}
	}
	return options, used, nil
}

// chooseEntry picks the Boot#### number for want: an entry that already
// boots its loader on its ESP (the OS installed it, or this is a repeated
// install of the same image), else rackboot's entry of an earlier install
// (whose partition GUID a new image changed), else the lowest number no
// variable uses.
func chooseEntry(options map[uint16]loadOption, used map[uint16]bool, want diskBoot) (uint16, bool) {
	nums := make([]uint16, 0, len(options))
	for n := range options {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		if bootsLoader(options[n].FilePath, want.ESP, want.Loader) {
			return n, true
		}
	}
	for _, n := range nums {
		if strings.HasPrefix(options[n].Description, descriptionPrefix) && !isNetwork(options[n].FilePath) {
			return n, true
		}
	}
	for n := range 0x10000 {
		if !used[uint16(n)] {
			return uint16(n), true
		}
	}
	return 0, false
}

// placeEntry returns order with entry right after the network entry the
// machine booted through (current, when it is a network entry in order),
// else right after the network entries that lead order, else first. Other
// entries keep their places. Under the first rule, other NICs' and IP
// versions' entries after current come after the disk: `exit` reaches the
// disk at once instead of after each of them has timed out, and they
// still come before anything else should the disk fail.
func placeEntry(order []uint16, entry, current uint16, hasCurrent bool, network func(uint16) bool) []uint16 {
	rest := slices.DeleteFunc(slices.Clone(order), func(n uint16) bool { return n == entry })
	at := 0
	if i := slices.Index(rest, current); hasCurrent && i >= 0 && network(current) {
		at = i + 1
	} else {
		for at < len(rest) && network(rest[at]) {
			at++
		}
	}
	return slices.Insert(rest, at, entry)
}

// readUint16s reads a variable holding UINT16s (BootOrder, BootCurrent);
// an unset variable is empty.
func readUint16s(vars efiVars, name string) ([]uint16, error) {
	b, err := vars.get(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	v, err := parseBootOrder(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// removableLoader is the default boot file of removable media for the
// machine's architecture (UEFI 2.10 section 3.5.1.1), which whole-disk
// images carry so that they boot on any firmware without an entry.
func removableLoader() string {
	switch runtime.GOARCH {
	case "arm64":
		return `\EFI\BOOT\BOOTAA64.EFI`
	case "386":
		return `\EFI\BOOT\BOOTIA32.EFI`
	case "riscv64":
		return `\EFI\BOOT\BOOTRISCV64.EFI`
	}
	return `\EFI\BOOT\BOOTX64.EFI`
}

// installedBoot describes the entry for the disk an install wrote: its
// first EFI System Partition.
func installedBoot(res *imaging.Result, version string) (diskBoot, error) {
	if res.SectorSize <= 0 {
		return diskBoot{}, fmt.Errorf("sector size %d", res.SectorSize)
	}
	ss := int64(res.SectorSize)
	for _, p := range res.Partitions {
		if !strings.EqualFold(p.Type, espTypeGUID) {
			continue
		}
		g, err := efiGUID(p.GUID)
		if err != nil {
			return diskBoot{}, fmt.Errorf("partition %d: %w", p.Index, err)
		}
		desc := strings.TrimSpace(descriptionPrefix + version)
		return diskBoot{
			Description: desc,
			ESP:         hardDrive{Partition: uint32(p.Index), Start: uint64(p.Start / ss), Size: uint64(p.Size / ss), GUID: g},
			Loader:      removableLoader(),
		}, nil
	}
	return diskBoot{}, errors.New("no EFI System Partition on the installed disk")
}

// setBootEntry points the firmware at the system just installed; see the
// top of this file. Failures are logged: the install stands.
func (a *agent) setBootEntry(log *slog.Logger, version string, res *imaging.Result) {
	want, err := installedBoot(res, version)
	if err == nil {
		var ch bootChange
		if ch, err = setDiskBoot(a.efi, want); err == nil {
			log.Info("UEFI boot entry set", "phase", agentapi.PhaseBootEntry, "entry", bootName(ch.Entry),
				"written", ch.Written, "boot_next", bootName(ch.Entry), "boot_order", formatOrder(ch.Order),
				"loader", want.Loader, "partition", want.ESP.Partition)
			return
		}
	}
	log.Warn("UEFI boot entry not set: the firmware boots the disk only if it finds it on its own",
		"phase", agentapi.PhaseBootEntry, "err", err)
}
