package artifacts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// Indexes reads the chunk indexes of an artifacts directory for the plans
// of chunked images (agentapi.FormatChunked): what an index says of its
// image, remembered for as long as the file keeps its size, modification
// time and inode, as Sizes does, so that an index of 20 000 chunks is
// parsed once per version of the file, not once per plan. Indexes is safe
// for concurrent use.
type Indexes struct {
	// Dir is the artifacts directory; names are resolved inside it as the
	// Handler resolves them.
	Dir string
	// Parse reads an index file. The index format belongs to the imaging
	// package, which the servers do not import: cmd/rackboot passes its
	// reader. Required.
	Parse func(io.Reader) (Index, error)

	known stampCache[Index]
}

// Index is what a plan states of a chunked image.
type Index struct {
	// Size is the image's size in bytes.
	Size int64
	// Stored is the compressed size of the image's distinct stored
	// chunks: what an agent with an empty disk fetches.
	Stored int64
	// SHA256 is the hex digest of the whole image.
	SHA256 string
	// Source is the hex digest of the file the image was imported from.
	Source string
}

// Image returns the stored size, the size and the digest of the image
// whose index is name (a path relative to Dir): profiles.Planner's
// ChunkIndex.
func (x *Indexes) Image(name string) (stored, raw int64, sha256 string, err error) {
	ix, err := x.read(name)
	if err != nil {
		return 0, 0, "", err
	}
	return ix.Stored, ix.Size, ix.SHA256, nil
}

// read returns the index name, parsed once per version of the file.
func (x *Indexes) read(name string) (Index, error) {
	if x.Parse == nil {
		return Index{}, errors.New("artifacts: no chunk index reader (Indexes.Parse)")
	}
	f, stamp, err := openRegular(x.Dir, name, "chunk index")
	if err != nil {
		return Index{}, err
	}
	defer f.Close()
	return x.known.get(name, stamp, func() (Index, error) {
		ix, err := x.Parse(io.NewSectionReader(f, 0, stamp.size))
		if err != nil {
			return Index{}, fmt.Errorf("artifacts: chunk index %s: %w", name, err)
		}
		return ix, nil
	})
}

// Twin returns the index in the directory dir (relative to Dir, e.g.
// "images") of the image imported from the file whose SHA-256 is
// source: the chunked twin of a streamed version, profiles.Planner's
// Twin. Unreadable indexes are skipped; ok is false when none matches.
func (x *Indexes) Twin(dir, source string) (name string, ok bool) {
	root, err := os.OpenRoot(x.Dir)
	if err != nil {
		return "", false
	}
	defer root.Close()
	d, err := root.Open(dir)
	if err != nil {
		return "", false
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return "", false
	}
	slices.Sort(names)
	for _, n := range names {
		if !strings.HasSuffix(n, ".rbidx") || strings.HasPrefix(n, ".") {
			continue
		}
		p := path.Join(dir, n)
		if ix, err := x.read(p); err == nil && strings.EqualFold(ix.Source, source) {
			return p, true
		}
	}
	return "", false
}
