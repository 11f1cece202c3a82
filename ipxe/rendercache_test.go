package ipxe

import (
	"runtime"
	"strings"
	"testing"
)

func TestRenderCache(t *testing.T) {
	var c renderCache
	f := Facts{MAC: macKnown, Arch: "x86_64", Platform: "efi"}
	d := Decide(f, fleet(nil), false)
	if d.Outcome != OutcomeInstaller || d.Host == nil {
		t.Fatalf("fixture: outcome %s", d.Outcome)
	}
	d.Token = strings.Repeat("a1", 32)
	render := func(d Decision) string {
		t.Helper()
		got, err := c.render(testApp, f, d)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Render(testApp, f, d)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("cached script differs from Render's:\n%s\nwant:\n%s", got, want)
		}
		return got
	}
	first := render(d)
	if again := render(d); again != first || len(c.m) != 1 {
		t.Errorf("rendering the same twice: %d entries, want 1", len(c.m))
	}
	// Every argument is part of the key.
	other := d
	other.Token = strings.Repeat("b2", 32)
	if s := render(other); !strings.Contains(s, other.Token) {
		t.Errorf("another token: script without it:\n%s", s)
	}
	bios := f
	bios.Platform = "pcbios"
	if s, _ := c.render(testApp, bios, d); s == first {
		t.Error("another platform: the same script")
	}
	// A reloaded profile is another object, even with equal contents: a
	// renamed host gets its new name.
	h := *d.Host
	h.Hostname = "renamed-n01"
	renamed := d
	renamed.Host = &h
	if s := render(renamed); !strings.Contains(s, "renamed-n01") {
		t.Errorf("renamed host: script without its new name:\n%s", s)
	}
	if _, err := c.render(testApp, f, Decision{Outcome: "bogus"}); err == nil {
		t.Error("a refused render succeeded")
	}
	n := len(c.m)
	runtime.KeepAlive(d.Host)
	if n != 4 {
		t.Errorf("%d entries, want 4 (errors are not cached)", n)
	}
}
