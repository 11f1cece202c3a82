package api

import (
	"encoding/json"
	"fmt"

	"github.com/rackboot/rackboot/registry"
)

// Appliances sharing one store (docs/DESIGN.md, "Several appliances")
// hand each other their live events, so that `rackboot watch` and
// `logs -f` on any of them show every install. The wire form of an event
// is wireEvent, in JSON.

type wireEvent struct {
	Type string          `json:"type"`
	MAC  string          `json:"mac,omitempty"`
	Data json.RawMessage `json:"data"`
}

// EncodeEvents is the wire form of a batch of events.
func EncodeEvents(evs []Event) ([]byte, error) {
	out := make([]wireEvent, 0, len(evs))
	for _, ev := range evs {
		b, err := json.Marshal(ev.Data)
		if err != nil {
			return nil, fmt.Errorf("api: encode %s event: %w", ev.Type, err)
		}
		out = append(out, wireEvent{Type: ev.Type, MAC: ev.MAC, Data: b})
	}
	return json.Marshal(out)
}

// DecodeEvents reads a batch EncodeEvents wrote, each event's Data the
// type its Type names (ProgressEvent, StateEvent, LogEvent,
// RolloutEvent). Events of a type it does not know (a newer appliance's)
// are skipped.
func DecodeEvents(b []byte) ([]Event, error) {
	var in []wireEvent
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("api: decode events: %w", err)
	}
	out := make([]Event, 0, len(in))
	for _, w := range in {
		var data any
		var err error
		switch w.Type {
		case EventProgress:
			data, err = decodeAs[ProgressEvent](w.Data)
		case EventState:
			data, err = decodeAs[StateEvent](w.Data)
		case EventLog:
			data, err = decodeAs[LogEvent](w.Data)
		case EventRollout:
			data, err = decodeAs[RolloutEvent](w.Data)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("api: decode %s event: %w", w.Type, err)
		}
		out = append(out, Event{Type: w.Type, MAC: w.MAC, Data: data})
	}
	return out, nil
}

func decodeAs[T any](b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// Deliver takes an event another appliance published: its progress
// reports feed this appliance's host views too, and its subscribers get
// it.
func (s *Server) Deliver(ev Event) {
	switch d := ev.Data.(type) {
	case ProgressEvent:
		s.progress.set(d)
	case StateEvent:
		if d.Host.State != registry.StateInstalling {
			s.progress.clear(d.Host.MAC)
		}
	}
	if s.Events != nil {
		s.Events.Deliver(ev)
	}
}
