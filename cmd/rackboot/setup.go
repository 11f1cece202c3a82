package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/initrd"
	"github.com/rackboot/rackboot/profiles"
)

// What `rackboot setup` writes in the artifacts directory: the names the
// version files it writes (and examples/catalog.yaml) boot.
const (
	setupKernel = "vmlinuz"
	setupInitrd = "initrd.img"
)

// setupCmdline is the installer's default kernel command line. The last
// console= is /dev/console, where the agent's log goes: the serial port,
// which a rack's console server or IPMI serial-over-LAN records; the
// kernel's messages reach the screen too.
const setupCmdline = "console=tty0 console=ttyS0,115200 quiet loglevel=3 panic=-1"

// runSetup implements `rackboot setup`: the first-run preparation of an
// appliance. It copies a distribution kernel of this host to
// ARTIFACTS/vmlinuz, builds ARTIFACTS/initrd.img from the agent and that
// kernel's modules (as `rackboot initrd` does), and with --image imports
// an image (as `rackboot image add` does) and writes its catalog entry as
// a profiles file of its own, PROFILES/version-NAME.yaml, written only
// once the profiles directory loads with it. What is already current is left as it
// is, so running it again rewrites nothing.
func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCLI(stdout, stderr)
	const usage = "rackboot setup [--artifacts DIR] [--profiles DIR] [--root DIR] [--kernel VERSION] [--agent BIN] [--tools p1,p2] [--cmdline ARGS] [--image FILE --name NAME [--number N] [--channel C] [--kind whole-disk|partitions] [--format auto|raw|gzip|zstd|xz]] [--force]"
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nPrepares the installer (ARTIFACTS/%s, ARTIFACTS/%s) from a kernel of ROOT/boot and ROOT/lib/modules;\nwith --image, imports the image and writes its catalog entry PROFILES/version-NAME.yaml.\n\nflags:\n",
			usage, setupKernel, setupInitrd)
		fs.PrintDefaults()
	}
	s := setup{stdout: stdout}
	fs.StringVar(&s.artifacts, "artifacts", defaultServeConfig().Artifacts, "the artifacts `dir`ectory, as rackboot serve's")
	fs.StringVar(&s.profiles, "profiles", defaultServeConfig().Profiles, "the profiles `dir`ectory, as rackboot serve's (with --image)")
	fs.StringVar(&s.root, "root", "/", "where the kernel package is: `dir`/boot/vmlinuz-VERSION and DIR/lib/modules/VERSION (an unpacked linux-image package in a container)")
	fs.StringVar(&s.kernel, "kernel", "", "the kernel `version` (default: the newest with both a vmlinuz and a modules directory)")
	fs.StringVar(&s.agent, "agent", "", "the static rackboot-agent `binary` (default: beside this program, else "+packagedAgent+")")
	tools := fs.String("tools", "", "comma-separated `programs` the installer carries, as rackboot initrd --tools (default: mkfs.xfs if this host has it)")
	fs.StringVar(&s.cmdline, "cmdline", setupCmdline, "the installer's kernel `arguments` in the version's catalog entry")
	fs.StringVar(&s.image, "image", "", "an image `file` to import (a chunked image, as rackboot image add)")
	fs.StringVar(&s.version.Name, "name", "", "the version's `name` (with --image): images/NAME.rbidx, PROFILES/version-NAME.yaml")
	fs.IntVar(&s.version.Number, "number", 0, "the version's `number` (orders its channel)")
	fs.StringVar(&s.version.Channel, "channel", "", "the version's `channel`")
	fs.StringVar(&s.version.Image.Kind, "kind", profiles.KindWholeDisk, "what the image holds: whole-disk or partitions")
	fs.StringVar(&s.format, "format", agentapi.FormatAuto, "the image file's compression: auto (detected), raw, gzip, zstd or xz")
	fs.BoolVar(&s.force, "force", false, "replace a version file, or an index of that name, that describes another image")
	asJSON := fs.Bool("json", false, "print what was done as one JSON object (setupReport) instead of text")
	pos, exit, ok := parseArgs(ctx, fs, args, stdout)
	if !ok {
		return exit
	}
	if len(pos) != 0 || (s.image == "") != (s.version.Name == "") {
		fs.Usage()
		return 2
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "tools" {
			s.tools = []string{} // given, even empty: exactly these
			if *tools != "" {
				s.tools = strings.Split(*tools, ",")
			}
		}
	})
	if s.image != "" {
		if err := s.checkVersionFlags(); err != nil {
			fmt.Fprintf(stderr, "rackboot setup: %v\n", err)
			return 2
		}
	}
	if *asJSON {
		s.stdout = io.Discard
	}
	if err := s.run(ctx); err != nil {
		return c.fail("setup", err)
	}
	if *asJSON {
		b, err := json.Marshal(s.report)
		if err == nil {
			err = writeJSON(stdout, b)
		}
		if err != nil {
			return c.fail("setup", err)
		}
	}
	return 0
}

// setupReport is what `rackboot setup --json` prints: the facts of its
// text, written as they happen.
type setupReport struct {
	Kernel struct {
		Path    string `json:"path"`
		Version string `json:"version"`
		Source  string `json:"source"`
		Changed bool   `json:"changed"`
	} `json:"kernel"`
	Initrd struct {
		Path    string   `json:"path"`
		Agent   string   `json:"agent"`
		Modules int      `json:"modules"`
		Skipped []string `json:"skipped_modules,omitempty"` // not in this kernel
		Tools   []string `json:"tools"`
		Changed bool     `json:"changed"`
	} `json:"initrd"`
	// Image is the import, with --image.
	Image *imageReport `json:"image,omitempty"`
	// Version is the catalog entry's file, with --image.
	Version *setupVersion `json:"version,omitempty"`
	// Check is the catalog check serve makes, with --image.
	Check *setupCheck `json:"check,omitempty"`
}

// setupVersion is the version file setup wrote (or found current).
type setupVersion struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Changed bool   `json:"changed"`
}

// setupCheck is the outcome of the catalog check after setup.
type setupCheck struct {
	OK       int                 `json:"ok"`
	Failed   int                 `json:"failed"`
	Problems []validateJSONError `json:"problems"` // as validate --json has them
}

// setup is one `rackboot setup`.
type setup struct {
	artifacts, profiles string
	root, kernel        string
	agent               string
	tools               []string // nil: initrd.DefaultTools
	cmdline             string
	image, format       string
	version             profiles.Version // Name, Number, Channel, Image.Kind
	force               bool

	stdout io.Writer
	report setupReport
	// candidates lists where the agent is looked for without --agent;
	// nil: agentCandidates().
	candidates []string
}

func (s *setup) checkVersionFlags() error {
	v := s.version
	if err := profiles.CheckName(v.Name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	if v.Channel != "" {
		if err := profiles.CheckName(v.Channel); err != nil {
			return fmt.Errorf("--channel: %w", err)
		}
	}
	if v.Number < 0 {
		return errors.New("--number: must not be negative")
	}
	if v.Image.Kind != profiles.KindWholeDisk && v.Image.Kind != profiles.KindPartitions {
		return fmt.Errorf("--kind: %q: want whole-disk or partitions", v.Image.Kind)
	}
	switch s.format {
	case agentapi.FormatAuto, agentapi.FormatRaw, agentapi.FormatGzip, agentapi.FormatZstd, agentapi.FormatXz:
	default:
		return fmt.Errorf("--format: %q: want auto, raw, gzip, zstd or xz", s.format)
	}
	return nil
}

func (s *setup) run(ctx context.Context) error {
	k, err := findKernel(s.root, s.kernel)
	if err != nil {
		return err
	}
	agent := s.agent
	if agent == "" {
		cands := s.candidates
		if cands == nil {
			cands = agentCandidates()
		}
		if agent, err = findAgent(cands); err != nil {
			return err
		}
	}
	if err := initrd.CheckStatic(agent); err != nil {
		return err
	}
	// The catalog is checked before anything is written: a version name
	// taken elsewhere is refused before a long import.
	var versionFile string
	if s.image != "" {
		if versionFile, err = s.checkCatalog(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(s.artifacts, 0o755); err != nil {
		return fmt.Errorf("artifacts directory: %w", err)
	}

	kernelOut := filepath.Join(s.artifacts, setupKernel)
	_, changed, err := writeIfChanged(kernelOut, func(w io.Writer) (struct{}, error) {
		f, err := os.Open(k.vmlinuz)
		if err != nil {
			return struct{}{}, err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return struct{}{}, err
	})
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	fmt.Fprintf(s.stdout, "kernel:  %s, kernel %s (%s): %s\n", kernelOut, k.version, k.vmlinuz, state(changed))
	r := &s.report
	r.Kernel.Path, r.Kernel.Version, r.Kernel.Source, r.Kernel.Changed = kernelOut, k.version, k.vmlinuz, changed

	cfg := initrd.Config{Agent: agent, ModulesDir: k.modules, Tools: s.tools}
	initrdOut := filepath.Join(s.artifacts, setupInitrd)
	rep, changed, err := writeIfChanged(initrdOut, func(w io.Writer) (initrd.Report, error) { return initrd.Build(w, cfg) })
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	fmt.Fprintf(s.stdout, "initrd:  %s, agent %s, %d modules of kernel %s, tools: %s: %s\n",
		initrdOut, agent, len(rep.Modules), k.version, listOrNone(rep.Tools), state(changed))
	r.Initrd.Path, r.Initrd.Agent, r.Initrd.Modules, r.Initrd.Skipped, r.Initrd.Tools, r.Initrd.Changed =
		initrdOut, agent, len(rep.Modules), rep.Missing, append([]string{}, rep.Tools...), changed
	if len(rep.Missing) > 0 {
		fmt.Fprintf(s.stdout, "         not in this kernel (skipped): %s\n", strings.Join(rep.Missing, ", "))
	}
	if slices.Contains(rep.MissingTools, "mkfs.xfs") {
		fmt.Fprintln(s.stdout, "         no mkfs.xfs on this host: this installer refuses layouts with filesystem xfs (install xfsprogs and run setup again)")
	}

	if s.image == "" {
		fmt.Fprintf(s.stdout, "next:    import an image: rackboot setup --image FILE --name NAME --number N (or rackboot image add), then point hosts at its version\n")
		return nil
	}
	in := imageInput{file: s.image, dir: s.artifacts, name: s.version.Name, format: s.format, force: s.force}
	res, err := in.add(ctx)
	if err != nil {
		return err
	}
	fmt.Fprint(s.stdout, importSummary(in, res))
	v := s.version
	v.Image.URL = imageDir + "/" + v.Name + ".rbidx"
	v.Image.SHA256 = res.Index.Digest()
	v.Image.Format = agentapi.FormatChunked
	v.Installer = &profiles.Installer{Kernel: setupKernel, Initrd: setupInitrd, Cmdline: s.cmdline}
	changed, err = s.writeVersion(versionFile, v)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "version: %s in %s: %s\n", v.Name, versionFile, state(changed))
	ir := newImageReport(in, res, catalogEntry{Name: v.Name, Number: v.Number, Channel: v.Channel, URL: v.Image.URL, SHA256: v.Image.SHA256, Kind: v.Image.Kind})
	r.Image = &ir
	r.Version = &setupVersion{Name: v.Name, File: versionFile, Changed: changed}
	// The check serve will make (validate --artifacts): the new version
	// passes it, but the catalog's other versions are shown too.
	if set, err := profiles.Load(s.profiles); err == nil {
		st := newCatalogCheck(s.artifacts, nil).Check(ctx, set)
		fmt.Fprintf(s.stdout, "check:   %d of %d versions of %s can be installed from %s\n", st.OK, st.OK+st.Failed+st.Pending, s.profiles, s.artifacts)
		for _, p := range st.Problems {
			fmt.Fprintf(s.stdout, "         held by serve until fixed: %s\n", p)
		}
		r.Check = &setupCheck{OK: st.OK, Failed: st.Failed, Problems: problemsJSON(st.Problems)}
	}
	fmt.Fprintf(s.stdout, "next:    rackboot serve reloads %s by itself (or: systemctl reload rackboot); give hosts version: %s in their profiles, then rackboot reinstall\n",
		s.profiles, v.Name)
	return nil
}

func state(changed bool) string {
	if changed {
		return "written"
	}
	return "unchanged (already current)"
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// checkCatalog loads the profiles directory (creating it if missing) and
// refuses a version name some other file already defines; it returns the
// version file to write.
func (s *setup) checkCatalog() (string, error) {
	if err := os.MkdirAll(s.profiles, 0o755); err != nil {
		return "", fmt.Errorf("profiles directory: %w", err)
	}
	file := filepath.Join(s.profiles, "version-"+s.version.Name+".yaml")
	set, err := profiles.Load(s.profiles)
	if err != nil {
		return "", fmt.Errorf("the profiles directory %s does not load; fix it first:\n%w", s.profiles, err)
	}
	for _, v := range set.Versions() {
		if v.Name != s.version.Name {
			continue
		}
		src, _, _ := strings.Cut(v.Source, ":")
		if filepath.Base(src) != filepath.Base(file) {
			return "", fmt.Errorf("version %s is already in the catalog (%s): remove it there, or choose another --name", v.Name, v.Source)
		}
	}
	return file, nil
}

// writeVersion writes the version's file, unless it already holds this
// entry; it refuses to replace another entry without --force. The
// profiles directory is loaded with the new file first, in a copy: a
// daemon watching the directory never sees a file that would not load,
// and one that would is not written, its errors returned as file:line of
// the real directory.
func (s *setup) writeVersion(file string, v profiles.Version) (changed bool, err error) {
	text, err := versionYAML(v)
	if err != nil {
		return false, err
	}
	old, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, err
	case bytes.Equal(old, text):
		return false, nil
	case !s.force:
		return false, fmt.Errorf("%s exists and holds another entry (--force replaces it, or choose another --name)", file)
	}
	if err := loadWith(s.profiles, filepath.Base(file), text, v.Name); err != nil {
		return false, fmt.Errorf("the profiles would not load with %s, so it was not written:\n%w", file, err)
	}
	if _, err := writeAtomic(file, func(w io.Writer) (int, error) { return w.Write(text) }); err != nil {
		return false, err
	}
	return true, nil
}

// loadWith loads a copy of the profiles directory dir in which the file
// name holds text, and checks that it has the version. Errors name the
// files of dir.
func loadWith(dir, name string, text []byte, version string) error {
	tmp, err := os.MkdirTemp("", "rackboot-setup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.Name() == name || strings.HasPrefix(e.Name(), ".") || ext != ".yaml" && ext != ".yml" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, name), text, 0o644); err != nil {
		return err
	}
	set, err := profiles.Load(tmp)
	var list profiles.ErrorList
	if errors.As(err, &list) {
		for i := range list {
			if rel, rerr := filepath.Rel(tmp, list[i].File); rerr == nil && !strings.HasPrefix(rel, "..") {
				list[i].File = filepath.Join(dir, rel)
			}
		}
		return list
	}
	if err != nil {
		return err
	}
	if _, ok := set.Version(version); !ok {
		return fmt.Errorf("version %s is not in the loaded catalog", version)
	}
	return nil
}

// versionYAML is a version file: one catalog entry, as a profiles file
// of its own.
func versionYAML(v profiles.Version) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by rackboot setup: the image %s was imported with its digest, the\n", v.Image.URL)
	fmt.Fprintf(&b, "# installer is this appliance's kernel and initramfs. rackboot setup --force\n")
	fmt.Fprintf(&b, "# replaces this file; edit it by hand as any other profiles file.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	doc := struct {
		Versions []profiles.Version `yaml:"versions"`
	}{[]profiles.Version{v}}
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// packagedAgent is where the Debian package installs the static agent.
const packagedAgent = "/usr/lib/rackboot/rackboot-agent"

// agentCandidates lists where the agent is looked for when not given:
// beside this program (a build tree), then where the package puts it.
func agentCandidates() []string {
	var c []string
	if self, err := os.Executable(); err == nil {
		c = append(c, filepath.Join(filepath.Dir(self), "rackboot-agent"))
	}
	return append(c, packagedAgent)
}

// findAgent returns the first candidate that is a regular file, or an
// error naming every place looked at.
func findAgent(candidates []string) (string, error) {
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no rackboot-agent at %s (build it with CGO_ENABLED=0 go build ./cmd/rackboot-agent, or give --agent)",
		strings.Join(candidates, " nor "))
}

// kernel is a kernel package's files on this host.
type kernel struct {
	version, vmlinuz, modules string
}

// findKernel finds the kernel of version want, or without one the newest
// that has both ROOT/boot/vmlinuz-V and a modules directory
// ROOT/lib/modules/V (or ROOT/usr/lib/modules/V: merged /usr) with its
// modules.dep.
func findKernel(root, want string) (kernel, error) {
	boot := filepath.Join(root, "boot")
	dirs := []string{filepath.Join(root, "lib/modules"), filepath.Join(root, "usr/lib/modules")}
	complete := func(v string) (kernel, bool) {
		k := kernel{version: v, vmlinuz: filepath.Join(boot, "vmlinuz-"+v)}
		if fi, err := os.Stat(k.vmlinuz); err != nil || !fi.Mode().IsRegular() {
			return k, false
		}
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, v, "modules.dep")); err == nil {
				k.modules = filepath.Join(d, v)
				return k, true
			}
		}
		return k, false
	}
	if want != "" {
		if k, ok := complete(want); ok {
			return k, nil
		}
		return kernel{}, fmt.Errorf("kernel %s: want %s and %s/%s/modules.dep (a linux-image package, and depmod)",
			want, filepath.Join(boot, "vmlinuz-"+want), dirs[0], want)
	}
	ents, err := os.ReadDir(boot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return kernel{}, err
	}
	var found []kernel
	for _, e := range ents {
		v, ok := strings.CutPrefix(e.Name(), "vmlinuz-")
		if !ok {
			continue
		}
		if k, ok := complete(v); ok {
			found = append(found, k)
		}
	}
	if len(found) == 0 {
		return kernel{}, fmt.Errorf("no kernel with both %s/vmlinuz-VERSION and %s/VERSION/modules.dep (install a linux-image package, or give --root an unpacked one)",
			boot, dirs[0])
	}
	return slices.MaxFunc(found, func(a, b kernel) int { return compareVersions(a.version, b.version) }), nil
}

// compareVersions orders kernel versions such as 6.1.0-9-amd64 and
// 6.1.0-28-amd64: runs of digits compare as numbers, the rest as text.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		ra, restA := versionRun(a)
		rb, restB := versionRun(b)
		na, errA := strconv.ParseUint(ra, 10, 64)
		nb, errB := strconv.ParseUint(rb, 10, 64)
		var c int
		if errA == nil && errB == nil {
			c = cmpUint(na, nb)
		} else {
			c = strings.Compare(ra, rb)
		}
		if c != 0 {
			return c
		}
		a, b = restA, restB
	}
	return strings.Compare(a, b)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// versionRun splits s after its leading run of digits, or of non-digits.
func versionRun(s string) (run, rest string) {
	digit := unicode.IsDigit(rune(s[0]))
	i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsDigit(r) != digit })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// writeIfChanged writes name as writeAtomic does, unless it already holds
// exactly what write produces: then the file is left as it is (its
// times too) and changed is false.
func writeIfChanged[T any](name string, write func(io.Writer) (T, error)) (v T, changed bool, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return v, false, err
	}
	defer os.Remove(tmp.Name())
	v, err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return v, false, err
	}
	same, err := sameFiles(tmp.Name(), name)
	if err != nil || same {
		return v, false, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return v, false, err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return v, false, err
	}
	return v, true, nil
}

// sameFiles reports whether two files hold the same bytes; a missing b is
// not the same.
func sameFiles(a, b string) (bool, error) {
	fb, err := os.Open(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer fb.Close()
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	sa, err := fa.Stat()
	if err != nil {
		return false, err
	}
	sb, err := fb.Stat()
	if err != nil {
		return false, err
	}
	if sa.Size() != sb.Size() {
		return false, nil
	}
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, errA := io.ReadFull(fa, bufA)
		nb, errB := io.ReadFull(fb, bufB)
		if !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		eofA := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		eofB := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		switch {
		case errA != nil && !eofA:
			return false, errA
		case errB != nil && !eofB:
			return false, errB
		case eofA || eofB:
			return eofA && eofB, nil
		}
	}
}
