package artifacts

import (
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzName holds the URL-path-to-file-name mapping to its contract: an
// accepted name is a clean, local, relative path under the root (no "..",
// not absolute, no NUL or backslash escape the checks miss), within the
// length limits, and exactly what followed the prefix.
func FuzzName(f *testing.F) {
	for _, s := range []string{
		"/artifacts/vmlinuz", "/artifacts/images/demo-1.0.img.zst", "/artifacts/../etc/passwd",
		"/artifacts/a/../../b", "/artifacts//etc", "/artifacts/./x", "/artifacts/a\x00b",
		"/artifacts/", "/nbp/undionly.kpxe", "/artifacts/..", "/artifacts/a/..", "/artifacts/%2e%2e/x",
	} {
		f.Add(s)
	}
	h := &Handler{Prefix: "/artifacts"}
	f.Fuzz(func(t *testing.T, urlPath string) {
		name, ok := h.name(urlPath)
		if !ok {
			return
		}
		if !filepath.IsLocal(name) || path.IsAbs(name) || path.Clean(name) != name {
			t.Fatalf("%q accepted as %q: not a clean local name", urlPath, name)
		}
		for elem := range strings.SplitSeq(name, "/") {
			if elem == ".." || elem == "." || elem == "" || len(elem) > maxNameElement {
				t.Fatalf("%q accepted as %q: element %q", urlPath, name, elem)
			}
		}
		if strings.ContainsRune(name, 0) || len(name) > maxName {
			t.Fatalf("%q accepted as %q", urlPath, name)
		}
		if "/artifacts/"+name != urlPath {
			t.Fatalf("%q accepted as %q: not the rest after the prefix", urlPath, name)
		}
	})
}

// FuzzRanges: rangesAcceptable never panics, and a header it accepts
// names at most maxRanges ranges.
func FuzzRanges(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=0-0,1-1,2-2", "bytes=-5", "bytes=10-", "bytes=5-1", "bytes=0-9,5-14", "items=1-2", "bytes= 1 - 2 ,", "bytes=9223372036854775807-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if rangesAcceptable(header, size) {
			if spec, ok := strings.CutPrefix(header, "bytes="); ok && strings.Count(spec, ",") >= maxRanges {
				t.Fatalf("%q accepted with more than %d ranges", header, maxRanges)
			}
		}
	})
}
