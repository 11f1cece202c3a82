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
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/profiles"
)

// runImage implements `rackboot image`: for now one sub-command, add.
func runImage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCLI(stdout, stderr)
	const usage = "usage: rackboot image add FILE --name NAME [flags] (rackboot image add -h: the flags)"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	return c.imageAdd(ctx, args[1:])
}

// imageDir is where `rackboot image add` writes the indexes, under the
// artifacts directory.
const imageDir = profiles.IndexDir

// imageAdd imports an image file into the artifacts directory's chunk
// store and writes its index (docs/DESIGN.md, "Chunked images").
func (c *cli) imageAdd(ctx context.Context, args []string) int {
	const usage = "rackboot image add FILE --name NAME [--number N] [--channel C] [--kind whole-disk|partitions] [--format auto|raw|gzip|zstd|xz] [--artifacts DIR | --config FILE] [--force] [--json]"
	fs := flag.NewFlagSet("image add", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nImports FILE into DIR/%s and writes its index DIR/%s/NAME.rbidx; prints the catalog entry.\n\nflags:\n",
			usage, profiles.ChunkDir, imageDir)
		fs.PrintDefaults()
	}
	dir := fs.String("artifacts", "", "the artifacts `dir`ectory (default: the --config file's artifacts, else "+defaultServeConfig().Artifacts+")")
	config := fs.String("config", "", "the daemon's YAML config `file`, for its artifacts directory")
	name := fs.String("name", "", "the version's `name` (required): the index is images/NAME.rbidx")
	number := fs.Int("number", 0, "the version's `number` in the catalog entry (orders its channel)")
	channel := fs.String("channel", "", "the version's `channel` in the catalog entry")
	kind := fs.String("kind", profiles.KindWholeDisk, "what the image holds: whole-disk or partitions")
	format := fs.String("format", agentapi.FormatAuto, "FILE's compression: auto (detected), raw, gzip, zstd or xz")
	force := fs.Bool("force", false, "replace an index of that name that describes another image")
	asJSON := fs.Bool("json", false, "print what was imported and the catalog entry as JSON (imageReport)")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) != 1 || *name == "" {
		fs.Usage()
		return 2
	}
	if err := profiles.CheckName(*name); err != nil {
		return c.usageError("--name", err)
	}
	if *channel != "" {
		if err := profiles.CheckName(*channel); err != nil {
			return c.usageError("--channel", err)
		}
	}
	if *number < 0 {
		return c.usageError("--number", errors.New("must not be negative"))
	}
	if *kind != profiles.KindWholeDisk && *kind != profiles.KindPartitions {
		return c.usageError("--kind", fmt.Errorf("%q: want whole-disk or partitions", *kind))
	}
	switch *format {
	case agentapi.FormatAuto, agentapi.FormatRaw, agentapi.FormatGzip, agentapi.FormatZstd, agentapi.FormatXz:
	default:
		return c.usageError("--format", fmt.Errorf("%q: want auto, raw, gzip, zstd or xz", *format))
	}
	if *dir == "" {
		d, err := configArtifacts(*config)
		if err != nil {
			return c.fail("image add", err)
		}
		*dir = d
	}
	in := imageInput{file: pos[0], dir: *dir, name: *name, format: *format, force: *force}
	res, err := in.add(ctx)
	if err != nil {
		return c.fail("image add", err)
	}
	entry := catalogEntry{Name: *name, Number: *number, Channel: *channel,
		URL: imageDir + "/" + *name + ".rbidx", SHA256: res.Index.Digest(), Kind: *kind}
	if *asJSON {
		b, err := json.Marshal(newImageReport(in, res, entry))
		if err == nil {
			err = writeJSON(c.stdout, b)
		}
		if err != nil {
			return c.fail("image add", err)
		}
		return 0
	}
	fmt.Fprint(c.stdout, importSummary(in, res), "\n", entry.yaml())
	return 0
}

// imageReport is what `rackboot image add --json` prints: the facts of
// the summary, and the catalog entry as a profiles file spells it.
type imageReport struct {
	File       string `json:"file"`
	Size       int64  `json:"size"`
	Digest     string `json:"digest"`
	Chunks     int    `json:"chunks"`
	NewChunks  int    `json:"new_chunks"`
	NewStored  int64  `json:"new_stored"`
	NewRaw     int64  `json:"new_raw"`
	ZeroChunks int    `json:"zero_chunks"`
	ZeroBytes  int64  `json:"zero_bytes"`
	Stored     int64  `json:"stored"` // what a machine with nothing of it fetches
	Index      string `json:"index"`
	Unchanged  bool   `json:"unchanged"` // the index already described this image
	Entry      struct {
		Name    string `json:"name"`
		Number  int    `json:"number"`
		Channel string `json:"channel,omitempty"`
		Image   struct {
			URL    string `json:"url"`
			SHA256 string `json:"sha256"`
			Format string `json:"format"`
			Kind   string `json:"kind"`
		} `json:"image"`
	} `json:"catalog_entry"`
}

func newImageReport(in imageInput, a *added, e catalogEntry) imageReport {
	ix := a.Index
	r := imageReport{File: in.file, Size: ix.Size, Digest: ix.Digest(), Chunks: a.Chunks, NewChunks: a.NewChunks,
		NewStored: a.NewStored, NewRaw: a.NewRaw, ZeroChunks: a.ZeroChunks, ZeroBytes: a.ZeroBytes,
		Stored: ix.StoredSize(), Index: a.index, Unchanged: a.unchanged}
	r.Entry.Name, r.Entry.Number, r.Entry.Channel = e.Name, e.Number, e.Channel
	r.Entry.Image.URL, r.Entry.Image.SHA256, r.Entry.Image.Format, r.Entry.Image.Kind = e.URL, e.SHA256, agentapi.FormatChunked, e.Kind
	return r
}

// usageError reports a bad flag value, exit code 2.
func (c *cli) usageError(flag string, err error) int {
	fmt.Fprintf(c.stderr, "rackboot image add: %s: %v\n", flag, err)
	return 2
}

// configArtifacts is the artifacts directory of the daemon's config file,
// or the default without one.
func configArtifacts(file string) (string, error) {
	cfg := defaultServeConfig()
	if file == "" {
		return cfg.Artifacts, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return cfg.Artifacts, nil
}

// imageInput is one `rackboot image add`.
type imageInput struct {
	file, dir, name, format string
	force                   bool
}

// added is what an import did.
type added struct {
	*chunkstore.ImportResult
	// index is the index file; unchanged when it already held this
	// image's index.
	index     string
	unchanged bool
}

// add imports the image into the store and writes its index, unless an
// index of another image has the name and force is off. The chunks are
// stored first, in any case: they are named by their contents, and the
// store only grows.
func (in imageInput) add(ctx context.Context) (*added, error) {
	if fi, err := os.Stat(in.dir); err != nil {
		return nil, fmt.Errorf("artifacts directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("artifacts directory %s: not a directory", in.dir)
	}
	f, err := os.Open(in.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := chunkstore.Import(ctx, f, filepath.Join(in.dir, profiles.ChunkDir),
		chunkstore.ImportOptions{Format: in.format, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", in.file, err)
	}
	a := &added{ImportResult: res, index: filepath.Join(in.dir, imageDir, in.name+".rbidx")}
	old, err := chunkstore.ReadIndexFile(a.index)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err == nil && sameIndex(old, res.Index):
		a.unchanged = true
		return a, nil
	case in.force:
	case err != nil:
		return nil, fmt.Errorf("%s exists and is not a readable index (--force replaces it): %w", a.index, err)
	default:
		return nil, fmt.Errorf("%s exists and describes another image (sha256 %s, %s): --force replaces it, or choose another --name",
			a.index, old.Digest(), humanBytes(old.Size))
	}
	if err := os.MkdirAll(filepath.Dir(a.index), 0o755); err != nil {
		return nil, err
	}
	if err := chunkstore.WriteIndexFile(a.index, res.Index); err != nil {
		return nil, fmt.Errorf("write the index: %w", err)
	}
	return a, nil
}

// sameIndex reports whether two indexes describe the same image cut the
// same way.
func sameIndex(a, b *chunkstore.Index) bool {
	if a.SHA256 != b.SHA256 || a.Size != b.Size || len(a.Chunks) != len(b.Chunks) {
		return false
	}
	for i := range a.Chunks {
		if a.Chunks[i] != b.Chunks[i] {
			return false
		}
	}
	return true
}

// importSummary says what the import found and added.
func importSummary(in imageInput, a *added) string {
	var b strings.Builder
	ix := a.Index
	fmt.Fprintf(&b, "image:  %s, %s (%d chunks), digest %s\n", in.file, humanBytes(ix.Size), a.Chunks, ix.Digest())
	share := 0.0
	if ix.Size > 0 {
		share = 100 * float64(a.NewRaw) / float64(ix.Size)
	}
	fmt.Fprintf(&b, "new:    %d chunks, %s stored (%.1f %% of %s)\n", a.NewChunks, humanBytes(a.NewStored), share, humanBytes(ix.Size))
	fmt.Fprintf(&b, "zero:   %d chunks, %s not stored\n", a.ZeroChunks, humanBytes(a.ZeroBytes))
	fmt.Fprintf(&b, "fetch:  %s stored in all: what a machine with nothing of it on its disk fetches\n", humanBytes(ix.StoredSize()))
	state := "written"
	if a.unchanged {
		state = "unchanged (it already described this image)"
	}
	fmt.Fprintf(&b, "index:  %s, %s\n", a.index, state)
	return b.String()
}

// catalogEntry is the catalog entry of an imported image.
type catalogEntry struct {
	Name, Channel, URL, SHA256, Kind string
	Number                           int
}

// yaml prints the entry as examples/catalog.yaml writes versions, to be
// pasted under a profiles file's versions:.
func (e catalogEntry) yaml() string {
	var b strings.Builder
	b.WriteString("catalog entry (under versions: in a profiles file; add the installer if the version brings its own):\n")
	fmt.Fprintf(&b, "  - name: %s\n    number: %d\n", e.Name, e.Number)
	if e.Channel != "" {
		fmt.Fprintf(&b, "    channel: %s\n", e.Channel)
	}
	fmt.Fprintf(&b, "    image: { url: %s, sha256: %s, format: %s, kind: %s }\n", e.URL, e.SHA256, agentapi.FormatChunked, e.Kind)
	return b.String()
}

// readIndex is the planner's index reader (artifacts.Indexes.Parse):
// the index format is chunkstore's.
func readIndex(r io.Reader) (artifacts.Index, error) {
	ix, err := chunkstore.ReadIndex(r)
	if err != nil {
		return artifacts.Index{}, err
	}
	return artifacts.Index{Size: ix.Size, Stored: ix.StoredSize(), SHA256: ix.Digest(), Source: ix.SourceDigest()}, nil
}
