package profiles

import (
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rackboot/rackboot/agentapi"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

// TestPlanGolden renders the install plan of every example host.
func TestPlanGolden(t *testing.T) {
	set, err := Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range set.Hosts() {
		t.Run(h.Hostname, func(t *testing.T) {
			p, err := Planner{}.Plan(h, nil, nil, "http://192.0.2.1:8080")
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("plans", h.Hostname+".json"), append(b, '\n'))
			// The config drive once more as the files the machine reads.
			for _, f := range p.ConfigDrive {
				golden(t, filepath.Join("configdrive", h.Hostname, f.Name), []byte(f.Content))
			}
		})
	}
}

// TestPlanConcurrently: hosts share their cloud_config nodes, and the API
// plans for many machines at once; rendering only reads them (go test
// -race checks).
func TestPlanConcurrently(t *testing.T) {
	set, err := Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, h := range set.Hosts() {
				if _, err := (Planner{}).Plan(h, nil, nil, "http://192.0.2.1:8080"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

func TestPlanWithoutVersion(t *testing.T) {
	set := mustLoad(t, map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    installer: {kernel: k}\n"})
	h, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	if _, err := (Planner{}).Plan(h, nil, nil, "http://192.0.2.1:8080"); !errors.Is(err, ErrNoPlan) {
		t.Errorf("Plan() error = %v, want ErrNoPlan", err)
	}
}

// TestConfigDriveIsData: values that look like YAML syntax stay values.
func TestConfigDriveIsData(t *testing.T) {
	set := mustLoad(t, map[string]string{"catalog.yaml": testCatalog, "a.yaml": `hosts:
  - mac: 52:54:00:00:00:01
    hostname: n1
    version: v1
    layout: l1
    network: {address: "2001:db8::5/64", gateway: "fe80::1", dns: ["2001:db8::53"]}
    files:
      - path: "/etc/x: y"
        content: "runcmd: [reboot]\n#cloud-config\n"
        mode: "600"
`})
	h, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	p, err := Planner{}.Plan(h, nil, nil, "http://192.0.2.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	files := checkConfigDrive(t, h, p)
	var ud struct {
		RunCmd     any `yaml:"runcmd"`
		WriteFiles []struct {
			Path, Content, Permissions string
		} `yaml:"write_files"`
	}
	if err := yaml.Unmarshal([]byte(files["user-data"]), &ud); err != nil {
		t.Fatal(err)
	}
	if ud.RunCmd != nil || len(ud.WriteFiles) != 1 || ud.WriteFiles[0].Path != "/etc/x: y" ||
		ud.WriteFiles[0].Content != "runcmd: [reboot]\n#cloud-config\n" || ud.WriteFiles[0].Permissions != "0600" {
		t.Errorf("user-data = %+v", ud)
	}
	var nc struct {
		Ethernets map[string]struct {
			Gateway6 string `yaml:"gateway6"`
		}
	}
	if err := yaml.Unmarshal([]byte(files["network-config"]), &nc); err != nil {
		t.Fatal(err)
	}
	if gw := nc.Ethernets[agentapi.BootInterface].Gateway6; gw != "fe80::1" {
		t.Errorf("IPv6 gateway = %q", gw)
	}
}

// TestPlanOpenStackDrive: a version that reads the OpenStack config drive
// gets one, labelled config-2, from the same host data; the layout's
// mounts and the cloud_config reach its user_data.
func TestPlanOpenStackDrive(t *testing.T) {
	set := mustLoad(t, map[string]string{"catalog.yaml": testCatalog, "a.yaml": `versions:
  - name: clear
    number: 41000
    config_drive: openstack
    image: {url: clear.img.xz, sha256: "` + testSHA + `"}
    installer: {kernel: vmlinuz}
layouts:
  - name: store
    disk: {select: largest}
    partitions:
      - {name: cidata, size: 16MiB, type: linux, content: config}
      - {name: swap, size: 1GiB, type: swap, mount: swap}
      - {name: data, size: rest, type: linux, filesystem: ext4, mount: /srv/data, preserve: true}
hosts:
  - mac: 52:54:00:00:00:01
    hostname: n1
    version: clear
    layout: store
    ssh_keys: ["` + testKey + `"]
    network: {address: 10.0.0.5/24, gateway: 10.0.0.1}
    cloud_config: {packages: [htop]}
`})
	h, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	p, err := Planner{}.Plan(h, nil, nil, "http://192.0.2.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if part := p.Partitions[0]; part.Content != agentapi.ContentConfigDrive || part.EffectiveLabel() != "config-2" {
		t.Errorf("config partition %+v, label %q", part, part.EffectiveLabel())
	}
	files := map[string]string{}
	for _, f := range p.ConfigDrive {
		files[f.Name] = f.Content
	}
	var md struct {
		UUID       string            `json:"uuid"`
		Hostname   string            `json:"hostname"`
		PublicKeys map[string]string `json:"public_keys"`
	}
	if err := json.Unmarshal([]byte(files["openstack/latest/meta_data.json"]), &md); err != nil ||
		md.UUID != "rackboot-525400000001-clear" || md.Hostname != "n1" || len(md.PublicKeys) != 1 {
		t.Errorf("meta_data.json %+v, %v", md, err)
	}
	var ud struct {
		BootCmd  []any    `yaml:"bootcmd"`
		Packages []string `yaml:"packages"`
	}
	if err := yaml.Unmarshal([]byte(files["openstack/latest/user_data"]), &ud); err != nil || len(ud.BootCmd) != 3 || len(ud.Packages) != 1 {
		t.Errorf("user_data %+v, %v:\n%s", ud, err, files["openstack/latest/user_data"])
	}
	for _, want := range []string{"/dev/disk/by-partlabel/data /srv/data ext4 defaults,nofail 0 2", "/dev/disk/by-partlabel/swap none swap"} {
		if !strings.Contains(files["openstack/latest/user_data"], want) {
			t.Errorf("user_data lacks %q", want)
		}
	}
	if !strings.Contains(files["openstack/latest/network_data.json"], `"ip_address": "10.0.0.5"`) {
		t.Errorf("network_data.json:\n%s", files["openstack/latest/network_data.json"])
	}
	// The same host on a NoCloud version: the same data, NoCloud files.
	v1, _ := set.Version("v1")
	p, err = Planner{}.Plan(h, v1, nil, "http://192.0.2.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if l := p.Partitions[0].EffectiveLabel(); l != "CIDATA" || len(p.ConfigDrive) != 3 || p.ConfigDrive[0].Name != "meta-data" {
		t.Errorf("NoCloud plan: label %q, files %v", l, p.ConfigDrive)
	}
}

// TestPlanXFS: an xfs partition travels in the plan for the agent to
// create (or keep, when preserved), and the config drive mounts it with
// fsck pass 0.
func TestPlanXFS(t *testing.T) {
	set := mustLoad(t, map[string]string{"catalog.yaml": testCatalog, "a.yaml": `layouts:
  - name: store
    disk: {select: largest}
    partitions:
      - {name: cidata, size: 16MiB, type: linux, content: config}
      - {name: scratch, size: 300MiB, type: linux, filesystem: xfs, mount: /srv/scratch}
      - {name: data, size: rest, type: linux, filesystem: xfs, mount: /srv/data, preserve: true}
hosts:
  - mac: 52:54:00:00:00:01
    hostname: n1
    version: v1
    layout: store
`})
	h, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	p, err := Planner{}.Plan(h, nil, nil, "http://192.0.2.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	want := []agentapi.Partition{
		{Name: "scratch", Type: "linux", Size: 300 << 20, Filesystem: agentapi.FilesystemXFS},
		{Name: "data", Type: "linux", Size: agentapi.Rest, Filesystem: agentapi.FilesystemXFS, Preserve: true},
	}
	if diff := cmp.Diff(want, p.Partitions[1:]); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	var ud string
	for _, f := range p.ConfigDrive {
		if f.Name == "user-data" {
			ud = f.Content
		}
	}
	for _, line := range []string{"/dev/disk/by-partlabel/scratch /srv/scratch xfs defaults,nofail 0 0", "/dev/disk/by-partlabel/data /srv/data xfs defaults,nofail 0 0"} {
		if !strings.Contains(ud, line) {
			t.Errorf("user-data lacks %q:\n%s", line, ud)
		}
	}
}

// checkConfigDrive checks the config drive files of p parse and describe h,
// and returns them by name.
func checkConfigDrive(t *testing.T, h *Host, p agentapi.Plan) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, f := range p.ConfigDrive {
		files[f.Name] = f.Content
	}
	if len(files) != 3 {
		t.Fatalf("%s: config drive files %v", h.Hostname, p.ConfigDrive)
	}
	var meta struct {
		InstanceID    string `yaml:"instance-id"`
		LocalHostname string `yaml:"local-hostname"`
	}
	if err := yaml.Unmarshal([]byte(files["meta-data"]), &meta); err != nil || meta.LocalHostname != h.Hostname || meta.InstanceID == "" {
		t.Errorf("%s: meta-data %+v, %v", h.Hostname, meta, err)
	}
	if !strings.HasPrefix(files["user-data"], "#cloud-config\n") {
		t.Errorf("%s: user-data does not start with #cloud-config", h.Hostname)
	}
	var user map[string]any
	if err := yaml.Unmarshal([]byte(files["user-data"]), &user); err != nil || user["hostname"] != h.Hostname {
		t.Errorf("%s: user-data %v, %v", h.Hostname, user, err)
	}
	var nc struct {
		Version   int
		Ethernets map[string]struct {
			Match   map[string]string
			SetName string `yaml:"set-name"`
		}
	}
	err := yaml.Unmarshal([]byte(files["network-config"]), &nc)
	if e := nc.Ethernets[agentapi.BootInterface]; err != nil || nc.Version != 2 ||
		e.Match["macaddress"] != MACKey(h.MAC) || e.SetName != agentapi.BootInterface {
		t.Errorf("%s: network-config %+v, %v", h.Hostname, nc, err)
	}
	return files
}

func TestImageURL(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 1}
	tests := []struct{ loc, want string }{
		{"demo.img.zst", "http://b/artifacts/demo.img.zst?mac=52-54-00-77-00-01"},
		{"v1/demo image.zst", "http://b/artifacts/v1/demo%20image.zst?mac=52-54-00-77-00-01"},
		{"https://mirror.example/x.img", "https://mirror.example/x.img"},
		{"../etc/shadow", ""},
		{"/etc/shadow", ""},
		{"a//b", ""},
		{"ftp://x/y", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := imageURL("http://b", tt.loc, mac)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("imageURL(%q) = %q, %v; want %q", tt.loc, got, err, tt.want)
		}
	}
}
