package api

import (
	"sync"
	"time"
)

// progressTable is the latest progress of each installing machine, in
// memory only: progress is worth showing live and nothing after a restart.
type progressTable struct {
	mu sync.Mutex
	m  map[string]ProgressEvent
}

func (t *progressTable) set(ev ProgressEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]ProgressEvent{}
	}
	t.m[ev.MAC] = ev
}

func (t *progressTable) get(mac string) (ProgressEvent, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ev, ok := t.m[mac]
	return ev, ok
}

func (t *progressTable) clear(mac string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, mac)
}

func (s *Server) now() string {
	now := time.Now
	if s.Registry != nil && s.Registry.Now != nil {
		now = s.Registry.Now
	}
	return now().UTC().Format(time.RFC3339Nano)
}
