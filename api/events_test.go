package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/registry"
)

// stream opens a streaming admin endpoint and returns its lines.
func (e *env) stream(path string) (lines <-chan string, stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	ch := make(chan string, 1000)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch, func() { cancel(); resp.Body.Close() }
}

// next returns the next line, failing after a timeout.
func next(t *testing.T, lines <-chan string) (string, bool) {
	t.Helper()
	select {
	case l, ok := <-lines:
		return l, ok
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for the stream")
		return "", false
	}
}

// sseEvent reads the stream up to the next event of type typ.
func sseEvent(t *testing.T, lines <-chan string, typ string) string {
	t.Helper()
	for {
		l, ok := next(t, lines)
		if !ok {
			t.Fatalf("stream ended before a %s event", typ)
		}
		if l != "event: "+typ {
			continue
		}
		data, _ := next(t, lines)
		return strings.TrimPrefix(data, "data: ")
	}
}

func TestEventsStream(t *testing.T) {
	e := newEnv(t, nil)
	lines, stop := e.stream("/api/events")
	defer stop()
	if l, _ := next(t, lines); l != ": rackboot events" {
		t.Fatalf("first line %q", l)
	}
	_, tok := e.boot(macN01, "efi")
	var st StateEvent
	if err := json.Unmarshal([]byte(sseEvent(t, lines, EventState)), &st); err != nil || st.Event != "boot" || st.Host.State != registry.StatePending || st.Host.Token != nil {
		t.Errorf("state event after boot = %+v, %v", st, err)
	}
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	code, body = e.agent(http.MethodPost, "/api/agent/progress", macN01, tok, agentapi.Progress{Phase: "image", Done: 10, Total: 40, Rate: 5})
	e.must(http.StatusNoContent, code, body)
	var p ProgressEvent
	if err := json.Unmarshal([]byte(sseEvent(t, lines, EventProgress)), &p); err != nil ||
		p.MAC != macN01 || p.Hostname != "r1-n01" || p.Attempt != 1 || p.Phase != "image" || p.Done != 10 || p.ETASeconds != 6 {
		t.Errorf("progress event = %+v, %v", p, err)
	}
	code, body = e.agent(http.MethodPost, "/api/agent/failed", macN01, tok, agentapi.Failed{Phase: "image", Error: "EIO"})
	e.must(http.StatusOK, code, body)
	if err := json.Unmarshal([]byte(sseEvent(t, lines, EventState)), &st); err != nil || st.Event != "failed" || st.Attempt == nil || st.Attempt.Error != "EIO" {
		t.Errorf("state event after failure = %+v, %v", st, err)
	}
	// The server shutting down ends the stream.
	e.events.Close()
	for {
		if _, ok := next(t, lines); !ok {
			break
		}
	}
}

func TestEventsFilter(t *testing.T) {
	e := newEnv(t, nil)
	lines, stop := e.stream("/api/events?mac=" + macN02)
	defer stop()
	next(t, lines)
	e.boot(macN01, "efi")
	e.boot(macN02, "efi")
	var st StateEvent
	if err := json.Unmarshal([]byte(sseEvent(t, lines, EventState)), &st); err != nil || st.Host.MAC != macN02 {
		t.Errorf("filtered stream gave %+v, %v; want only %s", st.Host.MAC, err, macN02)
	}
	if code := e.admin(http.MethodGet, "/api/events?mac=bogus", nil, nil); code != http.StatusBadRequest {
		t.Errorf("bad mac filter: %d", code)
	}
}

func TestLogFollow(t *testing.T) {
	e := newEnv(t, nil)
	// Follow a pending host before it even boots: the stream waits for
	// its next attempt.
	lines, stop := e.stream("/api/hosts/" + macN01 + "/log?follow=1")
	defer stop()
	_, tok := e.boot(macN01, "efi")
	post := func(ls ...string) {
		code, body := e.agent(http.MethodPost, "/api/agent/log", macN01, tok, agentapi.Log{Lines: ls})
		e.must(http.StatusNoContent, code, body)
	}
	post("network up")
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	post("partitioning", "writing")
	e.writing(macN01, tok, 1<<20)
	code, body = e.agent(http.MethodPost, "/api/agent/done", macN01, tok, agentapi.Done{})
	e.must(http.StatusConflict, code, body) // no digest: the plan has one; the attempt fails
	var got []string
	for {
		l, ok := next(t, lines)
		if !ok {
			break
		}
		got = append(got, l)
	}
	if strings.Join(got, "|") != "network up|partitioning|writing" {
		t.Errorf("followed log = %q", got)
	}
	// Without follow, the finished attempt's log.
	code, body = e.do(http.MethodGet, "/api/hosts/"+macN01+"/log", map[string]string{"Authorization": "Bearer " + adminTok}, nil)
	if code != http.StatusOK || body != "network up\npartitioning\nwriting\n" {
		t.Errorf("log = %d %q", code, body)
	}
	code, body = e.do(http.MethodGet, "/api/hosts/"+macN01+"/log?attempt=7", map[string]string{"Authorization": "Bearer " + adminTok}, nil)
	if code != http.StatusOK || body != "" {
		t.Errorf("log of an attempt that never ran = %d %q", code, body)
	}
}

func TestEventsSlowSubscriber(t *testing.T) {
	var ev Events
	ev.Buffer = 2
	slow := ev.Subscribe(nil)
	fast := ev.Subscribe(func(e Event) bool { return e.MAC == "b" })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			ev.Publish(Event{Type: EventProgress, MAC: "a"})
		}
		ev.Publish(Event{Type: EventProgress, MAC: "b"})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	if got := slow.Dropped(); got != 99 {
		t.Errorf("slow subscriber dropped %d, want 99 (queue of 2, 101 events)", got)
	}
	if e := <-fast.C; e.MAC != "b" || fast.Dropped() != 0 {
		t.Errorf("filtered subscriber got %+v, dropped %d", e, fast.Dropped())
	}
	slow.Close()
	slow.Close() // twice is fine
	ev.Close()
	if _, ok := <-fast.C; ok {
		t.Error("Close left a subscription open")
	}
	if _, ok := <-ev.Subscribe(nil).C; ok {
		t.Error("Subscribe after Close returned an open subscription")
	}
}

func TestEventsConcurrent(t *testing.T) {
	var ev Events
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				ev.Publish(Event{Type: EventState})
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				s := ev.Subscribe(nil)
				s.Close()
			}
		}()
	}
	wg.Wait()
	ev.Close()
}
