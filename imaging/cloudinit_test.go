package imaging

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestNoCloudRender(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF}
	tests := []struct {
		name string
		in   NoCloud
	}{
		{name: "static", in: NoCloud{
			InstanceID: "rackboot-52-54-00-ab-cd-ef-3",
			Hostname:   "node-07",
			Users: []User{
				{Name: "ops", PasswordHash: "$6$rounds=4096$salt$2Yt6Xc", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops@lab"},
					Sudo: "ALL=(ALL) NOPASSWD:ALL", Groups: []string{"wheel", "adm"}, Shell: "/bin/bash"},
				{Name: "backup", SSHKeys: []string{"ssh-rsa AAAAB3 backup@vault"}},
			},
			Network: &Network{
				MAC:         mac,
				Name:        "eth0",
				Addresses:   []netip.Prefix{netip.MustParsePrefix("10.0.0.7/24"), netip.MustParsePrefix("fd00::7/64")},
				Gateway4:    netip.MustParseAddr("10.0.0.1"),
				Gateway6:    netip.MustParseAddr("fd00::1"),
				Nameservers: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("9.9.9.9")},
				Search:      []string{"lab.example"},
			},
			Files: []File{
				{Path: "/etc/motd", Content: []byte("installed by rackboot\n"), Permissions: "0644"},
				{Path: "/etc/app/key.bin", Content: []byte{0xff, 0x00, 0xfe}, Permissions: "0600", Owner: "app:app"},
				{Path: "/etc/app/yes.conf", Content: []byte("yes: no\n# not a comment: 0644\n")},
			},
		}},
		{name: "dhcp", in: NoCloud{
			InstanceID: "i-2",
			Hostname:   "node-08",
			Network:    &Network{MAC: mac, DHCP4: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := tt.in.Render()
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range sortedKeys(files) {
				golden(t, "nocloud/"+tt.name+"/"+name, files[name])
				var v any
				if err := yaml.Unmarshal(files[name], &v); err != nil {
					t.Errorf("%s is not YAML: %v", name, err)
				}
			}
			if !strings.HasPrefix(string(files["user-data"]), "#cloud-config\n") {
				t.Error("user-data does not start with #cloud-config")
			}
			// What cloud-init will read back.
			var ud struct {
				Users []struct {
					Name   string   `yaml:"name"`
					Passwd string   `yaml:"passwd"`
					Lock   bool     `yaml:"lock_passwd"`
					Keys   []string `yaml:"ssh_authorized_keys"`
				} `yaml:"users"`
				WriteFiles []struct {
					Path, Content, Encoding, Permissions string
				} `yaml:"write_files"`
			}
			if err := yaml.Unmarshal(files["user-data"], &ud); err != nil {
				t.Fatal(err)
			}
			for i, u := range tt.in.Users {
				got := ud.Users[i]
				if got.Name != u.Name || got.Passwd != u.PasswordHash || got.Lock != (u.PasswordHash == "") || !cmp.Equal(got.Keys, u.SSHKeys) {
					t.Errorf("user %d read back as %+v", i, got)
				}
			}
			for i, f := range tt.in.Files {
				got := ud.WriteFiles[i]
				if got.Path != f.Path || got.Permissions != f.Permissions {
					t.Errorf("file %d read back as %+v", i, got)
				}
				if got.Encoding == "" && got.Content != string(f.Content) {
					t.Errorf("file %d content %q", i, got.Content)
				}
			}
			var nc struct {
				Version   int `yaml:"version"`
				Ethernets map[string]struct {
					Match map[string]string `yaml:"match"`
					DHCP4 bool              `yaml:"dhcp4"`
				} `yaml:"ethernets"`
			}
			if err := yaml.Unmarshal(files["network-config"], &nc); err != nil {
				t.Fatal(err)
			}
			for _, e := range nc.Ethernets {
				if nc.Version != 2 || e.Match["macaddress"] != "52:54:00:ab:cd:ef" || e.DHCP4 != tt.in.Network.DHCP4 {
					t.Errorf("network-config read back as %+v", nc)
				}
			}
		})
	}
}

// TestNoCloudQuotesYAML11: cloud-init parses with PyYAML (YAML 1.1), which
// reads an all-digit MAC as a base-60 integer and "yes" as true.
func TestNoCloudQuotesYAML11(t *testing.T) {
	files, err := NoCloud{
		InstanceID: "1234",
		Hostname:   "yes",
		Network:    &Network{MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, DHCP4: true},
	}.Render()
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"network-config": `macaddress: "52:54:00:12:34:56"`,
		"meta-data":      `instance-id: "1234"`,
		"user-data":      `hostname: "yes"`,
	} {
		if !strings.Contains(string(files[file]), want) {
			t.Errorf("%s lacks %s:\n%s", file, want, files[file])
		}
	}
}

func TestNoCloudRenderErrors(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	tests := []struct {
		name    string
		in      NoCloud
		wantErr string
	}{
		{name: "no instance id", in: NoCloud{}, wantErr: "instance id"},
		{name: "plain text password", in: NoCloud{InstanceID: "i", Users: []User{{Name: "root", PasswordHash: "hunter2"}}}, wantErr: "plain text"},
		{name: "user without name", in: NoCloud{InstanceID: "i", Users: []User{{}}}, wantErr: "without a name"},
		{name: "relative file", in: NoCloud{InstanceID: "i", Files: []File{{Path: "etc/motd"}}}, wantErr: "absolute"},
		{name: "network without mac", in: NoCloud{InstanceID: "i", Network: &Network{DHCP4: true}}, wantErr: "MAC"},
		{name: "network without address", in: NoCloud{InstanceID: "i", Network: &Network{MAC: mac}}, wantErr: "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.in.Render(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Render() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	files, err := NoCloud{InstanceID: "i"}.Render()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["network-config"]; ok || len(files) != 2 {
		t.Errorf("without Network: files %v, want meta-data and user-data only", sortedKeys(files))
	}
}
