package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/rackboot/rackboot/registry"
)

// hostLog answers an attempt's agent log as text: ?attempt=ID, by default
// the running attempt, else the latest. With ?follow=1 it keeps streaming
// the attempt's new lines until the attempt ends (a pending host's next
// attempt is waited for), the client leaves or the server shuts down.
func (s *Server) hostLog(w http.ResponseWriter, r *http.Request) {
	v, ok := s.lookup(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	follow := q.Get("follow") == "1"
	id := registry.LogID(v.HostRecord)
	if follow && v.Current == nil && v.State == registry.StatePending {
		id = v.LastID + 1
	}
	if a := q.Get("attempt"); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "attempt: want an attempt ID")
			return
		}
		id = n
	}
	// Subscribe before reading the stored log, so no batch falls between
	// the two; batches seen twice are skipped by sequence number.
	var sub *Subscription
	if follow && s.Events != nil && awaited(v.HostRecord, id) {
		sub = s.Events.Subscribe(func(ev Event) bool {
			return ev.MAC == v.MAC && (ev.Type == EventLog || ev.Type == EventState)
		})
		defer sub.Close()
	}
	t, err := s.Registry.Store.Log(r.Context(), v.MAC, id, 0)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if t.Truncated {
		fmt.Fprintf(w, "[rackboot: the beginning of this log was dropped; rackboot keeps the last %d bytes]\n", registry.MaxLogBytes)
	}
	if writeLines(w, t.Lines) != nil || sub == nil {
		return
	}
	s.followLog(r.Context(), w, sub, v.MAC, id, t.Last)
}

// awaited reports whether attempt id of h is running or about to start:
// whether its log may still grow.
func awaited(h registry.HostRecord, id int) bool {
	if h.Current != nil {
		return h.Current.ID == id
	}
	return h.State == registry.StatePending && id == h.LastID+1
}

// followLog streams the batches after last until the attempt ends.
func (s *Server) followLog(ctx context.Context, w http.ResponseWriter, sub *Subscription, mac string, id, last int) {
	rc := http.NewResponseController(w)
	renew := streamDeadlines(rc)
	if rc.Flush() != nil {
		return
	}
	// catchUp reads what the stream missed (a queue overflow, a gap) from
	// the store.
	catchUp := func() bool {
		t, err := s.Registry.Store.Log(ctx, mac, id, last)
		if err != nil {
			s.log().Error("cannot follow log", "mac", mac, "err", err)
			return false
		}
		last = t.Last
		return writeLines(w, t.Lines) == nil
	}
	var dropped uint64
	for {
		var ev Event
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ev, ok = <-sub.C:
			if !ok {
				return // the server is shutting down
			}
		}
		renew() // the writes of this event, however many
		if d := sub.Dropped(); d != dropped {
			dropped = d
			if !catchUp() {
				return
			}
			if h, err := s.Registry.Store.Host(ctx, mac); err != nil || !awaited(h, id) {
				return
			}
		}
		switch data := ev.Data.(type) {
		case LogEvent:
			switch {
			case data.AttemptID != id || data.Seq <= last:
			case data.Seq == last+1:
				last = data.Seq
				if writeLines(w, data.Lines) != nil {
					return
				}
			default:
				if !catchUp() {
					return
				}
			}
		case StateEvent:
			if !awaited(data.Host, id) {
				catchUp()
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func writeLines(w io.Writer, lines []string) error {
	for _, l := range lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	return nil
}
