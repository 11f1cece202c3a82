package osimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/rackboot/rackboot/agentapi"
)

// busybox returns the busybox the images are built with, the shell their
// scripts run in.
func busybox(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("no %s (package busybox-static): %v", DefaultBusybox, err)
	}
	return DefaultBusybox
}

// runScript runs script in busybox sh in dir and returns its output.
func runScript(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command(busybox(t), "sh", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("busybox sh: %v\n%s", err, out)
	}
	return string(out)
}

func TestScriptsParse(t *testing.T) {
	for name, s := range map[string]string{"init": initScript, "os": osInit} {
		t.Run(name, func(t *testing.T) {
			runScript(t, t.TempDir(), "sh -n <<'EOF'\n"+s+"\nEOF\n")
		})
	}
}

// TestReadConfigDrive runs the OS's config drive parsing on what the
// installer writes.
func TestReadConfigDrive(t *testing.T) {
	long := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC" + strings.Repeat("x9Z+", 80) + " admin@bastion.example.com"
	tests := []struct {
		name  string
		cfg   agentapi.NoCloud
		host  string
		key   string
		empty bool
	}{
		{
			name: "one user",
			cfg: agentapi.NoCloud{InstanceID: "i-1", Hostname: "web-1", Users: []agentapi.User{
				{Name: "ops", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps ops@laptop", "ssh-ed25519 AAAAsecond"}},
			}},
			host: "web-1", key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps ops@laptop",
		},
		{
			name: "long key, second user",
			cfg: agentapi.NoCloud{InstanceID: "i-2", Hostname: "db-02.rack3", Users: []agentapi.User{
				{Name: "root", Groups: []string{"wheel"}},
				{Name: "admin", Sudo: true, SSHKeys: []string{long}},
			}},
			host: "db-02.rack3", key: long,
		},
		{
			name: "a hostname YAML would read as a number",
			cfg:  agentapi.NoCloud{InstanceID: "i-3", Hostname: "0123", Users: []agentapi.User{{Name: "ops"}}},
			host: "0123", empty: true,
		},
		{
			name: "no users",
			cfg:  agentapi.NoCloud{InstanceID: "i-4", Hostname: "edge"},
			host: "edge", empty: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := tt.cfg.Render()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(f.Content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := runScript(t, dir, cidataFuncs+`
echo "host=$(cidata_hostname meta-data)"
echo "summary=$(key_summary "$(cidata_key user-data)")"`)
			want := "host=" + tt.host + "\nsummary=" + SSHKeySummary(tt.key) + "\n"
			if tt.empty {
				want = "host=" + tt.host + "\nsummary=none\n"
			}
			if out != want {
				t.Errorf("script printed\n%s\nwant\n%s\nmeta-data:\n%s\nuser-data:\n%s", out, want, files[0].Content, files[1].Content)
			}
		})
	}
}

// TestKeySummaryMatches checks that the shell's key_summary prints what
// SSHKeySummary returns, which is what tests compare the console with.
func TestKeySummaryMatches(t *testing.T) {
	keys := []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2 ops@example",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5A",
		"ssh-rsa *",
		"ssh-ed25519",
		"",
	}
	for _, k := range keys {
		t.Run(k, func(t *testing.T) {
			out := runScript(t, t.TempDir(), cidataFuncs+"\nkey_summary '"+k+"'")
			if want := SSHKeySummary(k) + "\n"; out != want {
				t.Errorf("key_summary %q = %q, want %q", k, out, want)
			}
		})
	}
}

// TestFATLabel reads the labels of FAT file systems the way the OS finds
// its config drive, including a small FAT32 one like the installer's,
// which busybox findfs misreads.
func TestFATLabel(t *testing.T) {
	dir := t.TempDir()
	diskfsFAT := func(name string, size int64, label string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		b, err := file.OpenFromPath(p, false)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := fat32.Create(b, size, 0, sectorSize, label, true); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, file, want string
	}{
		{"small FAT32 config drive", diskfsFAT("cidata.img", 8<<20, "CIDATA"), "CIDATA"},
		{"FAT32 ESP", diskfsFAT("esp.img", 64<<20, "ESP"), "ESP"},
		{"not FAT", func() string {
			p := filepath.Join(dir, "zeros.img")
			if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}(), ""},
	}
	if _, err := exec.LookPath("mkfs.vfat"); err == nil {
		p := filepath.Join(dir, "fat16.img")
		if err := os.WriteFile(p, make([]byte, 16<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mkfs.vfat", "-F", "16", "-n", "cidata", p).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.vfat: %v\n%s", err, out)
		}
		tests = append(tests, struct{ name, file, want string }{"FAT16 by mkfs.vfat", p, "cidata"})
	} else {
		t.Log("no mkfs.vfat (package dosfstools): FAT16 not checked")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runScript(t, dir, fatLabelFuncs+"\nfatlabel '"+tt.file+"' || true")
			if out != tt.want {
				t.Errorf("fatlabel = %q, want %q", out, tt.want)
			}
		})
	}
}
