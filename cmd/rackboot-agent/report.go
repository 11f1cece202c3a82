package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
)

// reportInterval is how often the agent sends its log and its progress:
// often enough to watch an install live, rarely enough to cost nothing.
const reportInterval = time.Second

// shipper sends the console's queued log lines to the appliance in
// batches.
type shipper struct {
	con  *console
	post func(ctx context.Context, l agentapi.Log) error

	mu      sync.Mutex // one batch at a time, so lines arrive in order
	refused bool       // the appliance refused the token: stop trying
	// unanswered is the batch whose sending failed: the appliance may
	// have stored it and died before answering. It is sent again first,
	// as it was, marked Again, so that the appliance that gets it stores
	// it no second time.
	unanswered []string
}

// maxBatch keeps each POST within the API's limits (10000 lines, 1 MiB).
const maxBatch = 2000

// run flushes every interval until ctx ends.
func (s *shipper) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.flush(ctx)
		}
	}
}

// flush sends what is queued. Lines that could not be sent go back to the
// queue for the next flush, unless the appliance refused them for good.
func (s *shipper) flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := s.con.take()
	if s.refused {
		return nil
	}
	if len(s.unanswered) > 0 {
		if err := s.send(ctx, agentapi.Log{Lines: s.unanswered, Again: true}); err != nil {
			s.con.putBack(lines)
			return err
		}
	}
	for len(lines) > 0 {
		n := min(len(lines), maxBatch)
		if err := s.send(ctx, agentapi.Log{Lines: lines[:n:n]}); err != nil {
			s.con.putBack(lines[n:])
			return err
		}
		lines = lines[n:]
	}
	return nil
}

// send posts one batch. A batch that fails with a retryable error is kept
// as unanswered; one refused for good is dropped (a 401: the attempt
// ended; another 4xx: resending the same lines cannot fix it), the
// console still shows it.
func (s *shipper) send(ctx context.Context, l agentapi.Log) error {
	err := s.post(ctx, l)
	switch {
	case err == nil:
		s.unanswered = nil
	case retryable(err):
		s.unanswered = l.Lines
	default:
		s.unanswered = nil
		s.refused = unauthorized(err)
	}
	return err
}

// progress keeps the install's latest progress, prints it on the console
// and sends it to the appliance at most once per interval. Set is called
// from the imaging goroutines and returns at once.
type progress struct {
	con  *console
	post func(ctx context.Context, p agentapi.Progress) error
	now  func() time.Time

	mu      sync.Mutex
	cur     imaging.Progress
	sent    bool // cur was sent
	shown   bool // cur was printed
	printed time.Time
	// peers, if set, is the compressed bytes fetched from peers so far
	// (the attempt's peer session): part of the image's Fetched.
	peers func() int64
	// closed ends the periodic reports: done spends the token.
	closed bool
}

// close ends the periodic reports before the final one (done).
func (p *progress) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
}

// fromPeers makes the reports say how much of Fetched came from peers.
func (p *progress) fromPeers(f func() int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peers = f
}

func newProgress(con *console, now func() time.Time) *progress {
	return &progress{con: con, now: now, sent: true, shown: true}
}

// Set records p. The console gets a line when the phase changes and at
// most once per reportInterval otherwise.
func (p *progress) Set(pr imaging.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	newPhase := pr.Phase != p.cur.Phase
	if newPhase && !p.shown && p.cur.Phase != "" {
		// The last report of a phase (the stream's final count) came
		// too soon after the one before to be shown: show it now.
		p.con.Printf("%s", progressLine(p.cur))
	}
	p.cur, p.sent, p.shown = pr, false, false
	if newPhase || now.Sub(p.printed) >= reportInterval {
		p.con.Printf("%s", progressLine(pr))
		p.printed, p.shown = now, true
	}
}

// Phase returns the current phase, for a failure report.
func (p *progress) Phase() agentapi.Phase {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur.Phase
}

// run sends the latest progress every interval, when it changed, until
// ctx ends. Progress is best effort: a report that fails is superseded by
// the next one.
func (p *progress) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		cur, sent, peers, closed := p.cur, p.sent, p.peers, p.closed
		p.sent = true
		p.mu.Unlock()
		if sent || closed || cur.Phase == "" || p.post == nil {
			continue
		}
		var fromPeers int64
		if peers != nil && cur.Fetched > 0 {
			fromPeers = min(peers(), cur.Fetched)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		p.post(rctx, agentapi.Progress{Phase: cur.Phase, Done: cur.Done, Total: cur.Total, Rate: cur.Rate, Fetched: cur.Fetched, Reused: cur.Reused, FetchedPeers: fromPeers})
		cancel()
	}
}

// progressLine renders one progress line for the console:
//
//	progress image 45% 120.0 MiB of 268.4 MiB at 35.2 MiB/s
func progressLine(p imaging.Progress) string {
	s := "progress " + string(p.Phase)
	switch {
	case p.Total > 0:
		s += fmt.Sprintf(" %d%% %s of %s", p.Done*100/p.Total, mibString(p.Done), mibString(p.Total))
	case p.Done > 0:
		s += " " + mibString(p.Done)
	}
	switch {
	case p.Reused > 0 || p.Fetched > 0:
		s += fmt.Sprintf(" (%s fetched, %s reused from the disk)", mibString(p.Fetched), mibString(p.Reused))
	case p.Received > 0:
		s += fmt.Sprintf(" (%s received)", mibString(p.Received))
	}
	if p.Rate > 0 {
		s += fmt.Sprintf(" at %s/s", mibString(int64(p.Rate)))
	}
	return s
}

func mibString(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
