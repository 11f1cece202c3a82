package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// efiVarsDir is where the agent mounts efivarfs (system_linux.go).
const efiVarsDir = "/sys/firmware/efi/efivars"

// efiGlobalVariable is the vendor GUID of the boot manager's variables
// (EFI_GLOBAL_VARIABLE, UEFI 2.10 section 3.3); efivarfs names files
// NAME-GUID.
const efiGlobalVariable = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

// Variable attributes (UEFI 2.10 section 8.2, SetVariable). Boot####,
// BootOrder and BootNext are all three.
const (
	varNonVolatile       = 0x00000001
	varBootserviceAccess = 0x00000002
	varRuntimeAccess     = 0x00000004

	bootVarAttributes = varNonVolatile | varBootserviceAccess | varRuntimeAccess
)

// fsImmutable is FS_IMMUTABLE_FL of linux/fs.h, the flag chattr +i sets.
const fsImmutable = 0x00000010

// efivarfs is efiVars on Linux's efivarfs (Documentation/filesystems/
// efivarfs.rst). Each variable is a file whose content is the 4-byte
// little-endian attributes followed by the value; one write(2) of that
// whole buffer is one SetVariable call.
type efivarfs struct {
	dir string
}

func (e efivarfs) path(name string) string {
	return filepath.Join(e.dir, name+"-"+efiGlobalVariable)
}

func (e efivarfs) names() ([]string, error) {
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		return nil, fmt.Errorf("efivarfs: %w", err)
	}
	var names []string
	for _, ent := range ents {
		if name, ok := strings.CutSuffix(ent.Name(), "-"+efiGlobalVariable); ok {
			names = append(names, name)
		}
	}
	return names, nil
}

func (e efivarfs) get(name string) ([]byte, error) {
	b, err := os.ReadFile(e.path(name))
	if err != nil {
		return nil, fmt.Errorf("efivarfs: %w", err)
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("efivarfs: %s: %d bytes, less than its attributes", name, len(b))
	}
	return b[4:], nil
}

// set writes the variable in a single write. Since Linux 4.6 efivarfs
// makes the file of every variable it does not know immutable, so that
// `rm -rf /` cannot brick a machine whose firmware breaks without them.
// Boot####, BootOrder and BootNext are on its list today, but the flag is
// cleared first whenever it is set, as efibootmgr (libefivar) does. No
// O_TRUNC: the write replaces the whole value anyway.
func (e efivarfs) set(name string, value []byte) error {
	p := e.path(name)
	if err := clearImmutable(p); err != nil {
		return fmt.Errorf("efivarfs: %s: %w", name, err)
	}
	buf := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(value)), bootVarAttributes)
	buf = append(buf, value...)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("efivarfs: %w", err)
	}
	n, err := f.Write(buf)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// EINVAL: the kernel's validation or the firmware refused the
		// value; ENOSPC: NVRAM full.
		return fmt.Errorf("efivarfs: writing %s: %w", name, err)
	}
	return nil
}

// clearImmutable removes the immutable flag (chattr -i) from an existing
// file through FS_IOC_GETFLAGS/FS_IOC_SETFLAGS. A missing file, or a file
// system without flags, needs nothing.
func clearImmutable(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("FS_IOC_GETFLAGS: %w", err)
	}
	if flags&fsImmutable == 0 {
		return nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags&^fsImmutable)); err != nil {
		return fmt.Errorf("clearing the immutable flag: %w", err)
	}
	return nil
}
