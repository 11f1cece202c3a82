package agentapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// cloudConfigNodes parses a cloud-config mapping into NoCloud.CloudConfig.
func cloudConfigNodes(t *testing.T, doc string) map[string]*yaml.Node {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	m := root.Content[0]
	out := map[string]*yaml.Node{}
	for i := 0; i < len(m.Content); i += 2 {
		out[m.Content[i].Value] = m.Content[i+1]
	}
	return out
}

// testMounts is a storage host: DHCP with name servers, an ext4 data
// partition inside an xfs one, swap, and extra cloud-config.
func testMounts(t *testing.T) NoCloud {
	return NoCloud{
		InstanceID: "rackboot-525400abcdef-v3",
		Hostname:   "store-01",
		SSHKeys:    []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 admin@lab"},
		Network:    &Network{MAC: "52:54:00:AB:CD:EF", DNS: []string{"10.0.0.1"}, Search: []string{"lab.example", "example.com"}},
		Mounts: []Mount{
			{PartLabel: "data", Path: "/srv/data", Filesystem: FilesystemExt4},
			{PartLabel: "swap", Filesystem: FilesystemSwap},
			{PartLabel: "scratch", Path: "/srv", Filesystem: FilesystemXFS},
		},
		CloudConfig: cloudConfigNodes(t, `
packages: [htop, chrony]
package_update: yes
runcmd:
  - [systemctl, enable, --now, chrony]
bootcmd:
  - echo hello > /run/hello
ntp: {enabled: true, servers: [10.0.0.1]}
`),
	}
}

// TestCloudInitAccepts checks every drive with cloud-init itself: its
// user-data is valid cloud-config, and Debian's (ifupdown), Fedora's
// (networkd) and Ubuntu's (netplan) renderers configure the interface with
// the boot MAC from it, static or DHCP, with its gateway, name servers and
// search domains.
func TestCloudInitAccepts(t *testing.T) {
	cloudInit(t)
	for _, format := range []string{DriveNoCloud, DriveOpenStack} {
		for _, tt := range renderCases(t) {
			t.Run(format+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				tt.in.Format = format
				files, err := tt.in.Render()
				if err != nil {
					t.Fatal(err)
				}
				checkWithCloudInit(t, tt.in, files)
			})
		}
	}
}

// TestUserDataMerge: rackboot's keys first, the mounts' boot commands
// before the profile's, the profile's keys sorted and as written.
func TestUserDataMerge(t *testing.T) {
	files, err := testMounts(t).Render()
	if err != nil {
		t.Fatal(err)
	}
	ud := byName(files)["user-data"]
	var keys yaml.Node
	if err := yaml.Unmarshal([]byte(ud), &keys); err != nil {
		t.Fatal(err)
	}
	var order []string
	for i, n := range keys.Content[0].Content {
		if i%2 == 0 {
			order = append(order, n.Value)
		}
	}
	if diff := cmp.Diff([]string{"hostname", "ssh_authorized_keys", "bootcmd", "ntp", "package_update", "packages", "runcmd"}, order); diff != "" {
		t.Errorf("user-data keys (-want +got):\n%s", diff)
	}
	// Written as in the profile: cloud-init (YAML 1.1) reads yes as true.
	if !strings.Contains(ud, "\npackage_update: yes\n") {
		t.Errorf("package_update not written as given:\n%s", ud)
	}
	var parsed struct {
		BootCmd []any `yaml:"bootcmd"`
	}
	if err := yaml.Unmarshal([]byte(ud), &parsed); err != nil {
		t.Fatal(err)
	}
	n := len(parsed.BootCmd)
	if n != 5 || parsed.BootCmd[n-1] != "echo hello > /run/hello" {
		t.Fatalf("bootcmd = %v, want the mounts' four commands, then the profile's", parsed.BootCmd)
	}
	got := make([][]string, n-1)
	for i := range got {
		for _, a := range parsed.BootCmd[i].([]any) {
			got[i] = append(got[i], a.(string))
		}
	}
	fstab := "# rackboot: the layout's partitions\n" +
		"/dev/disk/by-partlabel/swap none swap defaults,nofail 0 0\n" +
		"/dev/disk/by-partlabel/scratch /srv xfs defaults,nofail 0 0\n" +
		"/dev/disk/by-partlabel/data /srv/data ext4 defaults,nofail 0 2"
	want := [][]string{
		{"cloud-init-per", "instance", "rackboot-fstab", "sh", "-c", fstabScript, "rackboot-fstab", fstab},
		{"cloud-init-per", "instance", "rackboot-mount-1", "sh", "-c", swapScript, "rackboot-swap", "/dev/disk/by-partlabel/swap"},
		{"cloud-init-per", "instance", "rackboot-mount-2", "sh", "-c", mountScript, "rackboot-mount", "/srv"},
		{"cloud-init-per", "instance", "rackboot-mount-3", "sh", "-c", mountScript, "rackboot-mount", "/srv/data"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bootcmd (-want +got):\n%s", diff)
	}
}

// TestUserDataWithoutMounts: a profile's bootcmd is one of its keys.
func TestUserDataWithoutMounts(t *testing.T) {
	c := NoCloud{InstanceID: "i", CloudConfig: cloudConfigNodes(t, "bootcmd: [echo a]\nwrite_metadata: {a: 1}\n")}
	files, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	want := "#cloud-config\nbootcmd: [echo a]\nwrite_metadata: {a: 1}\n"
	if got := byName(files)["user-data"]; got != want {
		t.Errorf("user-data = %q, want %q", got, want)
	}
}

func TestCloudConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      NoCloud
		wantErr string
	}{
		{name: "reserved key", in: NoCloud{InstanceID: "i", CloudConfig: cloudConfigNodes(t, "users: [root]\n")}, wantErr: `"users" is rackboot's`},
		{name: "network", in: NoCloud{InstanceID: "i", CloudConfig: cloudConfigNodes(t, "network: {config: disabled}\n")}, wantErr: `"network"`},
		{name: "nil value", in: NoCloud{InstanceID: "i", CloudConfig: map[string]*yaml.Node{"runcmd": nil}}, wantErr: "without a value"},
		{name: "bootcmd not a list", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "d", Path: "/d", Filesystem: FilesystemExt4}},
			CloudConfig: cloudConfigNodes(t, "bootcmd: echo\n")}, wantErr: "not a list"},
		{name: "relative mount", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "d", Path: "srv", Filesystem: FilesystemExt4}}}, wantErr: "mount point"},
		{name: "dot dot", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "d", Path: "/srv/../etc", Filesystem: FilesystemExt4}}}, wantErr: "mount point"},
		{name: "space", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "d", Path: "/srv/my data", Filesystem: FilesystemExt4}}}, wantErr: "mount point"},
		{name: "root", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "d", Path: "/", Filesystem: FilesystemExt4}}}, wantErr: "mount point"},
		{name: "swap with a path", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "s", Path: "/swap", Filesystem: FilesystemSwap}}}, wantErr: "swap"},
		{name: "vfat", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "d", Path: "/d", Filesystem: FilesystemVFAT}}}, wantErr: "file system"},
		{name: "bad label", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "a b", Path: "/d", Filesystem: FilesystemExt4}}}, wantErr: "partition name"},
		{name: "mount point twice", in: NoCloud{InstanceID: "i", Mounts: []Mount{{PartLabel: "a", Path: "/d", Filesystem: FilesystemExt4},
			{PartLabel: "b", Path: "/d", Filesystem: FilesystemXFS}}}, wantErr: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{DriveNoCloud, DriveOpenStack} {
				tt.in.Format = format
				if _, err := tt.in.Render(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s: Render() = %v, want error containing %q", format, err, tt.wantErr)
				}
			}
		})
	}
}

// TestOpenStackRender: the same hosts as an OpenStack config drive.
func TestOpenStackRender(t *testing.T) {
	for _, tt := range renderCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Format = DriveOpenStack
			list, err := tt.in.Render()
			if err != nil {
				t.Fatal(err)
			}
			names := []string{"openstack/latest/meta_data.json", "openstack/latest/user_data", "openstack/latest/network_data.json"}
			var got []string
			for _, f := range list {
				got = append(got, f.Name)
				golden(t, "openstack/"+tt.name+"/"+f.Name, []byte(f.Content))
			}
			if diff := cmp.Diff(names, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			files := byName(list)
			var md struct {
				UUID       string            `json:"uuid"`
				Hostname   string            `json:"hostname"`
				PublicKeys map[string]string `json:"public_keys"`
				Keys       []struct{ Name, Type, Data string }
			}
			if err := json.Unmarshal([]byte(files[names[0]]), &md); err != nil {
				t.Fatal(err)
			}
			if md.UUID != tt.in.InstanceID || md.Hostname != tt.in.Hostname || len(md.PublicKeys) != len(tt.in.SSHKeys) || len(md.Keys) != len(tt.in.SSHKeys) {
				t.Errorf("meta_data.json read back as %+v", md)
			}
			for i, k := range md.Keys {
				if k.Data != tt.in.SSHKeys[i] || md.PublicKeys[k.Name] != k.Data || k.Type != "ssh" {
					t.Errorf("key %d read back as %+v, %q", i, k, md.PublicKeys[k.Name])
				}
			}
			// The default user's keys are in the metadata only.
			nc := tt.in
			nc.Format, nc.SSHKeys = DriveNoCloud, nil
			want, err := nc.Render()
			if err != nil {
				t.Fatal(err)
			}
			if ud := files[names[1]]; ud != byName(want)["user-data"] {
				t.Errorf("user_data differs from the NoCloud user-data without ssh_authorized_keys:\n%s", ud)
			}
			var nd struct {
				Links []struct {
					ID, Name, Type string
					MAC            string `json:"ethernet_mac_address"`
				}
				Networks []struct {
					Link, Type string
					IP         string `json:"ip_address"`
				}
			}
			if err := json.Unmarshal([]byte(files[names[2]]), &nd); err != nil {
				t.Fatal(err)
			}
			if len(nd.Links) != 1 || nd.Links[0].MAC != "52:54:00:ab:cd:ef" || nd.Links[0].Name != BootInterface ||
				len(nd.Networks) != 1 || nd.Networks[0].Link != nd.Links[0].ID {
				t.Errorf("network_data.json read back as %+v", nd)
			}
		})
	}
}

func TestDriveLabel(t *testing.T) {
	if l := (NoCloud{}).Label(); l != ConfigDriveLabel {
		t.Errorf("NoCloud label %q", l)
	}
	if l := (NoCloud{Format: DriveOpenStack}).Label(); l != "config-2" {
		t.Errorf("OpenStack label %q", l)
	}
}
