package imaging

import (
	"errors"
	"io"
	"sync/atomic"
)

// chunk is a buffer travelling through the stream's stages. A chunk read
// from the source goes to the hasher and to the decoder (or, for a raw
// image, straight to the writer); refs counts the stages still using it
// and the last one returns it to its pool.
type chunk struct {
	buf  []byte
	n    int
	refs atomic.Int32
	pool chan *chunk
}

func (c *chunk) data() []byte { return c.buf[:c.n] }

// release drops one reference; the last returns the chunk to its pool,
// whose capacity is the number of chunks, so it never blocks.
func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		c.n = 0
		c.pool <- c
	}
}

// newPool makes count chunks of size bytes.
func newPool(count, size int) chan *chunk {
	pool := make(chan *chunk, count)
	for range count {
		pool <- &chunk{buf: alignedBuffer(size), pool: pool}
	}
	return pool
}

// errSourceAborted is what the decoder sees when the source stage stopped
// on an error; Stream reports the source's error instead.
var errSourceAborted = errors.New("imaging: image source aborted")

// chunkReader is the decoder's view of the compressed chunks: an io.Reader
// over a channel. The source closes the channel after setting eof on a
// clean end; a channel closed without it means the source failed.
type chunkReader struct {
	ch  <-chan *chunk
	eof *atomic.Bool
	cur *chunk
	off int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for r.cur == nil || r.off == r.cur.n {
		if r.cur != nil {
			r.cur.release()
			r.cur = nil
		}
		c, ok := <-r.ch
		if !ok {
			if r.eof.Load() {
				return 0, io.EOF
			}
			return 0, errSourceAborted
		}
		r.cur, r.off = c, 0
	}
	n := copy(p, r.cur.buf[r.off:r.cur.n])
	r.off += n
	return n, nil
}

// drain releases every chunk the decoder did not read, so the source can
// run to the end of the file and the hasher see all of it.
func (r *chunkReader) drain() {
	if r.cur != nil {
		r.cur.release()
		r.cur = nil
	}
	for c := range r.ch {
		c.release()
	}
}
