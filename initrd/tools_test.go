package initrd

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
)

// buildFiles builds an archive of cfg and returns its report and files.
func buildFiles(t *testing.T, cfg Config) (Report, map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	rep, err := Build(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return rep, readArchive(t, zr)
}

func fakeAgent(t *testing.T) string {
	t.Helper()
	agent := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(agent, []byte("AGENT"), 0o755); err != nil {
		t.Fatal(err)
	}
	return agent
}

// hostInterp is the program interpreter /usr/bin/env asks for, read here
// on its own.
func hostInterp(t *testing.T) string {
	t.Helper()
	f, err := elf.Open("/usr/bin/env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			return string(bytes.TrimRight(b, "\x00"))
		}
	}
	t.Skip("/usr/bin/env is static on this host")
	return ""
}

// TestBuildTools carries dynamically linked programs, one named (found in
// PATH) and one by path: each is in the archive with the build host's
// bytes, and so are its libraries and the dynamic loader, under the paths
// the loader looks them up by, each once.
func TestBuildTools(t *testing.T) {
	interp := hostInterp(t)
	env, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	rep, files := buildFiles(t, Config{Agent: fakeAgent(t), Tools: []string{"env", "/bin/true"}})
	if diff := cmp.Diff([]string{env, "/bin/true"}, rep.Tools); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	if len(rep.MissingTools) != 0 {
		t.Errorf("missing tools %v", rep.MissingTools)
	}
	if !slices.Contains(rep.Libraries, interp) {
		t.Errorf("libraries %v lack the interpreter %s", rep.Libraries, interp)
	}
	libc := false
	for _, l := range rep.Libraries {
		libc = libc || path.Base(l) == "libc.so.6"
		if path.Base(l) == path.Base(interp) && l != interp {
			t.Errorf("the loader is carried twice: %s and %s", interp, l)
		}
	}
	if !libc {
		t.Errorf("libraries %v lack libc.so.6", rep.Libraries)
	}
	for _, p := range append(slices.Clone(rep.Tools), rep.Libraries...) {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := files[strings.TrimPrefix(p, "/")]
		if !ok {
			t.Errorf("%s is not in the archive", p)
			continue
		}
		if got != string(want) {
			t.Errorf("%s in the archive differs from the host's", p)
		}
	}
	if n := len(rep.Tools) + len(rep.Libraries); rep.Files != n+2 { // init, module list
		t.Errorf("%d files, want %d", rep.Files, n+2)
	}
}

// TestBuildToolsRun runs a carried program inside the unpacked archive
// (root only: chroot), which proves the loader finds every library.
func TestBuildToolsRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	hostInterp(t)
	_, files := buildFiles(t, Config{Agent: fakeAgent(t), Tools: []string{"/usr/bin/env"}})
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") || body == "char device" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("/usr/bin/env", "X=carried", "/usr/bin/env")
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "X=carried\n" {
		t.Errorf("env in the unpacked archive: %v\n%s", err, out)
	}
}

// TestBuildDefaultTools: without Config.Tools the defaults are carried
// when the host has them and reported missing otherwise; an empty list
// carries none.
func TestBuildDefaultTools(t *testing.T) {
	defer func(d []string) { DefaultTools = d }(DefaultTools)
	DefaultTools = []string{"env", "rackboot-no-such-tool"}
	rep, files := buildFiles(t, Config{Agent: fakeAgent(t)})
	if len(rep.Tools) != 1 || path.Base(rep.Tools[0]) != "env" || files[strings.TrimPrefix(rep.Tools[0], "/")] == "" {
		t.Errorf("tools %v, want env in the archive", rep.Tools)
	}
	if diff := cmp.Diff([]string{"rackboot-no-such-tool"}, rep.MissingTools); diff != "" {
		t.Errorf("missing tools (-want +got):\n%s", diff)
	}
	rep, _ = buildFiles(t, Config{Agent: fakeAgent(t), Tools: []string{}})
	if len(rep.Tools)+len(rep.Libraries)+len(rep.MissingTools) != 0 || rep.Files != 2 {
		t.Errorf("Tools: []string{} carried %+v", rep)
	}
}

// TestBuildToolErrors: a named tool the host lacks, a script, and a
// program for another machine than the agent's are refused.
func TestBuildToolErrors(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	// An "arm64 agent": /bin/true with e_machine (offset 18) rewritten.
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	other := elf.EM_AARCH64
	if elf.Machine(binary.LittleEndian.Uint16(b[18:])) == elf.EM_AARCH64 {
		other = elf.EM_X86_64
	}
	binary.LittleEndian.PutUint16(b[18:], uint16(other))
	foreign := filepath.Join(dir, "agent")
	os.WriteFile(foreign, b, 0o755)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing", Config{Agent: fakeAgent(t), Tools: []string{"rackboot-no-such-tool"}}, "tool rackboot-no-such-tool: not found in PATH, /usr/sbin or /sbin"},
		{"script", Config{Agent: fakeAgent(t), Tools: []string{script}}, "tool " + script + ": not an ELF program"},
		{"other machine", Config{Agent: foreign, Tools: []string{"/bin/true"}}, "(build the initramfs on a host of the installer's architecture)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := Build(&buf, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build() = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
