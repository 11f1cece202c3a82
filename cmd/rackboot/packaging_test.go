package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// packagedConfig is the default configuration the Debian package installs
// as /etc/rackboot/rackboot.yaml.
var packagedConfig = filepath.Join("..", "..", "packaging", "rackboot.yaml")

// settingRE is a commented-out setting of packagedConfig: "# key: value".
var settingRE = regexp.MustCompile(`^# ([a-z0-9-]+):( |$)`)

// TestPackagedConfig keeps the package's default configuration in step
// with serveConfig: as shipped (every key commented out) it is a valid
// --config file that changes nothing; every key of serveConfig is in it,
// commented out, once; and with every setting uncommented it still parses
// to the defaults, so the values it shows are the real ones.
func TestPackagedConfig(t *testing.T) {
	b, err := os.ReadFile(packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("as shipped", func(t *testing.T) {
		got, err := parseServeConfig([]string{"--config", packagedConfig}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(defaultServeConfig(), got); diff != "" {
			t.Errorf("%s changes the defaults (-default +file):\n%s", packagedConfig, diff)
		}
	})

	seen := map[string]int{}
	var uncommented []string
	for _, line := range strings.Split(string(b), "\n") {
		if m := settingRE.FindStringSubmatch(line); m != nil {
			seen[m[1]]++
			line = strings.TrimPrefix(line, "# ")
		}
		uncommented = append(uncommented, line)
	}
	t.Run("every key", func(t *testing.T) {
		typ := reflect.TypeFor[serveConfig]()
		keys := map[string]bool{}
		for i := range typ.NumField() {
			key := typ.Field(i).Tag.Get("yaml")
			keys[key] = true
			if seen[key] != 1 {
				t.Errorf("key %s: %d commented-out settings \"# %s: ...\" in %s, want 1", key, seen[key], key, packagedConfig)
			}
		}
		for key := range seen {
			if !keys[key] {
				t.Errorf("%s sets %s, which is no key of serveConfig", packagedConfig, key)
			}
		}
	})
	t.Run("uncommented", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "rackboot.yaml")
		if err := os.WriteFile(f, []byte(strings.Join(uncommented, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := parseServeConfig([]string{"--config", f}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(defaultServeConfig(), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: the values shown are not the defaults (-default +shown):\n%s", packagedConfig, diff)
		}
	})
}
