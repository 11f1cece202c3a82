package initrd

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// fakeKernel lays out a modules directory: virtio_net needs net_failover,
// which needs failover; virtio_blk needs nothing listed.
func fakeKernel(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mods := map[string]string{
		"kernel/drivers/net/virtio_net.ko":         "VNET",
		"kernel/drivers/net/net_failover.ko":       "NF",
		"kernel/net/core/failover.ko":              "FO",
		"kernel/drivers/block/virtio_blk.ko":       "VBLK",
		"kernel/drivers/nvme/host/nvme-core.ko.xz": "NVC",
		"kernel/drivers/nvme/host/nvme.ko.xz":      "NVME",
	}
	for p, body := range mods {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dep := `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/block/virtio_blk.ko:
kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz
kernel/drivers/nvme/host/nvme-core.ko.xz:
`
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readArchive reads every archive of a concatenation, as the kernel does:
// it skips the NUL padding between archives (the library stops reading at
// the trailer's name).
func readArchive(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	br := bufio.NewReader(r)
	for {
		for {
			b, err := br.Peek(1)
			if err != nil || b[0] != 0 {
				break
			}
			br.ReadByte()
		}
		cr := cpio.NewReader(br)
		n := 0
		for {
			h, err := cr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			b, err := io.ReadAll(cr)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case h.Mode.IsDir():
				out[h.Name+"/"] = ""
			case h.Mode&cpio.ModeType == cpio.TypeChar:
				out[h.Name] = "char device"
			default:
				out[h.Name] = string(b)
			}
		}
		if n == 0 {
			return out
		}
	}
}

func TestBuild(t *testing.T) {
	agent := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(agent, []byte("AGENT"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			var buf bytes.Buffer
			rep, err := Build(&buf, Config{Agent: agent, ModulesDir: fakeKernel(t),
				Modules: []string{"virtio-net", "virtio_blk", "nvme", "mlx5_core"}, Compression: comp})
			if err != nil {
				t.Fatal(err)
			}
			wantOrder := []string{
				"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko",
				"kernel/drivers/block/virtio_blk.ko",
				"kernel/drivers/nvme/host/nvme-core.ko.xz", "kernel/drivers/nvme/host/nvme.ko.xz",
			}
			if diff := cmp.Diff(wantOrder, rep.Modules); diff != "" {
				t.Errorf("load order (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"mlx5_core"}, rep.Missing); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
			var r io.Reader
			if comp == "gzip" {
				zr, err := gzip.NewReader(&buf)
				if err != nil {
					t.Fatal(err)
				}
				r = zr
			} else {
				zr, err := zstd.NewReader(&buf)
				if err != nil {
					t.Fatal(err)
				}
				defer zr.Close()
				r = zr
			}
			files := readArchive(t, r)
			if files["init"] != "AGENT" {
				t.Errorf("init = %q", files["init"])
			}
			if got := files["lib/modules/kernel/drivers/net/virtio_net.ko"]; got != "VNET" {
				t.Errorf("virtio_net.ko = %q", got)
			}
			if got := files[ModuleList]; got != strings.Join(wantOrder, "\n")+"\n" {
				t.Errorf("module list = %q", got)
			}
			for _, d := range []string{"dev/console", "dev/null"} {
				if files[d] != "char device" {
					t.Errorf("%s = %q, want a character device", d, files[d])
				}
			}
			for _, d := range []string{"dev/", "proc/", "sys/", "lib/modules/kernel/drivers/net/"} {
				if _, ok := files[d]; !ok {
					t.Errorf("no directory %s", d)
				}
			}
		})
	}
}

func TestBuildIsReproducible(t *testing.T) {
	agent := filepath.Join(t.TempDir(), "agent")
	os.WriteFile(agent, []byte("AGENT"), 0o755)
	dir := fakeKernel(t)
	var a, b bytes.Buffer
	if _, err := Build(&a, Config{Agent: agent, ModulesDir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(&b, Config{Agent: agent, ModulesDir: dir}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two builds of the same inputs differ")
	}
}

func TestBuildErrors(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Build(&buf, Config{Agent: "/nonexistent"}); err == nil {
		t.Error("missing agent accepted")
	}
	agent := filepath.Join(t.TempDir(), "agent")
	os.WriteFile(agent, []byte("AGENT"), 0o755)
	if _, err := Build(&buf, Config{Agent: agent, ModulesDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "depmod") {
		t.Errorf("modules dir without modules.dep: %v", err)
	}
	if _, err := Build(&buf, Config{Agent: agent, Compression: "lz4"}); err == nil {
		t.Error("unknown compression accepted")
	}
}

func TestCheckStatic(t *testing.T) {
	if err := CheckStatic("/bin/sh"); err != ErrNotStatic {
		t.Errorf("CheckStatic(/bin/sh) = %v, want ErrNotStatic", err)
	}
	// busybox-static (a dependency of the e2e suite) is a static binary.
	if _, err := os.Stat("/bin/busybox"); err == nil {
		if err := CheckStatic("/bin/busybox"); err != nil {
			t.Errorf("CheckStatic(/bin/busybox) = %v", err)
		}
	}
}
