package registry

import (
	"bytes"
	"slices"
	"sync"
)

// maxDecoded bounds the records a decodedCache holds: 64k records of about
// 1 KB, decoded and encoded, stay well under 200 MB.
const maxDecoded = 1 << 16

// decodedCache keeps decoded host records next to the encoding they were
// decoded from. A store looks a record's stored bytes up and, if they are
// the bytes the cached record came from, hands out a copy of it instead of
// decoding again: a script request reads its machine's record, and JSON
// decoding was a quarter of its cost. Keyed by the stored bytes themselves,
// the cache can never hand out a record the store no longer holds, however
// reads and commits interleave.
type decodedCache struct {
	mu sync.RWMutex
	m  map[string]decoded
}

type decoded struct {
	raw []byte
	h   HostRecord
}

// decode returns the record stored as b under mac. b may be reused by the
// caller afterwards (bbolt's values live only as long as their transaction).
func (c *decodedCache) decode(mac string, b []byte) (HostRecord, error) {
	c.mu.RLock()
	d, ok := c.m[mac]
	c.mu.RUnlock()
	if ok && bytes.Equal(d.raw, b) {
		return d.h.Clone(), nil
	}
	h, err := DecodeHost(b)
	if err != nil {
		return HostRecord{}, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]decoded)
	}
	if len(c.m) >= maxDecoded {
		for k := range c.m { // evict one at random: map order
			delete(c.m, k)
			break
		}
	}
	c.m[mac] = decoded{raw: bytes.Clone(b), h: h.Clone()}
	c.mu.Unlock()
	return h, nil
}

// forget drops the decoded record of mac (it was deleted), so the cache
// does not hold records the store no longer has.
func (c *decodedCache) forget(mac string) {
	c.mu.Lock()
	delete(c.m, mac)
	c.mu.Unlock()
}

// Clone returns a copy of h that shares nothing with it: Stores hand out
// copies, and a caller's change must not reach a store's cache.
func (h HostRecord) Clone() HostRecord {
	if h.Reinstall != nil {
		r := *h.Reinstall
		h.Reinstall = &r
	}
	if h.Current != nil {
		a := *h.Current
		a.Log = slices.Clone(a.Log)
		h.Current = &a
	}
	if h.Token != nil {
		t := *h.Token
		h.Token = &t
	}
	if h.DoneToken != nil {
		t := *h.DoneToken
		h.DoneToken = &t
	}
	if h.FailedToken != nil {
		t := *h.FailedToken
		h.FailedToken = &t
	}
	h.Power = slices.Clone(h.Power)
	return h
}
