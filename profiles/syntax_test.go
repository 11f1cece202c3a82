package profiles

import (
	"strings"
	"testing"
)

// TestSyntaxErrorLines: a YAML syntax error names the line of the problem,
// not the line where the yaml library's context began (one line early for
// a tab, the list's 0-based first line for a bad indentation, nothing at
// all on the first line).
func TestSyntaxErrorLines(t *testing.T) {
	// Six good lines, so that every error below is past the first.
	const pre = "versions:\n  - name: a\n    number: 1\nhosts:\n  - mac: 52:54:00:00:00:01\n    hostname: n1\n"
	for _, tc := range []struct {
		name, body, want string
	}{
		{"tab indentation", pre + "  - mac: 52:54:00:00:00:02\n\thostname: n2\n",
			"a.yaml:8: found a tab character that violates indentation"},
		{"tab before a top-level key", pre + "\tgroups: []\n",
			"a.yaml:7: found a tab character that violates indentation"},
		{"tab on the first line", "\tversions: []\n",
			"a.yaml:1: found character that cannot start any token"},
		{"unclosed double quote", pre + "  - mac: \"52:54:00:00:00:02\n    hostname: n2\n",
			"a.yaml:7: found unexpected end of stream"},
		{"unclosed single quote", pre + "  - mac: '52:54\n",
			"a.yaml:7: found unexpected end of stream"},
		{"indented too deep", pre + "  - mac: 52:54:00:00:00:02\n      hostname: n2\n",
			"a.yaml:8: mapping values are not allowed in this context"},
		{"indented too little", pre + "  - mac: 52:54:00:00:00:02\n    hostname: n2\n   labels: {}\n",
			"a.yaml:9: did not find expected '-' indicator"},
		{"list entry out of its list", pre + " - mac: 52:54:00:00:00:02\n",
			"a.yaml:7: did not find expected key"},
		{"list entry in a mapping", pre + "  - mac: 52:54:00:00:00:02\n    hostname: n2\n    - x\n",
			"a.yaml:9: did not find expected key"},
		{"text after a quote", pre + "  - mac: \"x\" y\n",
			"a.yaml:7: did not find expected key"},
		{"unclosed flow mapping", pre + "  - {mac: 52:54:00:00:00:02, hostname: n2\n  - mac: x\n",
			"a.yaml:7: did not find expected ',' or '}'"},
		{"unclosed flow list", pre + "  - mac: x\n    ssh_keys: [a, b\n    hostname: y\n",
			"a.yaml:8: did not find expected ',' or ']'"},
		{"colon in a plain value", pre + "  - mac: x\n    hostname: a: b\n",
			"a.yaml:8: mapping values are not allowed in this context"},
		{"colon on the first line", "a: b: c\n",
			"a.yaml:1: mapping values are not allowed in this context"},
		{"unknown anchor", pre + "  - mac: 52:54:00:00:00:02\n    hostname: *nope\n",
			"a.yaml:8: unknown anchor 'nope' referenced"},
		{"in a second document", pre + "---\nhosts:\n\t- x\n",
			"a.yaml:9: found character that cannot start any token"},
		{"no final line break", pre + "\tgroups: []",
			"a.yaml:7: found a tab character that violates indentation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErrors(t, map[string]string{"a.yaml": tc.body})
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("errors:\n%s\nwant\n%s\nin\n%s", strings.Join(got, "\n"), tc.want, tc.body)
			}
		})
	}
}

// TestSyntaxLineLong: the search for the line is O(log n) parses, and
// finds an error far from where the library's context began.
func TestSyntaxLineLong(t *testing.T) {
	var b strings.Builder
	b.WriteString("hosts:\n")
	for i := range 5000 {
		b.WriteString("  - mac: \"52:54:00:00:" + string("0123456789abcdef"[i>>4&15]) + string("0123456789abcdef"[i&15]) + "\"\n    hostname: h\n")
	}
	b.WriteString("   labels: {}\n") // line 10002
	got := loadErrors(t, map[string]string{"a.yaml": b.String()})
	if want := "a.yaml:10002: did not find expected '-' indicator"; len(got) != 1 || got[0] != want {
		t.Errorf("errors = %q, want %q", got, want)
	}
}
