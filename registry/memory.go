package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// errClosed is returned by a Memory store after Close.
var errClosed = errors.New("registry: store closed")

// Memory is a Store in memory, for tests and for trying rackboot out. It
// keeps records encoded, as Bolt does, so both hand out copies and behave
// alike. The zero value is not usable; call NewMemory.
type Memory struct {
	mu       sync.Mutex
	closed   bool
	hosts    map[string][]byte
	attempts map[string]map[int][]byte
	logs     map[string]map[int][]memBatch
	blobs    map[string][]byte
	cache    decodedCache
}

type memBatch struct {
	seq  int
	data []byte
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{
		hosts:    map[string][]byte{},
		attempts: map[string]map[int][]byte{},
		logs:     map[string]map[int][]memBatch{},
		blobs:    map[string][]byte{},
	}
}

// Host implements Store.
func (m *Memory) Host(_ context.Context, mac string) (HostRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return HostRecord{}, errClosed
	}
	b, ok := m.hosts[mac]
	if !ok {
		return HostRecord{}, fmt.Errorf("%w: %s", ErrNotFound, mac)
	}
	return m.cache.decode(mac, b)
}

// Hosts implements Store.
func (m *Memory) Hosts(context.Context) ([]HostRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	out := make([]HostRecord, 0, len(m.hosts))
	for _, mac := range slices.Sorted(maps.Keys(m.hosts)) {
		h, err := DecodeHost(m.hosts[mac])
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// Update implements Store.
func (m *Memory) Update(_ context.Context, mac string, fn func(*HostRecord, bool) (*Attempt, error)) (HostRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return HostRecord{}, errClosed
	}
	old, exists := m.hosts[mac]
	h, before, err := m.cache.startUpdate(mac, old, exists)
	if err != nil {
		return HostRecord{}, err
	}
	a, err := fn(&h, exists)
	if err != nil {
		return HostRecord{}, err
	}
	after, ab, err := EncodeUpdate(mac, h, a)
	if err != nil {
		return HostRecord{}, err
	}
	if ab != nil {
		if m.attempts[mac] == nil {
			m.attempts[mac] = map[int][]byte{}
		}
		m.attempts[mac][a.ID] = ab
	}
	if string(after) != string(before) {
		m.hosts[mac] = after
	}
	return m.cache.decode(mac, after)
}

// History implements Store.
func (m *Memory) History(_ context.Context, mac string) ([]Attempt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	byID := m.attempts[mac]
	out := make([]Attempt, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		a, err := DecodeAttempt(mac, byID[id])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// AppendLog implements Store.
func (m *Memory) AppendLog(_ context.Context, mac string, id int, lines []string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, errClosed
	}
	data, err := EncodeBatch(lines)
	if err != nil {
		return 0, err
	}
	if m.logs[mac] == nil {
		m.logs[mac] = map[int][]memBatch{}
	}
	batches := m.logs[mac][id]
	seq := 1
	if len(batches) > 0 {
		seq = batches[len(batches)-1].seq + 1
	}
	batches = append(batches, memBatch{seq, data})
	sizes := make([]int, len(batches))
	for i, b := range batches {
		sizes[i] = len(b.data)
	}
	m.logs[mac][id] = slices.Clone(batches[LogOverflow(sizes):])
	return seq, nil
}

// Log implements Store.
func (m *Memory) Log(_ context.Context, mac string, id, after int) (LogTail, error) {
	after = max(after, 0)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return LogTail{}, errClosed
	}
	t := LogTail{Lines: []string{}, Last: after}
	batches := m.logs[mac][id]
	if len(batches) > 0 && batches[0].seq > 1 {
		t.Truncated = true
	}
	for _, b := range batches {
		if b.seq <= after {
			continue
		}
		lines, err := DecodeBatch(b.data)
		if err != nil {
			return LogTail{}, err
		}
		t.Lines = append(t.Lines, lines...)
		t.Last = b.seq
	}
	return t, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, mac string, fn func(HostRecord) bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, errClosed
	}
	b, ok := m.hosts[mac]
	if !ok {
		return false, nil
	}
	h, err := m.cache.decode(mac, b)
	if err != nil {
		return false, err
	}
	if !fn(h) {
		return false, nil
	}
	delete(m.hosts, mac)
	delete(m.attempts, mac)
	delete(m.logs, mac)
	m.cache.forget(mac)
	return true, nil
}

// PutBlob implements Store.
func (m *Memory) PutBlob(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if value == nil {
		delete(m.blobs, key)
	} else {
		m.blobs[key] = slices.Clone(value)
	}
	return nil
}

// Blobs implements Store.
func (m *Memory) Blobs(_ context.Context, prefix string) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	out := map[string][]byte{}
	for k, v := range m.blobs {
		if strings.HasPrefix(k, prefix) {
			out[k] = slices.Clone(v)
		}
	}
	return out, nil
}

// Close implements Store. Later calls fail.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
