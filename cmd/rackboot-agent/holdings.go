package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
)

// holdings posts the agent's holdings report.
func (c *client) holdings(ctx context.Context, h agentapi.Holdings) (agentapi.HoldingsReply, error) {
	var r agentapi.HoldingsReply
	err := c.do(ctx, http.MethodPost, agentapi.PathHoldings, h, &r)
	return r, err
}

// holdingsReporter tells the appliance, every interval it asks for, what
// the agent holds of the image it installs and which peers failed it
// (docs/DESIGN.md, "Peer distribution"); the peer session starts it when
// the assembly starts.
type holdingsReporter struct {
	post  func(context.Context, agentapi.Holdings) (agentapi.HoldingsReply, error)
	image string // the plan's Image.SHA256
	port  int    // the chunk server's; 0: serves nothing
	held  *imaging.HeldChunks
	// minInterval bounds the appliance's interval from below. Default
	// 500 ms.
	minInterval time.Duration

	mu     sync.Mutex
	failed []agentapi.PeerFailure // not yet reported
}

// errStopServing ends the reports: the appliance says the agent may
// stop serving (HoldingsReply.Serve false), does not take reports (404:
// peer distribution off), or no longer takes its token (401: the
// install ended).
var errStopServing = errors.New("the appliance needs no more chunks from this machine")

// failure records a peer that failed (imaging.PeerChunks.OnPeerFailure),
// once per peer and kind until reported, at most MaxPeerFailures.
func (r *holdingsReporter) failure(f agentapi.PeerFailure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.failed {
		if g == f {
			return
		}
	}
	if len(r.failed) < agentapi.MaxPeerFailures {
		r.failed = append(r.failed, f)
	}
}

// send posts one report: the bitmap as it is now, and the failures not
// yet reported, kept for the next report when this one fails.
func (r *holdingsReporter) send(ctx context.Context) (agentapi.HoldingsReply, error) {
	r.mu.Lock()
	failed := r.failed
	r.failed = nil
	r.mu.Unlock()
	reply, err := r.post(ctx, agentapi.Holdings{Image: r.image, Port: r.port, Have: r.held.Bitmap(), Failed: failed})
	if err != nil {
		for _, f := range failed {
			r.failure(f)
		}
	}
	return reply, err
}

// once sends one report now, besides the periodic ones.
func (r *holdingsReporter) once(ctx context.Context) (agentapi.HoldingsReply, error) {
	return r.send(ctx)
}

// run reports until ctx ends (nil) or the appliance says to stop
// (errStopServing). A report that fails otherwise is sent again at the
// next tick, with its failures.
func (r *holdingsReporter) run(ctx context.Context) error {
	floor := r.minInterval
	if floor <= 0 {
		floor = 500 * time.Millisecond
	}
	interval := 2 * time.Second
	for {
		reply, err := r.send(ctx)
		var ae *apiError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusUnauthorized):
			return errStopServing
		case err != nil:
		case !reply.Serve:
			return errStopServing
		default:
			interval = min(max(time.Duration(reply.IntervalMS)*time.Millisecond, floor), time.Minute)
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return nil
		}
	}
}
