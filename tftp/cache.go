package tftp

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// maxCachedFile is the largest file kept in memory. Boot programs are 0.1 to
// a few MB; anything much larger belongs on HTTP and is read from disk.
const maxCachedFile = 16 << 20

// settleTime is how long after its last change a file is first cached.
// Linux stamps files with a coarse clock (one tick, 1 to 10 ms), so a file
// rewritten with the same size within the tick of an earlier write keeps
// its identity; a copy read in between would be stale for good. A file that
// has not changed for a second is past that, and until then it is read from
// disk as if uncached. Git's index handles its "racily clean" files the
// same way.
const settleTime = time.Second

// memory keeps the contents of the files requested, so that a boot storm
// reads each boot program from disk once instead of once per block of every
// transfer. It never decides what may be served: open looks every name up
// under the root first and hands memory the result, and a copy is used only
// while that lookup still finds the very file it was read from.
type memory struct {
	budget int64
	settle time.Duration // settleTime; tests shorten it

	mu    sync.Mutex
	files map[string]*image // by cleaned name, as looked up under the root
	used  int64             // bytes held by files
	clock uint64            // counts lookups, to find the least recently used
}

// image is a file's contents as read at one identity.
type image struct {
	id    identity
	ready chan struct{} // closed when data or err is set
	data  []byte
	err   error
	last  uint64 // memory.clock at the last lookup, under memory.mu
}

// identity is what tells that a file may have changed since it was read.
// Size and modification time alone miss an in-place rewrite that restores
// the time (cp -p, rsync --inplace -t); the change time and the inode, which
// a writer cannot set, do not.
type identity struct {
	fi    fs.FileInfo // for os.SameFile: device and inode
	size  int64
	mtime time.Time
	ctime int64 // status change time in ns where the platform has it, else 0
}

func identify(fi fs.FileInfo) identity {
	return identity{fi: fi, size: fi.Size(), mtime: fi.ModTime(), ctime: changeTime(fi)}
}

// changed is when the file last changed: its change time, or where there is
// none its modification time.
func (a identity) changed() time.Time {
	if a.ctime != 0 {
		return time.Unix(0, a.ctime)
	}
	return a.mtime
}

func (a identity) same(b identity) bool {
	return a.size == b.size && a.mtime.Equal(b.mtime) && a.ctime == b.ctime && os.SameFile(a.fi, b.fi)
}

// errChanged is a file that changed while it was being read into memory.
var errChanged = errors.New("tftp: file changed while read into memory")

func newMemory(budget int64) *memory {
	return &memory{budget: budget, settle: settleTime, files: make(map[string]*image)}
}

// get returns the contents of the regular file rel, which the caller has
// just looked up under root as fi, reading it into memory on first use. It
// returns false when the file is not to be cached (too large, changed less
// than settle ago, no room) or could not be read whole and unchanged; the
// caller then opens the file itself and reports any error the usual way.
// Requests that arrive while the file is being read wait for that one
// read. A nil memory caches nothing.
func (m *memory) get(root *os.Root, rel string, fi fs.FileInfo) ([]byte, bool) {
	if m == nil || fi.Size() > min(maxCachedFile, m.budget) {
		return nil, false
	}
	id := identify(fi)
	if time.Since(id.changed()) < m.settle {
		return nil, false
	}
	m.mu.Lock()
	m.clock++
	img := m.files[rel]
	if img != nil && img.id.same(id) {
		img.last = m.clock
		m.mu.Unlock()
		<-img.ready
		return img.data, img.err == nil
	}
	if img != nil {
		m.drop(rel, img)
	}
	if !m.makeRoom(id.size) {
		m.mu.Unlock()
		return nil, false
	}
	img = &image{id: id, ready: make(chan struct{}), last: m.clock}
	m.files[rel] = img
	m.used += id.size
	m.mu.Unlock()

	img.data, img.err = load(root, rel, id)
	close(img.ready)
	if img.err != nil {
		m.mu.Lock()
		if m.files[rel] == img {
			m.drop(rel, img)
		}
		m.mu.Unlock()
		return nil, false
	}
	return img.data, true
}

// forget drops rel's copy, if any, once the name no longer leads to a
// regular file, so that deleted files do not hold memory.
func (m *memory) forget(rel string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if img := m.files[rel]; img != nil {
		m.drop(rel, img)
	}
}

// drop removes rel's image. Transfers still sending it keep their slice.
// Called with m.mu held.
func (m *memory) drop(rel string, img *image) {
	delete(m.files, rel)
	m.used -= img.id.size
}

// makeRoom evicts the least recently requested files until size more bytes
// fit in the budget, and reports whether they do. Called with m.mu held.
// The map holds a few dozen files at most, so a scan is cheap enough.
func (m *memory) makeRoom(size int64) bool {
	for m.used+size > m.budget {
		var oldest string
		var img *image
		for name, i := range m.files {
			if img == nil || i.last < img.last {
				oldest, img = name, i
			}
		}
		if img == nil {
			return false
		}
		m.drop(oldest, img)
	}
	return true
}

// load reads rel whole, and fails unless it is still the file identified as
// want before, during and after the read: a copy being written, truncated or
// replaced meanwhile is not kept.
func load(root *os.Root, rel string, want identity) ([]byte, error) {
	f, err := root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !identify(fi).same(want) {
		return nil, errChanged
	}
	b := make([]byte, want.size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	var more [1]byte
	if n, _ := f.Read(more[:]); n != 0 {
		return nil, errChanged
	}
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !identify(fi).same(want) {
		return nil, errChanged
	}
	return b, nil
}
