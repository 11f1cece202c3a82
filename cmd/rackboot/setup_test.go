package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/profiles"
)

// staticELF writes the smallest file debug/elf opens: an ELF header with
// no program headers, hence no interpreter, which initrd.CheckStatic
// takes for a static agent.
func staticELF(t *testing.T, name string) {
	t.Helper()
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1                // ELFCLASS64, little-endian, EV_CURRENT
	binary.LittleEndian.PutUint16(h[16:], 2)  // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(h[20:], 1)  // EV_CURRENT
	binary.LittleEndian.PutUint16(h[52:], 64) // e_ehsize
	binary.LittleEndian.PutUint16(h[54:], 56) // e_phentsize
	binary.LittleEndian.PutUint16(h[58:], 64) // e_shentsize
	if err := os.WriteFile(name, h, 0o755); err != nil {
		t.Fatal(err)
	}
}

// fakeRoot lays out an unpacked kernel package of each version: boot/
// vmlinuz-V holding "KERNEL V" and lib/modules/V with one module.
func fakeRoot(t *testing.T, versions ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, v := range versions {
		mods := filepath.Join(root, "lib/modules", v)
		write(t, filepath.Join(root, "boot", "vmlinuz-"+v), "KERNEL "+v)
		write(t, filepath.Join(mods, "kernel/drivers/block/virtio_blk.ko"), "VBLK "+v)
		write(t, filepath.Join(mods, "modules.dep"), "kernel/drivers/block/virtio_blk.ko:\n")
	}
	return root
}

func write(t *testing.T, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindKernel(t *testing.T) {
	root := fakeRoot(t, "6.1.0-9-amd64", "6.1.0-28-amd64", "6.1.0-10-amd64")
	// A vmlinuz without modules (a kernel removed but for its image) and
	// modules without a vmlinuz are not candidates.
	write(t, filepath.Join(root, "boot/vmlinuz-6.1.0-99-amd64"), "ORPHAN")
	write(t, filepath.Join(root, "lib/modules/6.1.0-98-amd64/modules.dep"), "")
	// Merged /usr: the modules under usr/lib/modules.
	write(t, filepath.Join(root, "boot/vmlinuz-6.1.0-30-cloud-amd64"), "K")
	write(t, filepath.Join(root, "usr/lib/modules/6.1.0-30-cloud-amd64/modules.dep"), "")

	tests := []struct {
		name, want, version, modules string
		err                          string
	}{
		{name: "newest", version: "6.1.0-30-cloud-amd64", modules: "usr/lib/modules/6.1.0-30-cloud-amd64"},
		{name: "given", want: "6.1.0-9-amd64", version: "6.1.0-9-amd64", modules: "lib/modules/6.1.0-9-amd64"},
		{name: "no modules", want: "6.1.0-99-amd64", err: "modules.dep"},
		{name: "unknown", want: "5.10.0-1-amd64", err: "kernel 5.10.0-1-amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := findKernel(root, tt.want)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.version != tt.version || k.modules != filepath.Join(root, tt.modules) {
				t.Errorf("got %+v, want version %s, modules %s", k, tt.version, tt.modules)
			}
		})
	}
	if _, err := findKernel(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "no kernel") {
		t.Errorf("empty root: %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"5.10.0-30-amd64", "6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-28-amd64", "6.1.0-28-cloud-amd64", "6.12.0-1-amd64"}
	for i := range ordered {
		for j := range ordered {
			got := compareVersions(ordered[i], ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("compareVersions(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestFindAgent(t *testing.T) {
	dir := t.TempDir()
	beside, packaged := filepath.Join(dir, "bin/rackboot-agent"), filepath.Join(dir, "usr/lib/rackboot/rackboot-agent")
	cands := []string{beside, packaged}
	if _, err := findAgent(cands); err == nil || !strings.Contains(err.Error(), beside+" nor "+packaged) {
		t.Errorf("neither: err = %v, want one naming both", err)
	}
	// A directory of that name is not an agent.
	os.MkdirAll(beside, 0o755)
	write(t, packaged, "AGENT")
	if got, err := findAgent(cands); err != nil || got != packaged {
		t.Errorf("packaged only: %q, %v", got, err)
	}
	os.Remove(beside)
	write(t, beside, "AGENT")
	if got, err := findAgent(cands); err != nil || got != beside {
		t.Errorf("both: %q, %v; want the one beside the binary", got, err)
	}
	if c := agentCandidates(); c[len(c)-1] != packagedAgent {
		t.Errorf("agentCandidates() = %q, want %s last", c, packagedAgent)
	}
}

// setupEnv is a fake appliance: a kernel package root, an agent, and
// empty artifacts and profiles directories.
type setupEnv struct {
	root, agent, artifacts, profiles, work string
}

func newSetupEnv(t *testing.T, versions ...string) setupEnv {
	work := t.TempDir()
	e := setupEnv{root: fakeRoot(t, versions...), agent: filepath.Join(work, "rackboot-agent"),
		artifacts: filepath.Join(work, "artifacts"), profiles: filepath.Join(work, "profiles"), work: work}
	staticELF(t, e.agent)
	return e
}

func (e setupEnv) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{"--root", e.root, "--agent", e.agent, "--artifacts", e.artifacts, "--profiles", e.profiles, "--tools", ""}, args...)
	code = runSetup(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func mtime(t *testing.T, name string) time.Time {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func TestSetupInstaller(t *testing.T) {
	e := newSetupEnv(t, "6.1.0-9-amd64", "6.1.0-28-amd64")
	code, out, errs := e.run(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(e.artifacts, "vmlinuz")); string(b) != "KERNEL 6.1.0-28-amd64" {
		t.Errorf("vmlinuz = %q, want the newest kernel's", b)
	}
	for _, want := range []string{"kernel 6.1.0-28-amd64", "1 modules of kernel 6.1.0-28-amd64", "written"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	initrdFile := filepath.Join(e.artifacts, "initrd.img")
	before := mtime(t, initrdFile)
	os.Chtimes(initrdFile, before.Add(-time.Hour), before.Add(-time.Hour))
	before = mtime(t, initrdFile)

	t.Run("again", func(t *testing.T) {
		code, out, errs := e.run(t)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if strings.Contains(out, "written") || strings.Count(out, "unchanged") != 2 {
			t.Errorf("a second run rewrote something:\n%s", out)
		}
		if !mtime(t, initrdFile).Equal(before) {
			t.Error("initrd.img was rewritten")
		}
	})
	t.Run("older kernel", func(t *testing.T) {
		code, out, errs := e.run(t, "--kernel", "6.1.0-9-amd64")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if strings.Count(out, "written") != 2 {
			t.Errorf("want the kernel and initrd rewritten:\n%s", out)
		}
		if b, _ := os.ReadFile(filepath.Join(e.artifacts, "vmlinuz")); string(b) != "KERNEL 6.1.0-9-amd64" {
			t.Errorf("vmlinuz = %q", b)
		}
	})
	t.Run("no agent", func(t *testing.T) {
		code, _, errs := e.run(t, "--agent", filepath.Join(e.work, "missing"))
		if code != 1 || !strings.Contains(errs, "missing") {
			t.Errorf("exit %d: %s", code, errs)
		}
	})
}

func TestSetupImage(t *testing.T) {
	e := newSetupEnv(t, "6.1.0-28-amd64")
	v1, v2 := testImages(t)
	img1, img2 := filepath.Join(e.work, "v1.img"), filepath.Join(e.work, "v2.img")
	os.WriteFile(img1, v1, 0o644)
	os.WriteFile(img2, v2, 0o644)
	versionFile := filepath.Join(e.profiles, "version-base-1.yaml")

	code, out, errs := e.run(t, "--image", img1, "--name", "base-1", "--number", "1", "--channel", "stable")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	set, err := profiles.Load(e.profiles)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := set.Version("base-1")
	if !ok {
		t.Fatalf("no version base-1 in the catalog:\n%s", out)
	}
	want := profiles.Image{URL: "images/base-1.rbidx", SHA256: sha256hex(v1), Format: "chunked", Kind: "whole-disk"}
	if v.Image != want || v.Number != 1 || v.Channel != "stable" {
		t.Errorf("version = %+v, want image %+v", v, want)
	}
	if v.Installer == nil || *v.Installer != (profiles.Installer{Kernel: "vmlinuz", Initrd: "initrd.img", Cmdline: setupCmdline}) {
		t.Errorf("installer = %+v", v.Installer)
	}
	if _, err := os.Stat(filepath.Join(e.artifacts, "images/base-1.rbidx")); err != nil {
		t.Error(err)
	}
	if !strings.Contains(out, "next:") {
		t.Errorf("no next step:\n%s", out)
	}
	// The version setup wrote passes the check serve makes.
	if !strings.Contains(out, "check:   1 of 1 versions of "+e.profiles+" can be installed") || strings.Contains(out, "held by serve") {
		t.Errorf("the catalog check of the new version:\n%s", out)
	}

	t.Run("again", func(t *testing.T) {
		before, _ := os.ReadFile(versionFile)
		code, out, errs := e.run(t, "--image", img1, "--name", "base-1", "--number", "1", "--channel", "stable")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if strings.Contains(out, "written") {
			t.Errorf("a second run rewrote something:\n%s", out)
		}
		if after, _ := os.ReadFile(versionFile); !bytes.Equal(before, after) {
			t.Error("the version file changed")
		}
	})
	t.Run("another image, same name", func(t *testing.T) {
		code, _, errs := e.run(t, "--image", img2, "--name", "base-1", "--number", "1")
		if code != 1 || !strings.Contains(errs, "--force") {
			t.Errorf("exit %d: %s", code, errs)
		}
		code, _, errs = e.run(t, "--image", img2, "--name", "base-1", "--number", "2", "--force")
		if code != 0 {
			t.Fatalf("--force: exit %d: %s", code, errs)
		}
		set, err := profiles.Load(e.profiles)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := set.Version("base-1"); v.Image.SHA256 != sha256hex(v2) || v.Number != 2 {
			t.Errorf("after --force: %+v", v)
		}
	})
	t.Run("name in another file", func(t *testing.T) {
		write(t, filepath.Join(e.profiles, "catalog.yaml"),
			"versions:\n  - name: base-3\n    number: 3\n    image: { url: base-3.img, sha256: "+strings.Repeat("ab", 32)+" }\n")
		code, _, errs := e.run(t, "--image", img1, "--name", "base-3", "--number", "3", "--force")
		if code != 1 || !strings.Contains(errs, "catalog.yaml:2") {
			t.Errorf("exit %d: %s", code, errs)
		}
		if _, err := os.Stat(filepath.Join(e.profiles, "version-base-3.yaml")); err == nil {
			t.Error("a version file was written")
		}
	})
	t.Run("invalid result is not written", func(t *testing.T) {
		// A host follows channel lab with a layout for a partitions
		// image; a whole-disk version numbered above lab's current one
		// would become its version, which that layout cannot take.
		write(t, filepath.Join(e.profiles, "lab.yaml"), `versions:
  - name: part-1
    number: 1
    channel: lab
    image: { url: part-1.img, sha256: `+strings.Repeat("cd", 32)+`, kind: partitions }
    installer: { kernel: vmlinuz }
layouts:
  - name: parts
    disk: { select: smallest }
    partitions:
      - { name: root, size: rest, type: linux-root, content: image }
hosts:
  - { mac: 52:54:00:00:00:01, hostname: n1, channel: lab, layout: parts }
`)
		if _, err := profiles.Load(e.profiles); err != nil {
			t.Fatalf("the fixture does not load: %v", err)
		}
		code, _, errs := e.run(t, "--image", img1, "--name", "base-4", "--number", "4", "--channel", "lab")
		if code != 1 || !strings.Contains(errs, "not written") || !strings.Contains(errs, "whole-disk") ||
			!strings.Contains(errs, filepath.Join(e.profiles, "lab.yaml")+":") {
			t.Errorf("exit %d: %s", code, errs)
		}
		if _, err := os.Stat(filepath.Join(e.profiles, "version-base-4.yaml")); err == nil {
			t.Error("the refused version file was kept")
		}
		if _, err := profiles.Load(e.profiles); err != nil {
			t.Errorf("the profiles do not load after: %v", err)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if code, _, _ := e.run(t, "--image", img1); code != 2 {
			t.Errorf("--image without --name: exit %d", code)
		}
		if code, _, errs := e.run(t, "--image", img1, "--name", "x", "--kind", "root"); code != 2 || !strings.Contains(errs, "--kind") {
			t.Errorf("--kind root: exit %d: %s", code, errs)
		}
	})
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
