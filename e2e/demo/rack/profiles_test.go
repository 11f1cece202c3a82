package rack

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/examples"
)

var (
	sum10 = strings.Repeat("a1", 32)
	sum11 = strings.Repeat("b2", 32)
)

// TestWriteProfiles writes the example fleet with two digests and checks
// that only those changed, byte for byte, and that rackboot's loader sees
// them.
func TestWriteProfiles(t *testing.T) {
	dir := t.TempDir()
	images := map[string]*osimage.Image{"demo-1.0": {SHA256: sum10}, "demo-1.1": {SHA256: sum11}}
	extra := map[string]string{"zz.yaml": "hosts:\n  - { mac: 52:54:00:77:09:01, hostname: extra-01, network: { address: 10.0.1.99/24 } }\n"}
	set, err := WriteProfiles(dir, images, extra)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"demo-1.0": sum10, "demo-1.1": sum11} {
		v, ok := set.Version(name)
		if !ok || v.Image.SHA256 != want {
			t.Errorf("version %s: %+v, want sha256 %s", name, v, want)
		}
	}
	if _, ok := set.Lookup(mustMAC(t, "52:54:00:77:09:01")); !ok {
		t.Error("the extra file's host is not in the fleet")
	}
	names, err := fs.Glob(examples.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		orig, err := examples.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Put the committed values back: the rest must be untouched.
		for v, sum := range map[string]string{"demo-1.0": sum10, "demo-1.1": sum11} {
			cv, _ := committed(t, v)
			got = bytes.ReplaceAll(got, []byte(sum), []byte(cv))
		}
		if diff := cmp.Diff(string(orig), string(got)); diff != "" {
			t.Errorf("%s changed beyond the digests (-examples +written):\n%s", name, diff)
		}
	}
}

// committed returns the digest the committed catalog gives version v.
func committed(t *testing.T, v string) (string, bool) {
	t.Helper()
	b, err := examples.FS.ReadFile("catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	patched := map[string]bool{}
	out, err := setDigests(b, map[string]string{v: "@@"}, patched)
	if err != nil || !patched[v] {
		t.Fatalf("setDigests: %v, patched %v", err, patched)
	}
	i := bytes.Index(out, []byte("@@"))
	return string(b[i : i+64]), true
}

func TestWriteProfilesUnknownVersion(t *testing.T) {
	_, err := WriteProfiles(t.TempDir(), map[string]*osimage.Image{"demo-9.9": {SHA256: sum10}}, nil)
	if err == nil || !strings.Contains(err.Error(), "no version demo-9.9") {
		t.Errorf("WriteProfiles with a version the catalog lacks: %v", err)
	}
}

func TestSetDigests(t *testing.T) {
	tests := []struct {
		name, in, want string
		patched        []string
	}{
		{
			name:    "block",
			in:      "versions:\n  - name: a\n    image:\n      url: a.img\n      sha256: " + sum10 + "   # old\n",
			want:    "versions:\n  - name: a\n    image:\n      url: a.img\n      sha256: " + sum11 + "   # old\n",
			patched: []string{"a"},
		},
		{
			name:    "flow, quoted",
			in:      "versions:\n  - { name: a, image: { url: a.img, sha256: \"" + sum10 + "\" } }\n",
			want:    "versions:\n  - { name: a, image: { url: a.img, sha256: \"" + sum11 + "\" } }\n",
			patched: []string{"a"},
		},
		{
			name: "other version kept",
			in:   "versions:\n  - { name: b, image: { url: b.img, sha256: " + sum10 + " } }\n",
			want: "versions:\n  - { name: b, image: { url: b.img, sha256: " + sum10 + " } }\n",
		},
		{
			name: "no versions",
			in:   "hosts:\n  - { mac: 52:54:00:00:00:01 }\n",
			want: "hosts:\n  - { mac: 52:54:00:00:00:01 }\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patched := map[string]bool{}
			got, err := setDigests([]byte(tt.in), map[string]string{"a": sum11}, patched)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			var names []string
			for n := range patched {
				names = append(names, n)
			}
			if diff := cmp.Diff(tt.patched, names); diff != "" {
				t.Errorf("patched (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetDigestsBadYAML(t *testing.T) {
	if _, err := setDigests([]byte("versions: [\n"), map[string]string{"a": sum10}, map[string]bool{}); err == nil {
		t.Error("setDigests accepted broken YAML")
	}
}
