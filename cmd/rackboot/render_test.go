package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rackboot/rackboot/profiles"
)

// fakeRenderer stands in for the dhcp and ipxe packages.
var fakeRenderer = renderer{
	DHCP: func(_ *profiles.Set, h *profiles.Host, arch string, ipxe bool) (string, error) {
		return fmt.Sprintf("answer for %s %s ipxe=%v\n", h.Hostname, arch, ipxe), nil
	},
	Script: func(_ *profiles.Set, h *profiles.Host, arch string) (string, error) {
		return "#!ipxe\nkernel " + h.Installer.Kernel + "\n", nil
	},
}

func TestRenderText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := fakeRenderer.run(context.Background(), []string{"--profiles", "../../examples", "--mac", "52-54-00-78-00-03", "--arch", "bios", "--artifacts", filepath.Join(t.TempDir(), "none")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		`\n  hostname\s+r2-s01\s+host\n`,
		`layout\s+storage\s+group storage\n`,
		`version\s+demo-1\.1 \(number 11, channel canary\)\s+group rack2\n`,
		`network\s+dhcp\s+group rack2\n`,
		`installer\s+vmlinuz, initrd\.img\s+version demo-1\.1\n`,
		`2\s+data\s+rest\s+linux\s+empty\s+ext4\s+yes\n`,
		`\n    1\s+cidata\s+16MiB\s+linux\s+config-drive\n`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %q", want)
		}
	}
	for _, want := range []string{
		"host 52:54:00:78:00:03 r2-s01 (../../examples/rack2.yaml:20)\n",
		"groups: rack2, storage (most specific first)\n",
		"arch: bios, asking: firmware PXE\n",
		"  files[/etc/exports]",
		"  kernel   vmlinuz\n",
		"dhcp answer\n  answer for r2-s01 bios ipxe=false\n",
		"ipxe script\n  #!ipxe\n  kernel vmlinuz\n",
		"  disk     the largest disk at least 16GiB\n",
		"  image    http://192.0.2.1:8080/artifacts/demo-1.1.img.zst?mac=52-54-00-78-00-03 (zstd, whole-disk)\n",
		"  config drive (CIDATA)\n    --- meta-data\n      instance-id: rackboot-525400780003-demo-1.1\n",
		"    --- user-data\n      #cloud-config\n",
		"          macaddress: 52:54:00:78:00:03\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestRenderJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := fakeRenderer.run(context.Background(), []string{"--profiles", "../../examples", "--mac", "5254.0077.0003", "--arch", "efi", "--ipxe", "--json", "--artifacts", filepath.Join(t.TempDir(), "none")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep renderReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	from := map[string]string{}
	for _, s := range rep.Profile {
		from[s.Field] = s.From
	}
	got := []any{rep.Hostname, rep.Groups, rep.DHCP, from["version"], from["installer"], from["kernel_args"], rep.Version.Name, len(rep.Plan.ConfigDrive), rep.Notes}
	want := []any{"r1-n03", []string{"early", "rack1"}, "answer for r1-n03 efi ipxe=true\n", "group early", "host", "group early", "demo-1.1", 3,
		[]string{"install plan: image sizes unknown (the image is not under --artifacts, or is on another server): the agent shows no percentage"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestRenderUnwired: without the dhcp and ipxe functions, the profile and
// the plan are still shown, with notes.
func TestRenderUnwired(t *testing.T) {
	var stdout, stderr bytes.Buffer
	failing := renderer{Script: func(*profiles.Set, *profiles.Host, string) (string, error) { return "", errors.New("unsafe value") }}
	if code := failing.run(context.Background(), []string{"--profiles", "../../examples", "--mac", "52:54:00:77:00:01", "--artifacts", filepath.Join(t.TempDir(), "none")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"\nprofile\n", "\ninstall plan (as the agent API serves it; --plan prints its JSON)\n", "notes\n  dhcp: not available in this build\n  ipxe script: unsafe value\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	invalid := t.TempDir()
	if err := os.WriteFile(filepath.Join(invalid, "a.yaml"), []byte("hots: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no mac", []string{"--profiles", "../../examples"}, 2, "usage: rackboot render"},
		{"bad mac", []string{"--profiles", "../../examples", "--mac", "52:54"}, 2, `--mac: invalid MAC address "52:54"`},
		{"bad arch", []string{"--profiles", "../../examples", "--mac", "52:54:00:77:00:01", "--arch", "sparc"}, 2, "--arch sparc: want one of bios, efi, efi-http, arm64"},
		{"unknown host", []string{"--profiles", "../../examples", "--mac", "52:54:00:77:00:99"}, 1, "52:54:00:77:00:99 is not a host of ../../examples"},
		{"invalid profiles", []string{"--profiles", invalid, "--mac", "52:54:00:77:00:01"}, 1, "a.yaml:1: unknown key \"hots\" in a profiles file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := fakeRenderer.run(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}

// TestRenderPlans: a per-partition image is written into its partition,
// with no whole-disk row; a host without a version has no plan, and says so.
func TestRenderPlans(t *testing.T) {
	set, err := profiles.Load("../../profiles/testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	h, ok := set.Lookup([]byte{2, 0, 0, 0, 0, 2})
	if !ok {
		t.Fatal("edge-02 not found")
	}
	var buf bytes.Buffer
	none := renderer{Plan: renderPlan("")}
	if err := none.report(set, h, nil, "arm64", false, "http://192.0.2.1:8080").writeText(&buf); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); strings.Contains(out, "(image)") || !regexp.MustCompile(`4\s+root\s+20GiB\s+linux-root\s+image\n`).MatchString(out) {
		t.Errorf("plan of edge-02:\n%s", out)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("hosts:\n  - {mac: 52:54:00:00:00:01, installer: {kernel: vmlinuz}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := none.run(context.Background(), []string{"--profiles", dir, "--mac", "52:54:00:00:00:01"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"host 52:54:00:00:00:01 (no hostname)", "install plan: none, the profiles give the host no version (it boots its installer only)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestRenderChunked: a chunked image shows its chunk store, and with
// --installed the seed the machine would be given.
func TestRenderChunked(t *testing.T) {
	dir := t.TempDir()
	fleet := `versions:
  - {name: base-3, number: 3, image: {url: images/base-3.rbidx, sha256: "` + strings.Repeat("3", 64) + `"}}
  - {name: base-4, number: 4, image: {url: images/base-4.rbidx, sha256: "` + strings.Repeat("4", 64) + `"}}
layouts:
  - {name: l, disk: {select: largest}}
hosts:
  - {mac: 52:54:00:00:00:01, hostname: n1, version: base-4, layout: l, installer: {kernel: vmlinuz}}
`
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(t.TempDir(), "none")
	var stdout, stderr bytes.Buffer
	if code := fakeRenderer.run(context.Background(), []string{"--profiles", dir, "--mac", "52:54:00:00:00:01", "--artifacts", none, "--installed", "base-3"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		"  image    http://192.0.2.1:8080/artifacts/images/base-4.rbidx?mac=52-54-00-00-00-01 (chunked, whole-disk)\n",
		"           chunks http://192.0.2.1:8080/artifacts/chunks?mac=52-54-00-00-00-01\n",
		"           seed   http://192.0.2.1:8080/artifacts/images/base-3.rbidx?mac=52-54-00-00-00-01 (base-3)\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	stderr.Reset()
	if code := fakeRenderer.run(context.Background(), []string{"--profiles", dir, "--mac", "52:54:00:00:00:01", "--installed", "base-9"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--installed base-9: not a version of the catalog") {
		t.Errorf("unknown --installed: exit %d, %s", code, stderr.String())
	}
}
