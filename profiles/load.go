package profiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// isProfile reports whether a directory entry is a profiles file. Editors'
// swap and backup files (.fleet.yaml.swp, fleet.yaml~) are not.
func isProfile(name string) bool {
	ext := filepath.Ext(name)
	return (ext == ".yaml" || ext == ".yml") && !strings.HasPrefix(name, ".")
}

// digest is the hex SHA-256 of the files' names and contents.
func digest(srcs []source) string {
	sum := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(sum, "%s\x00%d\x00", s.name, len(s.data))
		sum.Write(s.data)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// source is one file's name and contents.
type source struct {
	name string
	data []byte
}

// load checks the files and builds the Set. The files are parsed and their
// values checked in parallel, one file per worker (a 100,000-host fleet in
// 100 files must load in well under 2 s); names, MACs and references across
// files are then linked in file order, so errors are deterministic.
func load(srcs []source) (*Set, error) {
	slices.SortFunc(srcs, func(a, b source) int { return strings.Compare(a.name, b.name) })
	parsed := make([]*parsedFile, len(srcs))
	if workers := min(runtime.GOMAXPROCS(0), len(srcs)); workers <= 1 {
		// One file (or one core): a worker would only add a goroutine
		// and its stack growth to every load.
		for i, s := range srcs {
			parsed[i] = parseFile(s.name, s.data)
		}
	} else {
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					parsed[i] = parseFile(srcs[i].name, srcs[i].data)
				}
			})
		}
		for i := range srcs {
			next <- i
		}
		close(next)
		wg.Wait()
	}

	l := newLinker()
	l.set.digest = digest(srcs)
	syntaxOK := true
	for _, pf := range parsed {
		l.set.files = append(l.set.files, pf.name)
		l.errs = append(l.errs, pf.errs...)
		syntaxOK = syntaxOK && !pf.broken
	}
	// A file that does not decode contributes nothing; linking the others
	// would only add errors about what that file defines.
	if syntaxOK {
		for _, pf := range parsed {
			l.add(pf)
		}
		l.link()
	}
	if len(l.errs) > 0 {
		slices.SortStableFunc(l.errs, func(a, b Error) int {
			if c := strings.Compare(a.File, b.File); c != 0 {
				return c
			}
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Column - b.Column
		})
		return nil, l.errs
	}
	return l.set, nil
}

// pos is a position in a file; the zero pos is unknown.
type pos struct{ line, col int }

func at(n *yaml.Node) pos {
	if n == nil {
		return pos{}
	}
	return pos{n.Line, n.Column}
}

// parsedFile is what one file contributes, checked value by value, with the
// positions that linking needs for its own messages.
type parsedFile struct {
	name     string
	errs     ErrorList
	broken   bool // did not decode
	defaults *level
	versions []versionAt
	layouts  []layoutAt
	groups   []*groupAt
	hosts    []*hostAt
}

type versionAt struct {
	v            *Version
	file         string
	name, number pos
	bad          bool
}

type layoutAt struct {
	l    *Layout
	name pos
	bad  bool
	file string
}

// level is one source of settings for a host: the defaults, a group, or
// the host itself.
type level struct {
	s      *settings
	file   string
	entry  pos
	ver    pos // of version: or channel:
	layout pos
	from   string // "defaults", "group NAME", "host"
}

type groupAt struct {
	g        *Group
	lv       level
	name     pos
	macs     [][6]byte
	macPos   []pos
	prefix   []byte
	hasMatch bool
}

type hostAt struct {
	doc      hostDoc
	mac      [6]byte
	hw       net.HardwareAddr
	lv       level
	macPos   pos
	hostname pos
	group    pos
}

// parseFile decodes one file strictly and checks every value in it.
func parseFile(name string, b []byte) *parsedFile {
	pf := &parsedFile{name: name}
	c := &checker{file: name}
	defer func() { pf.errs = c.errs }()

	// One parse into a node tree (positions for every message), strict
	// key checking by walking it, then a plain decode from the tree: see
	// unknownKeys for why not the library's KnownFields.
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		c.syntaxError(err, b)
		pf.broken = true
		return pf
	}
	// One document per file: a second one would be silently ignored.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		c.errorf(&extra, "a profiles file holds one YAML document; split it into files instead of using ---")
		pf.broken = true
		return pf
	} else if !errors.Is(err, io.EOF) {
		c.syntaxError(err, b)
		pf.broken = true
		return pf
	}
	var f file
	unknown := unknownKeys(&root, reflect.TypeOf(f))
	err := root.Decode(&f)
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		c.yamlError(err)
		pf.broken = true
		return pf
	}
	if len(unknown) > 0 || te != nil {
		msgs := unknown
		if te != nil {
			msgs = append(msgs, te.Errors...)
		}
		sortByLine(msgs)
		c.yamlError(&yaml.TypeError{Errors: msgs})
		pf.broken = true
		return pf
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}

	if f.Defaults != nil {
		n := child(doc, "defaults")
		lv := level{s: f.Defaults, file: name, entry: at(n), from: "defaults"}
		c.checkSettings(n, &lv)
		pf.defaults = &lv
	}
	seq := child(doc, "versions")
	for i := range f.Versions {
		v := &f.Versions[i]
		n := item(seq, i)
		bad := c.checkVersion(n, v)
		v.Source = fmt.Sprintf("%s:%d", name, line(n))
		pf.versions = append(pf.versions, versionAt{v: v, file: name, name: at(valueOr(n, "name")), number: at(valueOr(n, "number")), bad: bad})
	}
	seq = child(doc, "layouts")
	for i := range f.Layouts {
		ly := &f.Layouts[i]
		n := item(seq, i)
		bad := c.checkLayout(n, ly)
		ly.Source = fmt.Sprintf("%s:%d", name, line(n))
		pf.layouts = append(pf.layouts, layoutAt{l: ly, name: at(valueOr(n, "name")), bad: bad, file: name})
	}
	seq = child(doc, "groups")
	for i := range f.Groups {
		pf.groups = append(pf.groups, c.checkGroup(item(seq, i), &f.Groups[i]))
	}
	seq = child(doc, "hosts")
	pf.hosts = make([]*hostAt, 0, len(f.Hosts))
	for i := range f.Hosts {
		if h := c.checkHost(item(seq, i), &f.Hosts[i]); h != nil {
			pf.hosts = append(pf.hosts, h)
		}
	}
	return pf
}

// child returns the value node of key in mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// item returns element i of sequence n, or nil.
func item(n *yaml.Node, i int) *yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return nil
	}
	return n.Content[i]
}

// itemOr is element i of sequence n, or n itself when it has none.
func itemOr(n *yaml.Node, i int) *yaml.Node {
	if c := item(n, i); c != nil {
		return c
	}
	return n
}

// valueOr is the value node of key, or n itself when the key is absent.
func valueOr(n *yaml.Node, key string) *yaml.Node {
	if c := child(n, key); c != nil {
		return c
	}
	return n
}

// keyOr is the key node of key in mapping n, or n itself.
func keyOr(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i]
			}
		}
	}
	return n
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}
