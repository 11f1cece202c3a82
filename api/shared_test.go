package api

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/registry"
)

func TestEventsWire(t *testing.T) {
	in := []Event{
		{Type: EventProgress, MAC: "m1", Data: ProgressEvent{MAC: "m1", Attempt: 2, Progress: agentapi.Progress{Phase: agentapi.PhaseImage, Done: 5, Total: 10}, At: "2026-12-07T10:00:00Z"}},
		{Type: EventState, MAC: "m1", Data: StateEvent{Event: "done", Host: registry.HostRecord{MAC: "m1", State: registry.StateInstalled}}},
		{Type: EventLog, MAC: "m1", Data: LogEvent{MAC: "m1", AttemptID: 3, Seq: 4, Lines: []string{"a", "b"}}},
		{Type: EventRollout, Data: RolloutEvent{ID: "r1", Status: "running", Wave: 1, Waves: 3}},
	}
	b, err := EncodeEvents(in)
	if err != nil {
		t.Fatal(err)
	}
	// A newer appliance's event type is skipped, not an error.
	b = append(b[:len(b)-1], []byte(`,{"type":"future","data":{}}]`)...)
	out, err := DecodeEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
	if _, err := DecodeEvents([]byte(`[{"type":"log","data":"x"}]`)); err == nil {
		t.Error("a log event of the wrong shape decoded")
	}
}

func TestEventsForwardDeliver(t *testing.T) {
	var forwarded []Event
	e := &Events{}
	e.Forward = func(ev Event) { forwarded = append(forwarded, ev) }
	sub := e.Subscribe(nil)
	defer sub.Close()
	e.Publish(Event{Type: EventLog, MAC: "local"})
	s := &Server{Events: e}
	s.Deliver(Event{Type: EventProgress, MAC: "m1", Data: ProgressEvent{MAC: "m1", Attempt: 1}})
	if len(forwarded) != 1 || forwarded[0].MAC != "local" {
		t.Fatalf("forwarded %+v, want only the local event", forwarded)
	}
	if a, b := <-sub.C, <-sub.C; a.MAC != "local" || b.MAC != "m1" {
		t.Fatalf("subscriber got %s, %s", a.MAC, b.MAC)
	}
	if p, ok := s.progress.get("m1"); !ok || p.Attempt != 1 {
		t.Fatalf("a delivered progress report is not in the progress table: %+v %v", p, ok)
	}
	s.Deliver(Event{Type: EventState, MAC: "m1", Data: StateEvent{Event: "done", Host: registry.HostRecord{MAC: "m1", State: registry.StateInstalled}}})
	if _, ok := s.progress.get("m1"); ok {
		t.Fatal("the progress of a machine another appliance saw finish is still shown")
	}
}

func TestRolloutsElsewhere(t *testing.T) {
	e := newEnv(t, nil)
	why := "staged rollouts are driven by appliance b:8443 (https://10.0.0.2:8443): run this against it (rackboot --server)"
	e.srv.RolloutsElsewhere = func() string { return why }
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/rollouts"}, {"POST", "/api/rollouts"}, {"GET", "/api/rollouts/r1"}, {"POST", "/api/rollouts/r1/pause"},
	} {
		code, body := e.do(r.method, r.path, map[string]string{"Authorization": "Bearer " + adminTok}, nil)
		if code != 409 || !strings.Contains(body, "appliance b:8443") {
			t.Errorf("%s %s = %d %s; want 409 naming the leader", r.method, r.path, code, body)
		}
	}
	e.srv.RolloutsElsewhere = func() string { return "" }
	if code, body := e.do("GET", "/api/rollouts", map[string]string{"Authorization": "Bearer " + adminTok}, nil); code == 409 {
		t.Errorf("the leader refused: %d %s", code, body)
	}
}
