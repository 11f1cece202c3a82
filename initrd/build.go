package initrd

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ModuleList is where the archive lists the modules to load, one path per
// line relative to /lib/modules, dependencies first. The agent reads it.
const ModuleList = "etc/rackboot/modules"

// Config says what goes into the archive.
type Config struct {
	// Agent is the static rackboot-agent binary; it becomes /init.
	Agent string
	// ModulesDir is a kernel's modules directory (lib/modules/VERSION,
	// holding modules.dep). Empty builds an archive without modules, for
	// kernels with the drivers built in.
	ModulesDir string
	// Modules are the module names to include with their dependencies;
	// nil means DefaultModules.
	Modules []string
	// Tools are programs of the build host the agent runs, carried with
	// their program interpreter and the shared libraries they need
	// (DT_NEEDED, recursively), each stored under the path the agent or
	// the dynamic loader looks it up by: names looked up in PATH, then
	// /usr/sbin and /sbin, or absolute paths. Libraries a program opens
	// at run time (dlopen) are not found this way. Nil means
	// DefaultTools, each if the host has it (Report.MissingTools names
	// those it lacks); empty means none; a tool named here that the host
	// lacks is an error.
	Tools []string
	// Compression is "gzip" (the default) or "zstd".
	Compression string
}

// Report says what Build put in the archive.
type Report struct {
	Modules []string // module paths, in load order
	Missing []string // requested modules the kernel does not have
	// Tools are the programs carried, by their path in the installer.
	Tools []string
	// Libraries are the shared libraries and program interpreters
	// carried for the tools, by their path in the installer.
	Libraries []string
	// MissingTools are default tools the build host does not have.
	MissingTools []string
	Files        int
	Bytes        int64 // uncompressed payload
}

// Build writes the archive to w.
func Build(w io.Writer, cfg Config) (Report, error) {
	var rep Report
	tools, programs, missing, err := collectTools(cfg)
	if err != nil {
		return rep, err
	}
	rep.Tools, rep.MissingTools = programs, missing
	cw, err := compressor(w, cfg.Compression)
	if err != nil {
		return rep, err
	}
	if err := writeDevices(cw); err != nil {
		return rep, err
	}
	a := &archive{w: cpio.NewWriter(cw), rep: &rep, dirs: map[string]bool{"dev": true}}
	for _, d := range []string{"proc", "sys", "tmp", "run", "mnt", "etc/rackboot"} {
		if err := a.dir(d); err != nil {
			return rep, err
		}
	}
	if err := a.file("init", cfg.Agent, 0o755); err != nil {
		return rep, fmt.Errorf("agent: %w", err)
	}
	for _, t := range tools.files {
		if err := a.file(strings.TrimPrefix(t.name, "/"), t.src, cpio.FileMode(t.perm)); err != nil {
			return rep, fmt.Errorf("tool: %w", err)
		}
		if !slices.Contains(programs, t.name) {
			rep.Libraries = append(rep.Libraries, t.name)
		}
	}
	var list strings.Builder
	if cfg.ModulesDir != "" {
		db, err := readModulesDep(cfg.ModulesDir)
		if err != nil {
			return rep, err
		}
		names := cfg.Modules
		if names == nil {
			names = DefaultModules
		}
		rep.Modules, rep.Missing = db.resolve(names)
		for _, p := range rep.Modules {
			if err := a.file(path.Join("lib/modules", p), filepath.Join(cfg.ModulesDir, p), 0o644); err != nil {
				return rep, err
			}
			list.WriteString(p + "\n")
		}
	}
	if err := a.bytes(ModuleList, []byte(list.String()), 0o644); err != nil {
		return rep, err
	}
	if err := a.w.Close(); err != nil {
		return rep, err
	}
	return rep, cw.Close()
}

func compressor(w io.Writer, kind string) (io.WriteCloser, error) {
	switch kind {
	case "", "gzip":
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	case "zstd":
		// Linux decompresses zstd initramfs archives since 5.9.
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	default:
		return nil, fmt.Errorf("compression %q: want gzip or zstd", kind)
	}
}

// archive writes entries, creating parent directories first: the kernel's
// unpacker does not create them.
type archive struct {
	w    *cpio.Writer
	rep  *Report
	dirs map[string]bool
}

// epoch keeps archives reproducible: the same inputs give the same bytes.
var epoch = time.Unix(0, 0)

func (a *archive) dir(name string) error {
	if name == "." || a.dirs[name] {
		return nil
	}
	if err := a.dir(path.Dir(name)); err != nil {
		return err
	}
	a.dirs[name] = true
	return a.w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeDir | 0o755, ModTime: epoch, Links: 2})
}

func (a *archive) file(name, src string, perm cpio.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return a.bytes(name, b, perm)
}

func (a *archive) bytes(name string, b []byte, perm cpio.FileMode) error {
	if err := a.dir(path.Dir(name)); err != nil {
		return err
	}
	if err := a.w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | perm, Size: int64(len(b)), ModTime: epoch, Links: 1}); err != nil {
		return err
	}
	if _, err := a.w.Write(b); err != nil {
		return err
	}
	a.rep.Files++
	a.rep.Bytes += int64(len(b))
	return nil
}

// ErrNotStatic is returned by CheckStatic for a dynamically linked agent,
// which could not run: the archive holds no C library.
var ErrNotStatic = errors.New("initrd: the agent binary is dynamically linked (build it with CGO_ENABLED=0)")

// CheckStatic reports ErrNotStatic when the ELF binary at name asks for a
// program interpreter (the dynamic loader).
func CheckStatic(name string) error {
	f, err := elf.Open(name)
	if err != nil {
		return fmt.Errorf("initrd: agent %s: %w", name, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return ErrNotStatic
		}
	}
	return nil
}
