package api

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rackboot/rackboot/registry"
)

// Event is one message to live subscribers.
type Event struct {
	// Type is "progress", "state" or "log".
	Type string
	// MAC is the machine it concerns.
	MAC string
	// Data is the JSON payload: a ProgressEvent, StateEvent or LogEvent.
	Data any
}

// Event types.
const (
	EventProgress = "progress"
	EventState    = "state"
	EventLog      = "log"
	// EventRollout: a staged rollout changed (a RolloutEvent); MAC is "".
	EventRollout = "rollout"
)

// RolloutEvent is the data of a "rollout" event: the rollout's state
// after a change, and the newest line of its events.
type RolloutEvent struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Wave is the current wave, from 1, of Waves.
	Wave  int `json:"wave"`
	Waves int `json:"waves"`
	// Text is the rollout's newest event ("wave 2 started: 2 hosts").
	Text string    `json:"text,omitempty"`
	At   time.Time `json:"at,omitzero"`
}

// Events is an in-process broadcaster. Publish never blocks: each
// subscriber has a bounded queue, and a subscriber that falls behind loses
// events (counted by Dropped) rather than slowing an agent's report. The
// zero value is ready to use and safe for concurrent use.
type Events struct {
	// Buffer is each subscriber's queue length. Zero means 256.
	Buffer int
	// Forward, if set, is handed every event published here (not those
	// Deliver hands over), to share it with the other appliances of a
	// shared store. It runs inside Publish and must not block.
	Forward func(Event)

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscription is one subscriber's queue.
type Subscription struct {
	// C delivers the events; it is closed by Close and by Events.Close.
	C <-chan Event

	c       chan Event
	filter  func(Event) bool
	events  *Events
	dropped atomic.Uint64
}

// Subscribe returns a subscription to the events filter accepts (nil: all).
// filter runs inside Publish and must be quick.
func (e *Events) Subscribe(filter func(Event) bool) *Subscription {
	n := e.Buffer
	if n <= 0 {
		n = 256
	}
	s := &Subscription{c: make(chan Event, n), filter: filter, events: e}
	s.C = s.c
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		close(s.c)
		return s
	}
	if e.subs == nil {
		e.subs = map[*Subscription]struct{}{}
	}
	e.subs[s] = struct{}{}
	return s
}

// Close ends the subscription. It may be called more than once.
func (s *Subscription) Close() {
	e := s.events
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[s]; ok {
		delete(e.subs, s)
		close(s.c)
	}
}

// Dropped is how many events the subscription lost because its queue was
// full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Publish hands ev to every subscriber whose queue has room, and to
// Forward.
func (e *Events) Publish(ev Event) {
	if e.Forward != nil {
		e.Forward(ev)
	}
	e.Deliver(ev)
}

// Deliver hands ev to every subscriber whose queue has room, but not to
// Forward: an event another appliance published.
func (e *Events) Deliver(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.subs {
		if s.filter != nil && !s.filter(ev) {
			continue
		}
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

// Close ends every subscription, so that streaming handlers return: pass it
// to http.Server.RegisterOnShutdown, since Shutdown does not cancel the
// contexts of requests still running.
func (e *Events) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for s := range e.subs {
		close(s.c)
	}
	e.subs = nil
}

// StateEvent is the payload of a "state" event: a committed change of a
// host's record.
type StateEvent struct {
	// Event is what happened: boot, start, done, failed, superseded,
	// reinstall.
	Event   string              `json:"event"`
	Host    registry.HostRecord `json:"host"`
	Attempt *registry.Attempt   `json:"attempt,omitempty"`
}

// Changed publishes a registry change as a "state" event. Set it as the
// Registry's Notify.
func (e *Events) Changed(c registry.Change) {
	c.Host.Token = nil
	e.Publish(Event{Type: EventState, MAC: c.Host.MAC, Data: StateEvent{Event: c.Event, Host: c.Host, Attempt: c.Attempt}})
}
