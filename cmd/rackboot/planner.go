package main

import (
	"io"

	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/profiles"
)

// planner is the daemon's planner over the artifacts directory dir: it
// measures the catalog's images and reads the indexes of chunked ones
// with parse, each once per version of the file. A nil parse leaves
// chunked images unmeasured and their digests unchecked.
func planner(dir string, parse func(io.Reader) (artifacts.Index, error)) profiles.Planner {
	pl := profiles.Planner{ImageSizes: (&artifacts.Sizes{Dir: dir}).Image}
	if parse != nil {
		ix := &artifacts.Indexes{Dir: dir, Parse: parse}
		pl.ChunkIndex = ix.Image
		pl.Twin = func(source string) (string, bool) { return ix.Twin(profiles.IndexDir, source) }
	}
	return pl
}
