package artifacts

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
)

// serveChunks answers a batch of chunks of the store in dir (Handler's
// ChunkStore): the files of ids, a comma-separated list, one after the
// other. Every file is opened before the first byte is sent, so a missing
// one is a 404, not a cut response.
func (h *Handler) serveChunks(w http.ResponseWriter, r *http.Request, dir, list string) error {
	ids := strings.Split(list, ",")
	if len(ids) > agentapi.MaxChunkBatch {
		http.Error(w, fmt.Sprintf("at most %d chunks per request", agentapi.MaxChunkBatch), http.StatusBadRequest)
		return fmt.Errorf("%d chunks asked", len(ids))
	}
	for _, id := range ids {
		if b, err := hex.DecodeString(id); err != nil || len(b) != 32 {
			http.Error(w, "a chunk id is 64 hex digits", http.StatusBadRequest)
			return fmt.Errorf("chunk id %q", truncate(id))
		}
	}
	root, err := os.OpenRoot(h.Dir)
	if err != nil {
		http.Error(w, "artifacts directory unavailable", http.StatusInternalServerError)
		return err
	}
	defer root.Close()
	files := make([]*os.File, 0, len(ids))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var total int64
	for _, id := range ids {
		name := path.Join(dir, id[:4], id+".zst")
		f, err := root.Open(name)
		if err != nil {
			return fileError(w, r, err)
		}
		files = append(files, f)
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, "cannot read file", http.StatusInternalServerError)
			return err
		}
		if !fi.Mode().IsRegular() {
			http.NotFound(w, r)
			return errors.New(name + ": not a regular file")
		}
		total += fi.Size()
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Length", strconv.FormatInt(total, 10))
	if r.Method == http.MethodHead {
		return nil
	}
	for _, f := range files {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
	}
	return nil
}
