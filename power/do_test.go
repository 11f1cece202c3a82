package power_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rackboot/rackboot/power"
)

// stub is a Controller whose operations fail with the kinds queued in
// errs (then succeed), counting calls.
type stub struct {
	errs  []power.Kind
	calls map[string]int
	state power.State
}

func (s *stub) next(op string) error {
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[op]++
	if len(s.errs) == 0 {
		return nil
	}
	k := s.errs[0]
	s.errs = s.errs[1:]
	return &power.Error{Op: "power " + op, Kind: k, Err: errors.New("stub")}
}

func (s *stub) Status(context.Context) (power.State, error) {
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls["status"]++
	return s.state, nil
}
func (s *stub) On(context.Context) error          { s.state = power.StateOn; return s.next("on") }
func (s *stub) Off(context.Context) error         { s.state = power.StateOff; return s.next("off") }
func (s *stub) Cycle(context.Context) error       { s.state = power.StateOn; return s.next("cycle") }
func (s *stub) NetBootOnce(context.Context) error { return s.next("netboot") }

func TestDoRetries(t *testing.T) {
	cfg := power.Config{Timeout: time.Second, PollInterval: time.Millisecond} // Retries: default 2
	tests := []struct {
		name     string
		action   power.Action
		errs     []power.Kind
		wantKind power.Kind
		op       string
		calls    int
	}{
		{name: "timeout retried", action: power.ActionOn, errs: []power.Kind{power.KindTimeout, power.KindTimeout}, op: "on", calls: 3},
		{name: "unreachable retried, then gives up", action: power.ActionOff, errs: []power.Kind{power.KindUnreachable, power.KindUnreachable, power.KindUnreachable}, wantKind: power.KindUnreachable, op: "off", calls: 3},
		{name: "auth never retried", action: power.ActionOn, errs: []power.Kind{power.KindAuth}, wantKind: power.KindAuth, op: "on", calls: 1},
		{name: "bmc error not retried", action: power.ActionOn, errs: []power.Kind{power.KindBMC}, wantKind: power.KindBMC, op: "on", calls: 1},
		{name: "cycle not retried after a timeout", action: power.ActionCycle, errs: []power.Kind{power.KindTimeout}, wantKind: power.KindTimeout, op: "cycle", calls: 1},
		{name: "cycle retried when unreachable", action: power.ActionCycle, errs: []power.Kind{power.KindUnreachable}, op: "cycle", calls: 2},
		{name: "netboot retried", action: power.ActionCycle, errs: []power.Kind{power.KindTimeout}, op: "netboot", calls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &stub{errs: tt.errs, state: power.StateUnknown}
			_, err := power.Do(context.Background(), s, tt.action, tt.op == "netboot", cfg)
			if got := power.KindOf(err); got != tt.wantKind {
				t.Errorf("kind %q, want %q (%v)", got, tt.wantKind, err)
			}
			if s.calls[tt.op] != tt.calls {
				t.Errorf("%d %s calls, want %d", s.calls[tt.op], tt.op, tt.calls)
			}
		})
	}
}

// TestDoPollTimeout: a machine that never reads the wanted state ends in
// a timeout error carrying the last state read.
func TestDoPollTimeout(t *testing.T) {
	s := &stub{}
	s.state = power.StateOn
	c := &stuckOn{s}
	cfg := power.Config{Timeout: 100 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	state, err := power.Do(context.Background(), c, power.ActionOff, false, cfg)
	if power.KindOf(err) != power.KindTimeout || state != power.StateOn {
		t.Errorf("Do off of a stuck machine: %s, %v; want on and a timeout", state, err)
	}
}

type stuckOn struct{ *stub }

func (s *stuckOn) Off(context.Context) error { return nil }

func TestDoBadRequests(t *testing.T) {
	for _, tc := range []struct {
		a       power.Action
		netboot bool
	}{{"reboot", false}, {power.ActionOff, true}, {power.ActionStatus, true}} {
		if _, err := power.Do(context.Background(), &stub{}, tc.a, tc.netboot, power.Config{}); power.KindOf(err) != power.KindConfig {
			t.Errorf("Do(%s, netboot %v): %v, want a config error", tc.a, tc.netboot, err)
		}
	}
}
