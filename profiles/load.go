package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// file is the YAML shape of one profiles file. Every key is optional; a
// fleet may be split over as many files as the admin likes.
type file struct {
	Defaults *struct {
		Installer *Installer `yaml:"installer"`
	} `yaml:"defaults"`
	Hosts []hostEntry `yaml:"hosts"`
}

type hostEntry struct {
	MAC       string     `yaml:"mac"`
	Hostname  string     `yaml:"hostname"`
	Installer *Installer `yaml:"installer"`
}

// Load reads every *.yaml and *.yml file of dir (not recursively) and returns
// the validated snapshot. On any problem it returns an ErrorList naming each
// problem's file and line, and no Set.
func Load(dir string) (*Set, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	var files []string
	for _, n := range names {
		if ext := filepath.Ext(n); ext == ".yaml" || ext == ".yml" {
			files = append(files, n)
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("profiles: %w", err)
		}
	}
	l := loader{set: &Set{hosts: map[string]*Host{}, files: files}, seen: map[string]string{}}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("profiles: %w", err)
		}
		l.parse(name, b)
	}
	l.finish()
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	return l.set, nil
}

type loader struct {
	set        *Set
	errs       ErrorList
	seen       map[string]string // MAC key → "file:line"
	defaultsAt string
	hosts      []*hostEntryAt
}

type hostEntryAt struct {
	hostEntry
	file string
	node *yaml.Node // the mapping node of the entry
}

var lineRe = regexp.MustCompile(`^line (\d+): (.*)$`)
var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (l *loader) errorf(file string, n *yaml.Node, format string, args ...any) {
	e := Error{File: file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *loader) parse(name string, b []byte) {
	// Strict decoding straight from the bytes: yaml.Node.Decode would drop
	// KnownFields (go-yaml #460), so the node tree is parsed separately and
	// only used for positions.
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		l.yamlError(name, err)
		return
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		l.yamlError(name, err)
		return
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if f.Defaults != nil && f.Defaults.Installer != nil {
		n := child(doc, "defaults")
		if l.defaultsAt != "" {
			l.errorf(name, n, "defaults already defined at %s", l.defaultsAt)
		} else {
			l.defaultsAt = fmt.Sprintf("%s:%d", name, line(n))
			l.checkInstaller(name, child(n, "installer"), f.Defaults.Installer)
			l.set.defaultInstaller = f.Defaults.Installer
		}
	}
	seq := child(doc, "hosts")
	for i, h := range f.Hosts {
		var n *yaml.Node
		if seq != nil && i < len(seq.Content) {
			n = seq.Content[i]
		}
		l.hosts = append(l.hosts, &hostEntryAt{hostEntry: h, file: name, node: n})
	}
}

// yamlError turns the library's messages ("yaml: line 3: …", or a TypeError
// with one "line N: …" per problem) into positioned errors.
func (l *loader) yamlError(name string, err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, msg := range te.Errors {
			l.errs = append(l.errs, lineError(name, lineRe, msg))
		}
		return
	}
	l.errs = append(l.errs, lineError(name, yamlLineRe, err.Error()))
}

func lineError(name string, re *regexp.Regexp, msg string) Error {
	if m := re.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Error{File: name, Line: n, Msg: m[2]}
	}
	return Error{File: name, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

func (l *loader) finish() {
	for _, h := range l.hosts {
		l.addHost(h)
	}
}

func (l *loader) addHost(e *hostEntryAt) {
	where := fmt.Sprintf("%s:%d", e.file, line(e.node))
	mac, err := ParseMAC(e.MAC)
	if err != nil {
		l.errorf(e.file, valueOr(e.node, "mac"), "%v", err)
		return
	}
	key := MACKey(mac)
	if prev, dup := l.seen[key]; dup {
		l.errorf(e.file, valueOr(e.node, "mac"), "host %s already defined at %s", key, prev)
		return
	}
	l.seen[key] = where
	if e.Hostname != "" && !validHostname(e.Hostname) {
		l.errorf(e.file, valueOr(e.node, "hostname"), "invalid hostname %q: want RFC 1123 labels (letters, digits, '-'), at most 253 characters", e.Hostname)
	}
	inst := l.set.defaultInstaller
	if e.Installer != nil {
		l.checkInstaller(e.file, child(e.node, "installer"), e.Installer)
		inst = e.Installer
	}
	l.set.hosts[key] = &Host{MAC: mac, Hostname: e.Hostname, Installer: inst, Source: where}
}

func (l *loader) checkInstaller(name string, n *yaml.Node, in *Installer) {
	if in.Kernel == "" {
		l.errorf(name, n, "installer: kernel is required")
	} else if err := checkLocation(in.Kernel); err != nil {
		l.errorf(name, valueOr(n, "kernel"), "installer kernel: %v", err)
	}
	if in.Initrd != "" {
		if err := checkLocation(in.Initrd); err != nil {
			l.errorf(name, valueOr(n, "initrd"), "installer initrd: %v", err)
		}
	}
	if err := checkCmdline(in.Cmdline); err != nil {
		l.errorf(name, valueOr(n, "cmdline"), "installer cmdline: %v", err)
	}
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

// valueOr is the value node of key, or n itself when the key is absent.
func valueOr(n *yaml.Node, key string) *yaml.Node {
	if c := child(n, key); c != nil {
		return c
	}
	return n
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}
