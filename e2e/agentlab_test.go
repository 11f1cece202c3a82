//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/registry"
)

// agentLab is rackboot in the lab serving AgentMachines (lab.AgentMachine):
// machines whose firmware is Go code and whose installer is the real
// rackboot-agent run against a disk file. It needs neither QEMU nor the
// Debian kernel: a fleet of them costs a few processes, so tests of whole
// fleets (power control, rollouts) run on a small host.
type agentLab struct {
	net       *lab.Net
	rb        *lab.Rackboot
	admin     adminAPI
	dir       string // logs, disks
	rackboot  string // the rackboot binary
	agent     string // the rackboot-agent binary
	artifacts string
	profiles  string
	// images are the versions' chunked images, by version name.
	images map[string]importedImage
	// raw are the versions' images, as imported, by version name.
	raw map[string]string
	// newChunks are the chunk files each version's import added: chunks
	// of that version and of no version imported before it.
	newChunks map[string][]string
}

// agentImageMiB is the size of the agent lab's images: whole-disk GPT
// images whose chunks the agent fetches and verifies. Small: an install
// takes a second or two.
const agentImageMiB = 16

// agentDiskSize is an AgentMachine's disk: the image, the config drive
// (16 MiB) and room to spare, above agentLayout's min_size.
const agentDiskSize = 64 << 20

// agentLabConfig says what startAgentLab serves.
type agentLabConfig struct {
	// versions are the version names, each with a chunked image of its
	// own (number i+1); the first is the hosts' default.
	versions []string
	// hosts are the fleet's hosts: YAML flow mappings without the
	// braces, such as `mac: "52:54:…", hostname: m0, labels: { rack: r9 }`.
	hosts []string
	// prepare, when set, runs once the lab's network exists, before the
	// fleet is written and rackboot starts (to open a BMC's listener in
	// the server namespace); it returns more hosts.
	prepare func(l *agentLab) []string
	// extra is more YAML appended to the fleet file (groups, …).
	extra string
	// serve are more flags for rackboot serve.
	serve []string
}

// requireAgentLab skips the test unless RACKBOOT_E2E=1, and fails it when
// this host cannot run the agent lab: root and ip(8), nothing else.
func requireAgentLab(t *testing.T) {
	t.Helper()
	if os.Getenv("RACKBOOT_E2E") != "1" {
		t.Skip("end-to-end tests need root; run them with RACKBOOT_E2E=1 (see e2e/run.sh)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("RACKBOOT_E2E=1 but not root: namespaces and bridges need CAP_NET_ADMIN")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("RACKBOOT_E2E=1 but command ip missing (package iproute2)")
	}
}

// startAgentLab builds rackboot and rackboot-agent from this checkout,
// makes and imports the images, writes the fleet, creates the lab and
// starts rackboot. Everything is removed when the test ends, or on SIGINT.
func startAgentLab(t *testing.T, ctx context.Context, cfg agentLabConfig) *agentLab {
	t.Helper()
	requireAgentLab(t)
	if swept, err := lab.Sweep(""); err != nil {
		t.Logf("sweeping stale lab namespaces: %v", err)
	} else if len(swept) > 0 {
		t.Logf("removed stale lab namespaces %v", swept)
	}
	work := t.TempDir()
	l := &agentLab{
		dir:       logDir(t),
		rackboot:  filepath.Join(work, "bin", "rackboot"),
		agent:     filepath.Join(work, "bin", "rackboot-agent"),
		artifacts: filepath.Join(work, "artifacts"),
		profiles:  filepath.Join(work, "profiles"),
		images:    map[string]importedImage{},
		newChunks: map[string][]string{},
		raw:       map[string]string{},
	}
	start := time.Now()
	buildCommand(t, ctx, l.rackboot, "./cmd/rackboot")
	buildCommand(t, ctx, l.agent, "./cmd/rackboot-agent")
	t.Logf("built rackboot and rackboot-agent in %.1f s", time.Since(start).Seconds())

	for _, d := range []string{l.artifacts, l.profiles} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The installer's files: no AgentMachine boots them, but rackboot
	// holds the hosts of a version whose installer files are missing.
	for _, name := range []string{"vmlinuz", "initrd.img"} {
		if err := os.WriteFile(filepath.Join(l.artifacts, name), []byte("e2e: no machine boots this "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if l.net, err = lab.NewNet(ctx, lab.NetConfig{}); err != nil {
		t.Fatal(err)
	}
	closeOnSignal(t, l.net)
	t.Cleanup(func() {
		if err := l.net.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	if cfg.prepare != nil {
		cfg.hosts = append(cfg.hosts, cfg.prepare(l)...)
	}
	var versions strings.Builder
	for i, v := range cfg.versions {
		img := filepath.Join(work, v+".img")
		if err := writeAgentImage(img, agentImageMiB<<20, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		l.raw[v] = img
		before := chunkFiles(t, l.artifacts)
		l.images[v] = l.imageAdd(t, ctx, img, v, i+1)
		for f := range chunkFiles(t, l.artifacts) {
			if !before[f] {
				l.newChunks[v] = append(l.newChunks[v], f)
			}
		}
		sort.Strings(l.newChunks[v])
		fmt.Fprintf(&versions, "  - name: %s\n    number: %d\n    image: { url: images/%s.rbidx, sha256: %s, format: chunked, kind: whole-disk }\n"+
			"    installer: { kernel: vmlinuz, initrd: initrd.img, cmdline: \"console=ttyS0,115200\" }\n", v, i+1, v, l.images[v].SHA256)
	}
	var hosts strings.Builder
	for _, h := range cfg.hosts {
		hosts.WriteString("  - { " + h + " }\n")
	}
	fleet := "# The agent lab's fleet (e2e/agentlab_test.go): AgentMachines installing small chunked images.\nversions:\n" +
		versions.String() + `layouts:
  - name: lab
    disk: { select: smallest, min_size: 48MiB }
    partitions:
      - { name: cidata, size: 16MiB, type: linux, content: config }
defaults:
  version: ` + cfg.versions[0] + `
  layout: lab
hosts:
` + hosts.String() + cfg.extra
	if err := os.WriteFile(filepath.Join(l.profiles, "fleet.yaml"), []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "fleet.yaml"), []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}

	args := append([]string{"--ipxe-dir", agentIPXEDir(t, work)}, lab.AgentMachineServeArgs...)
	data := filepath.Join(l.dir, "data")
	l.rb, err = l.net.StartRackboot(ctx, lab.RackbootConfig{
		Binary: l.rackboot, Profiles: l.profiles, Data: data, Artifacts: l.artifacts,
		Log: filepath.Join(l.dir, "rackboot.log"), Args: append(args, cfg.serve...),
	})
	if err != nil {
		t.Fatal(err)
	}
	l.admin = (&testbed{net: l.net, data: data}).adminAPI(t)
	t.Logf("lab %s: rackboot serving; logs in %s", l.net.Srv, l.dir)
	return l
}

// agentIPXEDir is rackboot's --ipxe-dir: the distribution's iPXE when the
// host has it, else stand-ins in work (AgentMachines fetch their script
// over HTTP, as iPXE would, and boot no network boot program).
func agentIPXEDir(t *testing.T, work string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(lab.IPXEDir, "undionly.kpxe")); err == nil {
		return lab.IPXEDir
	}
	dir := filepath.Join(work, "ipxe")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("e2e: stand-in for "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// machine makes an AgentMachine of the fleet, powered off with a blank
// disk; it is powered off when the test ends.
func (l *agentLab) machine(t *testing.T, name string, mac net.HardwareAddr) *lab.AgentMachine {
	t.Helper()
	m, err := lab.NewAgentMachine(lab.AgentMachineConfig{Name: name, MAC: mac, Rackboot: l.rb, Agent: l.agent,
		Dir: l.dir, DiskSize: agentDiskSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		t.Logf("%s (%s):\n%s", name, mac, lab.FormatEvents(m.Events()))
	})
	return m
}

// hostView asks the admin API for the host with mac.
func (l *agentLab) hostView(t *testing.T, mac string) api.HostView {
	t.Helper()
	var h api.HostView
	l.admin.get(t, "/api/hosts/"+mac, &h)
	return h
}

// history asks the admin API for mac's attempts, with their agent logs.
func (l *agentLab) history(t *testing.T, mac string) []registry.Attempt {
	t.Helper()
	var h []registry.Attempt
	l.admin.get(t, "/api/hosts/"+mac+"/history?log=1", &h)
	return h
}

// diskHolds reports whether m's disk holds version's image: the bytes of
// its root partition (from 1 MiB to 1 MiB before its end, see
// writeAgentImage), which the installer writes as they are; it changes
// only the partition tables (the config drive's partition, the backup
// GPT at the disk's end).
func (l *agentLab) diskHolds(t *testing.T, m *lab.AgentMachine, version string) bool {
	t.Helper()
	want, err := os.ReadFile(l.raw[version])
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(m.Disk())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(want)-2*mib)
	if _, err := f.ReadAt(got, mib); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(got, want[mib:len(want)-mib])
}

// cli runs an admin command of rackboot from the client namespace and
// returns its output; it fails the test when the command fails.
func (l *agentLab) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.cliErr(args...)
	if err != nil {
		t.Fatalf("rackboot %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// cliErr runs an admin command and returns its output and error, for
// commands whose failure the test checks.
func (l *agentLab) cliErr(args ...string) (string, error) {
	out, err := l.rb.Command(l.net.Cli, args...).CombinedOutput()
	return string(out), err
}

// cliStdout is cli with stdout alone (--json output), stderr in the
// error.
func (l *agentLab) cliStdout(args ...string) ([]byte, error) {
	cmd := l.rb.Command(l.net.Cli, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("rackboot %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// imageAdd imports img as version name, number n, with `rackboot image
// add`, as an admin does.
func (l *agentLab) imageAdd(t *testing.T, ctx context.Context, img, name string, n int) importedImage {
	t.Helper()
	out, err := exec.CommandContext(ctx, l.rackboot, "image", "add", img, "--artifacts", l.artifacts,
		"--name", name, "--number", fmt.Sprint(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("rackboot image add %s: %v\n%s", name, err, out)
	}
	m := regexp.MustCompile(`sha256: ([0-9a-f]{64})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("rackboot image add %s printed no catalog entry:\n%s", name, out)
	}
	return importedImage{SHA256: string(m[1]), Raw: agentImageMiB << 20}
}

// chunkFiles is the set of files under the chunk store of artifacts.
func chunkFiles(t *testing.T, artifacts string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(artifacts, "chunks"), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && d.Type().IsRegular() {
			out[path] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// buildCommand compiles pkg of this checkout's module to out.
func buildCommand(t *testing.T, ctx context.Context, out, pkg string) {
	t.Helper()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	// -buildvcs=false: the lab runs as root, often in a checkout another
	// user owns, where git refuses to report its status.
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// writeAgentImage writes a whole-disk image of size bytes: a GPT with one
// Linux root partition from 1 MiB to 1 MiB before the end, filled with
// pseudo-random bytes from seed (every fourth MiB zeros: zero chunks, not
// stored). Different seeds give different images, the same seed the same.
func writeAgentImage(name string, size int64, seed uint64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		GUID: "5A8B0E41-7C3D-4F2A-9B61-0D8E2C4F6A18", Partitions: []*gpt.Partition{
			{Index: 1, Name: "root", Type: gpt.LinuxRootX86_64, Start: mib / 512, End: uint64(size-mib)/512 - 1,
				GUID: "0C9E5B7D-3A14-4E68-8F2B-6D1A9C3E5B70"},
		}}
	if err := tbl.Write(f, size); err != nil {
		return fmt.Errorf("the partition table: %w", err)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	block := make([]byte, mib)
	for off := int64(mib); off < size-mib; off += mib {
		if off/mib%4 == 3 {
			continue
		}
		for i := 0; i < len(block); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				block[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.WriteAt(block, off); err != nil {
			return err
		}
	}
	return f.Close()
}

// agentMAC is the MAC of the agent lab's machine i of group g.
func agentMAC(g, i byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0x00, 0x91, g, i} }
