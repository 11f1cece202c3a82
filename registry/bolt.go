package registry

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bolt is the embedded Store: one bbolt file under the data directory.
//
// bbolt commits a write transaction by writing its pages, fsync, then
// writing the meta page and fsync again; a crash at any point leaves the
// previous or the new meta page valid, never a torn file. Each Store method
// that writes returns after the transaction holding its change committed
// (Update shares its transaction with concurrent Updates), so a nil return
// means the change is on disk. The file is locked (flock) while open: a
// second daemon on the same data directory fails at start instead of
// sharing it.
type Bolt struct {
	db    *bolt.DB
	cache decodedCache
}

// Bucket layout:
//
//	hosts    MAC → HostRecord (JSON)
//	attempts MAC → { ID (8 bytes, big-endian) → Attempt (JSON) }
//	logs     MAC → { ID (8 bytes) + seq (4 bytes) → []string (JSON) }
//	blobs    key → value (PutBlob: rollouts)
//
// Big-endian keys make bbolt's byte order the numeric order.
var (
	bucketHosts    = []byte("hosts")
	bucketAttempts = []byte("attempts")
	bucketLogs     = []byte("logs")
	bucketBlobs    = []byte("blobs")
)

// maxBatchDelay is how long a write waits for others to share its commit
// (bbolt's Batch). Writes of many machines at once then cost one pair of
// fsyncs together instead of a pair each, one after the other; a lone
// write waits this long more. bbolt's default, 10 ms, is longer than a
// commit takes on most disks.
const maxBatchDelay = 2 * time.Millisecond

// lockTimeout bounds the wait for the file lock of another process.
const lockTimeout = 2 * time.Second

// OpenBolt opens or creates the store at path (mode 0600: it holds token
// digests and agent logs).
func OpenBolt(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("registry: %s is locked by another process (is another rackboot running?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHosts, bucketAttempts, bucketLogs, bucketBlobs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("registry: initialise %s: %w", path, err)
	}
	db.MaxBatchDelay = maxBatchDelay
	return &Bolt{db: db}, nil
}

// Host implements Store.
func (s *Bolt) Host(_ context.Context, mac string) (HostRecord, error) {
	var h HostRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHosts).Get([]byte(mac))
		if b == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, mac)
		}
		var err error
		h, err = s.cache.decode(mac, b)
		return err
	})
	return h, err
}

// Hosts implements Store.
func (s *Bolt) Hosts(context.Context) ([]HostRecord, error) {
	var out []HostRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHosts).ForEach(func(_, v []byte) error {
			h, err := DecodeHost(v)
			out = append(out, h)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []HostRecord{}
	}
	return out, nil
}

// Update implements Store.
func (s *Bolt) Update(_ context.Context, mac string, fn func(*HostRecord, bool) (*Attempt, error)) (HostRecord, error) {
	var stored []byte
	err := s.db.Batch(func(tx *bolt.Tx) error {
		hb := tx.Bucket(bucketHosts)
		old := hb.Get([]byte(mac))
		h, before, err := s.cache.startUpdate(mac, old, old != nil)
		if err != nil {
			return err
		}
		a, err := fn(&h, old != nil)
		if err != nil {
			return err
		}
		after, ab, err := EncodeUpdate(mac, h, a)
		if err != nil {
			return err
		}
		stored = after
		if ab != nil {
			ib, err := tx.Bucket(bucketAttempts).CreateBucketIfNotExists([]byte(mac))
			if err != nil {
				return err
			}
			if err := ib.Put(u64(uint64(a.ID)), ab); err != nil {
				return err
			}
		}
		if bytes.Equal(after, before) {
			return nil
		}
		return hb.Put([]byte(mac), after)
	})
	if err != nil {
		return HostRecord{}, err
	}
	return s.cache.decode(mac, stored)
}

// History implements Store.
func (s *Bolt) History(_ context.Context, mac string) ([]Attempt, error) {
	out := []Attempt{}
	err := s.db.View(func(tx *bolt.Tx) error {
		ib := tx.Bucket(bucketAttempts).Bucket([]byte(mac))
		if ib == nil {
			return nil
		}
		return ib.ForEach(func(_, v []byte) error {
			a, err := DecodeAttempt(mac, v)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendLog implements Store.
func (s *Bolt) AppendLog(_ context.Context, mac string, id int, lines []string) (int, error) {
	data, err := EncodeBatch(lines)
	if err != nil {
		return 0, err
	}
	seq := 0
	err = s.db.Update(func(tx *bolt.Tx) error {
		lb, err := tx.Bucket(bucketLogs).CreateBucketIfNotExists([]byte(mac))
		if err != nil {
			return err
		}
		prefix := u64(uint64(id))
		var keys [][]byte
		var sizes []int
		last := 0
		c := lb.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			keys = append(keys, bytes.Clone(k))
			sizes = append(sizes, len(v))
			last = int(binary.BigEndian.Uint32(k[8:]))
		}
		seq = last + 1
		if err := lb.Put(logKey(id, seq), data); err != nil {
			return err
		}
		for _, k := range keys[:LogOverflow(append(sizes, len(data)))] {
			if err := lb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// Log implements Store.
func (s *Bolt) Log(_ context.Context, mac string, id, after int) (LogTail, error) {
	after = max(after, 0)
	t := LogTail{Lines: []string{}, Last: after}
	err := s.db.View(func(tx *bolt.Tx) error {
		lb := tx.Bucket(bucketLogs).Bucket([]byte(mac))
		if lb == nil {
			return nil
		}
		prefix := u64(uint64(id))
		c := lb.Cursor()
		if k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && binary.BigEndian.Uint32(k[8:]) > 1 {
			t.Truncated = true
		}
		for k, v := c.Seek(logKey(id, after+1)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			lines, err := DecodeBatch(v)
			if err != nil {
				return err
			}
			t.Lines = append(t.Lines, lines...)
			t.Last = int(binary.BigEndian.Uint32(k[8:]))
		}
		return nil
	})
	if err != nil {
		return LogTail{}, err
	}
	return t, nil
}

// Delete implements Store. bbolt reuses the freed pages for later writes
// (the file does not shrink, but it stops growing).
func (s *Bolt) Delete(_ context.Context, mac string, fn func(HostRecord) bool) (bool, error) {
	var deleted bool
	err := s.db.Batch(func(tx *bolt.Tx) error {
		deleted = false
		hb := tx.Bucket(bucketHosts)
		old := hb.Get([]byte(mac))
		if old == nil {
			return nil
		}
		h, err := s.cache.decode(mac, old)
		if err != nil {
			return err
		}
		if !fn(h) {
			return nil
		}
		if err := hb.Delete([]byte(mac)); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketAttempts, bucketLogs} {
			b := tx.Bucket(name)
			if b.Bucket([]byte(mac)) == nil {
				continue
			}
			if err := b.DeleteBucket([]byte(mac)); err != nil {
				return err
			}
		}
		deleted = true
		return nil
	})
	if err != nil {
		return false, err
	}
	if deleted {
		s.cache.forget(mac)
	}
	return deleted, nil
}

// PutBlob implements Store.
func (s *Bolt) PutBlob(_ context.Context, key string, value []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if value == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), value)
	})
}

// Blobs implements Store.
func (s *Bolt) Blobs(_ context.Context, prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBlobs).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			out[string(k)] = bytes.Clone(v)
		}
		return nil
	})
	return out, err
}

// Close implements Store.
func (s *Bolt) Close() error { return s.db.Close() }

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func logKey(id, seq int) []byte {
	return binary.BigEndian.AppendUint32(u64(uint64(id)), uint32(seq))
}
