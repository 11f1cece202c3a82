package artifacts

import (
	"errors"
	"fmt"
	"io"
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
}

// Image returns the stored size, the size and the digest of the image
// whose index is name (a path relative to Dir): profiles.Planner's
// ChunkIndex.
func (x *Indexes) Image(name string) (stored, raw int64, sha256 string, err error) {
	if x.Parse == nil {
		return 0, 0, "", errors.New("artifacts: no chunk index reader (Indexes.Parse)")
	}
	f, stamp, err := openRegular(x.Dir, name, "chunk index")
	if err != nil {
		return 0, 0, "", err
	}
	defer f.Close()
	ix, err := x.known.get(name, stamp, func() (Index, error) {
		ix, err := x.Parse(io.NewSectionReader(f, 0, stamp.size))
		if err != nil {
			return Index{}, fmt.Errorf("artifacts: chunk index %s: %w", name, err)
		}
		return ix, nil
	})
	if err != nil {
		return 0, 0, "", err
	}
	return ix.Stored, ix.Size, ix.SHA256, nil
}
