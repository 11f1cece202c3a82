package agentapi

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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

// byName is files by name.
func byName(files []File) map[string]string {
	m := make(map[string]string, len(files))
	for _, f := range files {
		m[f.Name] = f.Content
	}
	return m
}

// renderCase is one host's drive, rendered in every format.
type renderCase struct {
	name string
	in   NoCloud
}

// renderCases are the drives the golden files, the read-back checks and
// cloud-init itself (TestCloudInitAccepts) check.
func renderCases(t *testing.T) []renderCase {
	return []renderCase{
		{name: "static", in: NoCloud{
			InstanceID: "rackboot-525400abcdef-v3",
			Hostname:   "node-07",
			SSHKeys:    []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 admin@lab"},
			Users: []User{
				{Name: "ops", PasswordHash: "$6$rounds=4096$salt$2Yt6Xc", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops@lab"},
					Sudo: true, Groups: []string{"wheel", "adm"}, Shell: "/bin/bash"},
				{Name: "backup", SSHKeys: []string{"ssh-rsa AAAAB3 backup@vault"}},
			},
			Network: &Network{MAC: "52:54:00:AB:CD:EF", Address: "10.0.0.7/24", Gateway: "10.0.0.1",
				DNS: []string{"10.0.0.1", "9.9.9.9"}, Search: []string{"lab.example"}},
			Files: []WriteFile{
				{Path: "/etc/motd", Content: "installed by rackboot\n", Mode: "644"},
				{Path: "/etc/app/key", Content: "secret\n", Mode: "0600", Owner: "app:app"},
				{Path: "/etc/app/yes.conf", Content: "yes: no\n# not a comment: 0644\n"},
			},
		}},
		{name: "dhcp", in: NoCloud{
			InstanceID: "i-2",
			Hostname:   "node-08",
			Network:    &Network{MAC: "52:54:00:ab:cd:ef"},
		}},
		{name: "ipv6", in: NoCloud{
			InstanceID: "i-3",
			Network:    &Network{MAC: "52:54:00:ab:cd:ef", Address: "2001:db8::5/64", Gateway: "fe80::1"},
		}},
		{name: "mounts", in: testMounts(t)},
	}
}

func TestNoCloudRender(t *testing.T) {
	tests := renderCases(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := tt.in.Render()
			if err != nil {
				t.Fatal(err)
			}
			files := byName(list)
			for _, f := range list {
				golden(t, "nocloud/"+tt.name+"/"+f.Name, []byte(f.Content))
				var v any
				if err := yaml.Unmarshal([]byte(f.Content), &v); err != nil {
					t.Errorf("%s is not YAML: %v", f.Name, err)
				}
			}
			if !strings.HasPrefix(files["user-data"], "#cloud-config\n") {
				t.Error("user-data does not start with #cloud-config")
			}
			// What cloud-init will read back.
			var ud struct {
				Users      []any `yaml:"users"`
				WriteFiles []struct {
					Path, Content, Permissions string
				} `yaml:"write_files"`
			}
			if err := yaml.Unmarshal([]byte(files["user-data"]), &ud); err != nil {
				t.Fatal(err)
			}
			if len(tt.in.Users) > 0 {
				if len(ud.Users) != len(tt.in.Users)+1 || ud.Users[0] != "default" {
					t.Errorf("users = %v, want default first", ud.Users)
				}
				for i, u := range tt.in.Users {
					var got struct {
						Name   string   `yaml:"name"`
						Passwd string   `yaml:"passwd"`
						Lock   bool     `yaml:"lock_passwd"`
						Keys   []string `yaml:"ssh_authorized_keys"`
					}
					b, _ := yaml.Marshal(ud.Users[i+1])
					if err := yaml.Unmarshal(b, &got); err != nil {
						t.Fatal(err)
					}
					if got.Name != u.Name || got.Passwd != u.PasswordHash || got.Lock != (u.PasswordHash == "") || !cmp.Equal(got.Keys, u.SSHKeys) {
						t.Errorf("user %d read back as %+v", i, got)
					}
				}
			}
			for i, f := range tt.in.Files {
				got := ud.WriteFiles[i]
				if got.Path != f.Path || got.Content != f.Content || !strings.HasSuffix(got.Permissions, f.Mode) {
					t.Errorf("file %d read back as %+v", i, got)
				}
			}
			var nc struct {
				Version   int `yaml:"version"`
				Ethernets map[string]struct {
					Match   map[string]string `yaml:"match"`
					SetName string            `yaml:"set-name"`
					DHCP4   bool              `yaml:"dhcp4"`
				} `yaml:"ethernets"`
			}
			if err := yaml.Unmarshal([]byte(files["network-config"]), &nc); err != nil {
				t.Fatal(err)
			}
			for name, e := range nc.Ethernets {
				if nc.Version != 2 || len(nc.Ethernets) != 1 || name != BootInterface || e.SetName != BootInterface ||
					e.Match["macaddress"] != "52:54:00:ab:cd:ef" || e.DHCP4 != (tt.in.Network.Address == "") {
					t.Errorf("network-config read back as %+v", nc)
				}
			}
		})
	}
}

// TestNoCloudQuotesYAML11: cloud-init parses with PyYAML (YAML 1.1), which
// reads an all-digit MAC as a base-60 integer and "yes" as true.
func TestNoCloudQuotesYAML11(t *testing.T) {
	list, err := NoCloud{
		InstanceID: "1234",
		Hostname:   "yes",
		Network:    &Network{MAC: "52:54:00:12:34:56"},
	}.Render()
	if err != nil {
		t.Fatal(err)
	}
	files := byName(list)
	for file, want := range map[string]string{
		"network-config": `macaddress: "52:54:00:12:34:56"`,
		"meta-data":      `instance-id: "1234"`,
		"user-data":      `hostname: "yes"`,
	} {
		if !strings.Contains(files[file], want) {
			t.Errorf("%s lacks %s:\n%s", file, want, files[file])
		}
	}
}

// TestNoCloudIsData: values that look like YAML syntax stay values.
func TestNoCloudIsData(t *testing.T) {
	list, err := NoCloud{InstanceID: "i", Hostname: "h\nruncmd: [reboot]",
		Files: []WriteFile{{Path: "/etc/x: y", Content: "runcmd: [reboot]\n#cloud-config\n"}}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	var ud map[string]any
	if err := yaml.Unmarshal([]byte(byName(list)["user-data"]), &ud); err != nil {
		t.Fatal(err)
	}
	if _, ok := ud["runcmd"]; ok {
		t.Errorf("a value added a key: %v", ud)
	}
}

func TestNoCloudRenderErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      NoCloud
		wantErr string
	}{
		{name: "no instance id", in: NoCloud{}, wantErr: "instance id"},
		{name: "plain text password", in: NoCloud{InstanceID: "i", Users: []User{{Name: "root", PasswordHash: "hunter2"}}}, wantErr: "plain text"},
		{name: "user without name", in: NoCloud{InstanceID: "i", Users: []User{{}}}, wantErr: "without a name"},
		{name: "relative file", in: NoCloud{InstanceID: "i", Files: []WriteFile{{Path: "etc/motd"}}}, wantErr: "absolute"},
		{name: "network without mac", in: NoCloud{InstanceID: "i", Network: &Network{}}, wantErr: "MAC"},
		{name: "bad address", in: NoCloud{InstanceID: "i", Network: &Network{MAC: "02:00:00:00:00:01", Address: "10.0.0.1"}}, wantErr: "address"},
		{name: "bad mac", in: NoCloud{InstanceID: "i", Network: &Network{MAC: "02:00:00"}}, wantErr: "MAC"},
		{name: "gateway of the other family", in: NoCloud{InstanceID: "i", Network: &Network{MAC: "02:00:00:00:00:01", Address: "10.0.0.2/24", Gateway: "fe80::1"}}, wantErr: "gateway"},
		{name: "unknown format", in: NoCloud{InstanceID: "i", Format: "azure"}, wantErr: "format"},
		{name: "openstack plain text password", in: NoCloud{InstanceID: "i", Format: DriveOpenStack, Users: []User{{Name: "root", PasswordHash: "hunter2"}}}, wantErr: "plain text"},
		{name: "openstack bad address", in: NoCloud{InstanceID: "i", Format: DriveOpenStack, Network: &Network{MAC: "02:00:00:00:00:01", Address: "10.0.0.1"}}, wantErr: "address"},
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
	if len(files) != 2 || files[0].Name != "meta-data" || files[1].Name != "user-data" {
		t.Errorf("without Network: files %v, want meta-data and user-data only", files)
	}
}
