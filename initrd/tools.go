package initrd

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// DefaultTools are the build host's programs an archive carries when
// Config.Tools is nil, those of them the host has: mkfs.xfs (Debian's
// xfsprogs), with which the agent creates the layout partitions of
// filesystem xfs, since no Go library writes xfs. An installer built on a
// host without it refuses such plans before it writes anything.
var DefaultTools = []string{"mkfs.xfs"}

// toolDirs are searched after PATH for a tool named without a slash:
// mkfs programs live in sbin, which a user's PATH may lack.
var toolDirs = []string{"/usr/sbin", "/sbin"}

// multiarch names the Debian multiarch directory of each machine the
// agent is built for (/lib/x86_64-linux-gnu holds Debian's x86-64
// libraries).
var multiarch = map[elf.Machine]string{
	elf.EM_X86_64:  "x86_64-linux-gnu",
	elf.EM_AARCH64: "aarch64-linux-gnu",
}

// libDirs are the directories a library named in DT_NEEDED is looked up
// in, in the order of glibc's system search path (ld.so --help): the
// multiarch directories, then lib64 (Fedora's and SUSE's libraries), then
// lib. The archive holds no ld.so.cache, so the loader finds a library
// only in one of its system directories, and the library is stored in the
// one it was found in on the build host, whose loader the archive carries.
func libDirs(m elf.Machine) []string {
	var dirs []string
	if t := multiarch[m]; t != "" {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// findTool returns the absolute path of the program name: name itself
// when it holds a slash, else the first executable of that name in PATH,
// then in toolDirs.
func findTool(name string) (string, error) {
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", err
		}
		return filepath.Abs(name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range toolDirs {
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in PATH, %s", strings.Join(toolDirs, " or "))
}

// toolFile is a file to carry: its path in the archive (as the agent and
// the dynamic loader look it up) and the build host's file, whose
// contents are stored as a regular file however many symlinks lead to it.
type toolFile struct {
	name, src string
	perm      os.FileMode
}

// toolSet collects programs with the shared libraries they load,
// recursively, and the program interpreter (the dynamic loader), each
// once.
type toolSet struct {
	machine elf.Machine // of the agent or the first program; every file must match
	class   elf.Class
	files   []toolFile
	seen    map[string]bool // archive names
	loaders map[string]bool // base names of the interpreters carried
}

// newToolSet returns a set whose programs must run where agent runs: the
// agent's machine when it is an ELF file, else the first program's.
func newToolSet(agent string) *toolSet {
	s := &toolSet{seen: map[string]bool{}, loaders: map[string]bool{}}
	if f, err := elf.Open(agent); err == nil {
		s.machine, s.class = f.Machine, f.Class
		f.Close()
	}
	return s
}

// program adds the program at src (an absolute path), stored under the
// same path, with its interpreter and libraries.
func (s *toolSet) program(src string) error {
	f, err := elf.Open(src)
	if err != nil {
		return fmt.Errorf("tool %s: not an ELF program: %w", src, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("tool %s: ELF type %v, not a program", src, f.Type)
	}
	if s.machine == elf.EM_NONE {
		s.machine, s.class = f.Machine, f.Class
	}
	if f.Machine != s.machine || f.Class != s.class {
		return fmt.Errorf("tool %s: built for %v %v, the installer runs %v %v (build the initramfs on a host of the installer's architecture)",
			src, f.Class, f.Machine, s.class, s.machine)
	}
	return s.object(src, f)
}

// object adds the ELF file f read from src, stored under the same path,
// then its interpreter and the libraries it needs.
func (s *toolSet) object(src string, f *elf.File) error {
	name := path.Clean(src)
	if s.seen[name] {
		return nil
	}
	s.seen[name] = true
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	s.files = append(s.files, toolFile{name: name, src: src, perm: fi.Mode().Perm()})
	interp, err := interpreter(f)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if interp != "" {
		if err := s.library(interp, src); err != nil {
			return err
		}
		s.loaders[path.Base(interp)] = true
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("%s: DT_NEEDED: %w", src, err)
	}
	for _, lib := range needed {
		if s.loaders[lib] {
			// libc needs the loader by its soname; the loader is in
			// memory before any library and is matched by that name, so
			// a second copy in a library directory would never be read.
			continue
		}
		if strings.Contains(lib, "/") {
			if err := s.library(lib, src); err != nil {
				return err
			}
			continue
		}
		found := false
		for _, dir := range libDirs(s.machine) {
			p := path.Join(dir, lib)
			if s.seen[p] {
				found = true
				break
			}
			lf := s.open(p)
			if lf == nil {
				continue
			}
			err := s.object(p, lf)
			lf.Close()
			if err != nil {
				return err
			}
			found = true
			break
		}
		if !found {
			return fmt.Errorf("library %s, needed by %s: no %v %v file of that name in %s",
				lib, src, s.class, s.machine, strings.Join(libDirs(s.machine), ", "))
		}
	}
	return nil
}

// library adds the shared object at src, stored under the same path, for
// the object user.
func (s *toolSet) library(src, user string) error {
	if s.seen[path.Clean(src)] {
		return nil
	}
	f, err := elf.Open(src)
	if err != nil {
		return fmt.Errorf("%s, needed by %s: %w", src, user, err)
	}
	defer f.Close()
	return s.object(src, f)
}

// open returns the ELF file at p, for the caller to close, when it is
// one for the set's machine, else nil: a directory of the search path may
// hold another architecture's library of the same name, which the loader
// skips too.
func (s *toolSet) open(p string) *elf.File {
	f, err := elf.Open(p)
	if err != nil {
		return nil
	}
	if f.Machine != s.machine || f.Class != s.class {
		f.Close()
		return nil
	}
	return f
}

// interpreter returns the program interpreter f names (PT_INTERP, the
// dynamic loader the kernel starts for it); empty for a static program
// or a library without one.
func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return "", fmt.Errorf("PT_INTERP: %w", err)
		}
		interp := string(bytes.TrimRight(b, "\x00"))
		if !path.IsAbs(interp) {
			return "", fmt.Errorf("PT_INTERP %q: not an absolute path", interp)
		}
		return interp, nil
	}
	return "", nil
}

// collectTools resolves the tools of cfg into the files to carry and the
// programs' paths. Default tools the host lacks are returned in missing;
// a tool named in cfg.Tools that cannot be found is an error.
func collectTools(cfg Config) (s *toolSet, programs, missing []string, err error) {
	names, explicit := cfg.Tools, cfg.Tools != nil
	if !explicit {
		names = DefaultTools
	}
	s = newToolSet(cfg.Agent)
	for _, n := range names {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		p, err := findTool(n)
		if err != nil {
			if !explicit {
				missing = append(missing, n)
				continue
			}
			return nil, nil, nil, fmt.Errorf("tool %s: %w", n, err)
		}
		if err := s.program(p); err != nil {
			return nil, nil, nil, err
		}
		programs = append(programs, path.Clean(p))
	}
	return s, programs, missing, nil
}
