package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rackboot/rackboot/profiles"
)

// heartbeat keeps an idle event stream alive through proxies and NAT, and
// lets the server notice a client that left.
const heartbeat = 15 * time.Second

// streamStall is how long one write of a stream (events, a followed log)
// may wait for its client to read. A stream outlives the server's write
// timeout, but a client that stops reading is dropped once its socket
// buffers are full and this has passed.
const streamStall = 60 * time.Second

// streamDeadlines readies a long response: it clears the read deadline (the
// server's ReadTimeout would cancel the request's context mid-stream; a
// GET has no body to wait for) and returns the function that gives the
// next write streamStall. Call it before each write, not before a wait.
func streamDeadlines(rc *http.ResponseController) (renew func()) {
	_ = rc.SetReadDeadline(time.Time{})
	renew = func() { _ = rc.SetWriteDeadline(time.Now().Add(streamStall)) }
	renew()
	return renew
}

// events streams server-sent events (HTML Living Standard, section 9.2):
// "progress" (a ProgressEvent) and "state" (a StateEvent), for ?mac= only
// when given, "log" (a LogEvent) with ?log=1, and without ?mac= "rollout"
// (a RolloutEvent). A subscriber too slow
// to keep up loses events and is told so by a "dropped" event with the
// count so far; it should then re-read /api/hosts.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.Events == nil {
		writeError(w, http.StatusServiceUnavailable, "live events are not enabled")
		return
	}
	q := r.URL.Query()
	var mac string
	if m := q.Get("mac"); m != "" {
		hw, err := profiles.ParseMAC(m)
		if err != nil {
			writeError(w, http.StatusBadRequest, "mac: not a MAC address")
			return
		}
		mac = hw.String()
	}
	logs := q.Get("log") == "1"
	sub := s.Events.Subscribe(func(ev Event) bool {
		return (mac == "" || ev.MAC == mac) && (ev.Type != EventLog || logs)
	})
	defer sub.Close()

	rc := http.NewResponseController(w)
	renew := streamDeadlines(rc)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx in front must not buffer the stream
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": rackboot events\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	var dropped uint64
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			renew()
			_, err = fmt.Fprint(w, ": ping\n\n")
		case ev, ok := <-sub.C:
			if !ok {
				return // the server is shutting down
			}
			renew()
			if d := sub.Dropped(); d != dropped {
				dropped = d
				_, err = fmt.Fprintf(w, "event: dropped\ndata: {\"count\": %d}\n\n", d)
			}
			if err == nil {
				err = writeEvent(w, ev)
			}
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}

// writeEvent writes one event. JSON never holds a raw newline, so the data
// is one "data:" line.
func writeEvent(w http.ResponseWriter, ev Event) error {
	b, err := json.Marshal(ev.Data)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, b)
	return err
}
