package osimage

import (
	"regexp"
	"testing"
)

func TestNameUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	seen := map[string]string{}
	for _, v := range []string{"demo-1.0", "demo-1.1"} {
		for _, what := range []string{"disk", ESPPartition, RootPartition} {
			u := nameUUID(v, what)
			if !re.MatchString(u) {
				t.Errorf("nameUUID(%q, %q) = %q: not an upper-case version 5 UUID", v, what, u)
			}
			if again := nameUUID(v, what); again != u {
				t.Errorf("nameUUID(%q, %q) = %q, then %q", v, what, u, again)
			}
			if other, dup := seen[u]; dup {
				t.Errorf("nameUUID(%q, %q) = %q, the same as for %s", v, what, u, other)
			}
			seen[u] = v + "/" + what
		}
	}
	// The GUIDs are part of the image: a change here changes every
	// image's bytes and must be deliberate (bump revision).
	if got, want := nameUUID("demo-1.0", "disk"), "B065F451-C0B8-596C-B2FC-CD0CFC649A6E"; got != want {
		t.Errorf("nameUUID(demo-1.0, disk) = %s, want %s", got, want)
	}
}
