package tftp

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // "" means refused
		wantErr string
	}{
		{"plain", "ipxe.efi", "ipxe.efi", ""},
		{"subdirectory", "grub/grub.cfg", "grub/grub.cfg", ""},
		{"leading slash is the root", "/ipxe.efi", "ipxe.efi", ""},
		{"several leading slashes", "///grub/grub.cfg", "grub/grub.cfg", ""},
		{"absolute path stays under the root", "/etc/passwd", "etc/passwd", ""},
		{"dot elements cleaned", "./grub/./grub.cfg", "grub/grub.cfg", ""},
		{"empty elements cleaned", "grub//grub.cfg", "grub/grub.cfg", ""},
		{"trailing slash cleaned", "grub/", "grub", ""},
		{"three dots is a name", "...", "...", ""},
		{"dots inside a name", "a..b/c..", "a..b/c..", ""},
		{"printable punctuation", "x86_64-efi/core.efi~1+@%", "x86_64-efi/core.efi~1+@%", ""},

		{"empty", "", "", "name is empty or the root directory"},
		{"root", "/", "", "name is empty or the root directory"},
		{"dot", ".", "", "name is empty or the root directory"},
		{"dot slash", "./", "", "name is empty or the root directory"},
		{"parent", "..", "", `name contains a ".." element`},
		{"parent prefix", "../etc/passwd", "", `name contains a ".." element`},
		{"absolute parent", "/../etc/passwd", "", `name contains a ".." element`},
		{"climbs out through a directory", "a/../../x", "", `name contains a ".." element`},
		{"parent that would stay inside", "a/../ipxe.efi", "", `name contains a ".." element`},
		{"trailing parent", "a/..", "", `name contains a ".." element`},
		{"NUL", "ipxe.efi\x00../x", "", "name contains a NUL byte"},
		{"backslash", `..\windows\win.ini`, "", "name contains a backslash"},
		{"backslash alone", `boot\bcd`, "", "name contains a backslash"},
		{"newline", "ipxe.efi\nfake log line", "", "name contains a control or non-ASCII byte"},
		{"DEL", "ipxe\x7f", "", "name contains a control or non-ASCII byte"},
		{"UTF-8", "caf\u00e9.efi", "", "name contains a control or non-ASCII byte"},
		{"invalid UTF-8", "\xff.efi", "", "name contains a control or non-ASCII byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cleanPath(tt.in)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if got != tt.want || gotErr != tt.wantErr {
				t.Errorf("cleanPath(%q) = %q, %q; want %q, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzCleanPath checks the properties the server relies on for every name a
// client can send: an accepted name is a valid local path with no ".." and
// no odd bytes, joining it to a root stays under the root, and cleaning is
// idempotent.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"ipxe.efi", "/ipxe.efi", "../x", "a/../../x", "a/./b//c/", "\x00", `a\b`, "/", "", "..."} {
		f.Add(s)
	}
	const root = "/srv/tftp"
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := cleanPath(name)
		if err != nil {
			if rel != "" {
				t.Fatalf("cleanPath(%q) returned %q with error %v", name, rel, err)
			}
			return
		}
		if !fs.ValidPath(rel) || rel == "." {
			t.Fatalf("cleanPath(%q) = %q, not a valid local path", name, rel)
		}
		if strings.ContainsAny(rel, "\x00\\") || strings.HasPrefix(rel, "/") {
			t.Fatalf("cleanPath(%q) = %q contains a forbidden byte or leading slash", name, rel)
		}
		for _, elem := range strings.Split(rel, "/") {
			if elem == ".." {
				t.Fatalf("cleanPath(%q) = %q has a .. element", name, rel)
			}
		}
		for i := 0; i < len(rel); i++ {
			if rel[i] < 0x20 || rel[i] > 0x7e {
				t.Fatalf("cleanPath(%q) = %q contains byte %#x", name, rel, rel[i])
			}
		}
		if joined := filepath.Join(root, rel); !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("cleanPath(%q) = %q joins to %q, outside %s", name, rel, joined, root)
		}
		if again, err := cleanPath(rel); err != nil || again != rel {
			t.Fatalf("cleanPath(%q) = %q, but cleanPath(%q) = %q, %v", name, rel, rel, again, err)
		}
	})
}
