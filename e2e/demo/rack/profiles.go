package rack

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/examples"
	"github.com/rackboot/rackboot/profiles"
)

// WriteProfiles writes the example fleet (examples.FS) into dir as
// rackboot's --profiles directory, with the sha256 of the images built
// put in the catalog: the committed catalog cannot carry them, since the
// images follow the Debian packages they are made of. The files are
// otherwise byte for byte the examples. extra adds files by name (a test's
// own hosts and versions). It returns the fleet as rackboot will load it.
func WriteProfiles(dir string, images map[string]*osimage.Image, extra map[string]string) (*profiles.Set, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rack: profiles: %w", err)
	}
	names, err := fs.Glob(examples.FS, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("rack: profiles: %w", err)
	}
	digests := map[string]string{}
	for v, im := range images {
		digests[v] = im.SHA256
	}
	patched := map[string]bool{}
	for _, name := range names {
		b, err := examples.FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("rack: profiles: %w", err)
		}
		if b, err = setDigests(b, digests, patched); err != nil {
			return nil, fmt.Errorf("rack: profiles: examples/%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, fmt.Errorf("rack: profiles: %w", err)
		}
	}
	for v := range digests {
		if !patched[v] {
			return nil, fmt.Errorf("rack: profiles: the example catalog has no version %s", v)
		}
	}
	extraNames := make([]string, 0, len(extra))
	for name := range extra {
		extraNames = append(extraNames, name)
	}
	sort.Strings(extraNames)
	for _, name := range extraNames {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(extra[name]), 0o644); err != nil {
			return nil, fmt.Errorf("rack: profiles: %w", err)
		}
	}
	set, err := profiles.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("rack: the fleet does not load: %w", err)
	}
	return set, nil
}

// setDigests replaces the image sha256 of the versions named in digests
// in a profiles file, in place: only the digest's characters change, so
// every comment and line stays where it was. patched records the versions
// it found.
func setDigests(file []byte, digests map[string]string, patched map[string]bool) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(file, &doc); err != nil {
		return nil, err
	}
	lines := bytes.SplitAfter(file, []byte("\n"))
	for _, v := range mapping(root(&doc), "versions").seq() {
		name := mapping(v, "name").scalar()
		sum := mapping(mapping(v, "image"), "sha256").y
		want, ok := digests[name]
		if !ok || sum == nil {
			continue
		}
		if sum.Kind != yaml.ScalarNode || sum.Line < 1 || sum.Line > len(lines) {
			return nil, fmt.Errorf("version %s: image sha256 is not a plain value", name)
		}
		line := lines[sum.Line-1]
		i := bytes.Index(line, []byte(sum.Value))
		if i < 0 || sum.Value == "" {
			return nil, fmt.Errorf("line %d: version %s: cannot find its sha256 to replace", sum.Line, name)
		}
		lines[sum.Line-1] = append(append(append([]byte(nil), line[:i]...), want...), line[i+len(sum.Value):]...)
		patched[name] = true
	}
	return bytes.Join(lines, nil), nil
}

// node is a YAML node, or none, for lookups that may find nothing.
type node struct{ y *yaml.Node }

func root(doc *yaml.Node) node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return node{doc.Content[0]}
	}
	return node{}
}

// mapping returns the value of key in a mapping node.
func mapping(n node, key string) node {
	if n.y == nil || n.y.Kind != yaml.MappingNode {
		return node{}
	}
	for i := 0; i+1 < len(n.y.Content); i += 2 {
		if n.y.Content[i].Value == key {
			return node{n.y.Content[i+1]}
		}
	}
	return node{}
}

func (n node) seq() []node {
	if n.y == nil || n.y.Kind != yaml.SequenceNode {
		return nil
	}
	out := make([]node, len(n.y.Content))
	for i, c := range n.y.Content {
		out[i] = node{c}
	}
	return out
}

func (n node) scalar() string {
	if n.y == nil || n.y.Kind != yaml.ScalarNode {
		return ""
	}
	return n.y.Value
}
