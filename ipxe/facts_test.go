package ipxe

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFacts(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    Facts
		wantErr string // substring of the error; "" means success
	}{
		{"all facts", "mac=52-54-00-00-01-01&arch=x86_64&platform=efi&uuid=8B3D5C2E-0D4A-4C1E-9F6B-2A1C3E4D5F60",
			Facts{MAC: macKnown, Arch: "x86_64", Platform: "efi", UUID: "8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f60"}, ""},
		{"unset settings expand to nothing", "mac=52-54-00-00-01-01&arch=&platform=&uuid=", Facts{MAC: macKnown}, ""},
		{"mac only", "mac=52-54-00-00-01-01", Facts{MAC: macKnown}, ""},
		{"colon mac", "mac=52:54:00:00:01:01&arch=i386&platform=pcbios", Facts{MAC: macKnown, Arch: "i386", Platform: "pcbios"}, ""},
		{"arm64", "mac=525400000101&arch=arm64&platform=efi", Facts{MAC: macKnown, Arch: "arm64", Platform: "efi"}, ""},
		{"no mac", "arch=x86_64", Facts{}, "mac: missing"},
		{"empty mac", "mac=", Facts{}, "mac: missing"},
		{"bad mac", "mac=52-54-00-00-01", Facts{}, "mac: not a 48-bit"},
		{"eui64 mac", "mac=52-54-00-ff-fe-00-01-01", Facts{}, "mac: not a 48-bit"},
		{"padded mac", "mac=+52-54-00-00-01-01", Facts{}, "mac: not a 48-bit"},
		{"hostile mac", "mac=${net0/mac}", Facts{}, "mac: not a 48-bit"},
		{"unknown arch", "mac=52-54-00-00-01-01&arch=sparc", Facts{}, "arch: unknown"},
		{"hostile arch", "mac=52-54-00-00-01-01&arch=x86_64%0Ashell", Facts{}, "arch: unknown"},
		{"unknown platform", "mac=52-54-00-00-01-01&platform=linux", Facts{}, "platform: unknown"},
		{"short uuid", "mac=52-54-00-00-01-01&uuid=8b3d5c2e", Facts{}, "uuid:"},
		{"uuid without hyphens", "mac=52-54-00-00-01-01&uuid=8b3d5c2e0d4a4c1e9f6b2a1c3e4d5f60abcd", Facts{}, "uuid:"},
		{"hostile uuid", "mac=52-54-00-00-01-01&uuid=8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f6%3B", Facts{}, "uuid:"},
		{"unknown parameter", "mac=52-54-00-00-01-01&hostname=x", Facts{}, `unknown parameter "hostname"`},
		{"repeated parameter", "mac=52-54-00-00-01-01&mac=52-54-00-00-01-02", Facts{}, "given 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseFacts(q)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFacts(%q) error = %v, want one containing %q", tt.query, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFacts(%q) mismatch (-want +got):\n%s", tt.query, diff)
			}
		})
	}
}

// scriptMeta are the characters and words iPXE's command language gives a
// meaning to. A rendered script may use "||" only in its own
// "COMMAND || goto LABEL" lines, which checkScript verifies.
var scriptMeta = []string{"$", "{", "}", ";", "&&", "#", "\"", "'", "\\", "\r", "\t", "\x00"}

// FuzzParseFacts feeds arbitrary queries to the parser and renders a script
// from whatever it accepts: nothing may panic, and no accepted input may put
// a metacharacter into a script.
func FuzzParseFacts(f *testing.F) {
	for _, s := range []string{
		"mac=52-54-00-00-01-01&arch=x86_64&platform=efi&uuid=8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f60",
		"mac=52-54-00-00-09-09&arch=i386&platform=pcbios&uuid=",
		"mac=52:54:00:00:01:02",
		"mac=${mac}&arch=${buildarch}",
		"mac=52-54-00-00-01-01&arch=x86_64%0Aboot",
		"mac=52-54-00-00-01-01&uuid=8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f6%7D",
		"mac=52-54-00-00-01-01&mac=x",
		"%zz",
		"mac=525400000101;arch=arm64",
	} {
		f.Add(s)
	}
	hosts := fleet(defaultInstaller())
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		facts, err := ParseFacts(q)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error message spans lines: %q", err)
			}
			return
		}
		for _, discovery := range []bool{false, true} {
			d := Decide(facts, hosts, discovery)
			s, err := Render(testApp, facts, d)
			if err != nil {
				t.Fatalf("Render refused facts ParseFacts accepted (%+v): %v", facts, err)
			}
			body := strings.TrimPrefix(s, "#!ipxe\n")
			for _, m := range scriptMeta {
				if strings.Contains(body, m) {
					t.Fatalf("query %q put %q into the script:\n%s", raw, m, s)
				}
			}
			if err := checkScript(s); err != nil {
				t.Fatalf("query %q: %v", raw, err)
			}
		}
	})
}
