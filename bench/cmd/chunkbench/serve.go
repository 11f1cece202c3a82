package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/rackboot/rackboot/artifacts"
)

// counter counts the requests a handler answered and the body bytes it
// wrote: what a client fetched, whichever tool it is.
type counter struct {
	next     http.Handler
	requests atomic.Int64
	bytes    atomic.Int64
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	c.next.ServeHTTP(&countingWriter{ResponseWriter: w, n: &c.bytes}, r)
}

// countingWriter has no ReadFrom, so a file is sent through Write (no
// sendfile): the same for every client, and every byte is counted.
// (artifacts.Handler's own writer forwards ReadFrom only when the writer
// it wraps has one.)
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// serve serves a folder over HTTP on loopback until the context ends,
// then prints the requests answered and the bytes sent.
func serve(ctx context.Context, fs *flag.FlagSet, args []string) error {
	dir := fs.String("dir", ".", "the `folder` to serve")
	addr := fs.String("addr", "127.0.0.1:0", "listen `address`")
	ready := fs.String("ready", "", "write the listening address to this `file` once listening")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// The appliance's artifacts handler, with its batches of chunks of
	// the store in www/store; casync's files are plain files to it.
	c := &counter{next: &artifacts.Handler{Dir: *dir, Prefix: "/", ChunkStore: "store"}}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			ln.Close()
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	fmt.Printf("%d %d\n", c.requests.Load(), c.bytes.Load())
	return nil
}
