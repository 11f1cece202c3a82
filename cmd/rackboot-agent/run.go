package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// agent runs one install attempt once the network is up: plan, disk,
// imaging, report. The system side (mounts, modules, network, reboot) is
// in main; this part runs on any machine, against image files in tests.
type agent struct {
	log      *slog.Logger
	con      *console
	api      *client
	progress *progress
	ship     *shipper

	// disks lists the candidate disks: imaging.Host{}.Disks.
	disks func() ([]imaging.Disk, error)
	// installer applies the plan, reporting its steps to progress and
	// downloading the image with the install token when the image is on
	// the appliance.
	installer *imaging.Installer
	// efi holds the machine's UEFI variables, where setBootEntry records
	// the installed system; nil on BIOS machines.
	efi efiVars
	// diskWait bounds the wait for the plan's disk to appear: drivers
	// probe disks asynchronously after their module is loaded.
	diskWait time.Duration
	// planRetry paces GET plan while the appliance cannot be reached.
	planRetry backoff
	// reportRetry paces the final report.
	reportRetry backoff
	// peers is the attempt's peer distribution, nil when its plan does
	// not turn it on; peerIdle and peerLinger (when > 0, instead of the
	// plan's) bound the serving after done.
	peers      *peerSession
	peerIdle   time.Duration
	peerLinger time.Duration
}

// newAgent returns an agent for the machine's disks, talking to api,
// with the production timings.
func newAgent(con *console, log *slog.Logger, api *client) *agent {
	prog := newProgress(con, time.Now)
	prog.post = api.progress
	a := &agent{
		log:         log,
		con:         con,
		api:         api,
		progress:    prog,
		ship:        &shipper{con: con, post: api.log},
		disks:       imaging.Host{}.Disks,
		diskWait:    30 * time.Second,
		planRetry:   backoff{first: time.Second, max: 15 * time.Second, total: 5 * time.Minute},
		reportRetry: backoff{first: time.Second, max: 10 * time.Second, total: 2 * time.Minute},
		peerIdle:    peerIdle,
	}
	a.installer = &imaging.Installer{
		Logger:   log,
		Progress: prog.Set,
		Source:   api.imageSource,
		Chunks:   a.chunkStore,
		Share:    a.share,
	}
	return a
}

// chunkStore is the installer's source of a chunked image: through the
// peers when the attempt takes part in peer distribution.
func (a *agent) chunkStore(img agentapi.Image) imaging.ChunkStore {
	if a.peers != nil {
		return a.peers.src
	}
	return a.api.chunkStore(img)
}

// share is the installer's Share: the peer session's, if any.
func (a *agent) share(ix *chunkstore.Index, off int64) (func(int), bool) {
	if a.peers == nil {
		return nil, false
	}
	return a.peers.share(ix, off)
}

// outcome is how an attempt ended, for the console and the reboot.
type outcome struct {
	Done   bool   // reported done and accepted
	State  string // the host's state as the appliance answered, if it did
	Reason string
}

// unreported marks a failure the appliance already knows about or would
// refuse to hear: it refused the token, or it had no plan (a 409 on GET
// plan already counted the attempt as failed).
type unreported struct{ err error }

func (e unreported) Error() string { return e.err.Error() }
func (e unreported) Unwrap() error { return e.err }

// isUnreported reports whether err must not be reported as failed.
func isUnreported(err error) bool {
	var u unreported
	return errors.As(err, &u)
}

// attempt fetches the plan, installs it and reports the result. The
// returned error has been reported as failed when the appliance would
// take it, and is unreported when it would not.
func (a *agent) attempt(ctx context.Context) (outcome, error) {
	res, err := a.fetchAndInstall(ctx)
	if a.peers != nil {
		defer a.peers.stop()
	}
	if err != nil {
		return a.reportFailed(ctx, a.progress.Phase(), err)
	}
	a.setPhase(agentapi.PhaseReport)
	d := agentapi.Done{}
	if res.Image != nil {
		d = agentapi.Done{SHA256: res.Image.SHA256, Bytes: res.Image.Written, DurationMS: res.Image.Duration.Milliseconds()}
	}
	if c := res.Chunked; c != nil {
		d.Written, d.Fetched, d.Reused = c.Written, c.Fetched, c.Reused()
		if a.peers != nil {
			d.FetchedPeers = min(a.peers.received(), d.Fetched)
		}
	}
	a.log.Info("install done, reporting", "phase", agentapi.PhaseReport, "bytes", d.Bytes, "sha256", d.SHA256,
		"fetched", d.Fetched, "fetched_peers", d.FetchedPeers, "reused", d.Reused)
	if res.Image != nil {
		// The appliance takes success only from an agent it heard
		// writing (registry.Done); the periodic reports may all have
		// missed a short write, so the final count goes first.
		final := agentapi.Progress{Phase: agentapi.PhaseImage, Done: d.Bytes, Total: d.Bytes, Fetched: d.Fetched, Reused: d.Reused, FetchedPeers: d.FetchedPeers}
		if err := a.reportRetry.do(ctx, a.log, "report the image written", func(ctx context.Context) error { return a.api.progress(ctx, final) }); err != nil {
			return outcome{}, fmt.Errorf("reporting the image written: %w", err)
		}
	}
	if a.peers != nil {
		a.peers.final(ctx)
	}
	a.progress.close()
	a.flushLog(ctx)
	a.con.close() // the token is spent once done is accepted
	var r agentapi.Result
	err = a.reportRetry.do(ctx, a.log, "report done", func(ctx context.Context) error {
		var err error
		r, err = a.api.done(ctx, d)
		return err
	})
	if err != nil {
		return outcome{}, fmt.Errorf("reporting done: %w", err)
	}
	out := outcome{Done: r.State == "installed", State: r.State, Reason: r.Reason}
	if a.peers != nil && out.Done {
		longest := time.Duration(a.peers.settings.LingerMS) * time.Millisecond
		if a.peerLinger > 0 {
			longest = a.peerLinger
		}
		a.peers.linger(ctx, a.con, a.peerIdle, longest)
	}
	return out, nil
}

func (a *agent) fetchAndInstall(ctx context.Context) (*imaging.Result, error) {
	a.setPhase(agentapi.PhasePlan)
	var p *agentapi.PlanResponse
	err := a.planRetry.do(ctx, a.log, "fetch plan", func(ctx context.Context) error {
		var err error
		p, err = a.api.plan(ctx)
		return err
	})
	var ae *apiError
	switch {
	case unauthorized(err):
		return nil, unreported{fmt.Errorf("the appliance refused this boot's install token (expired, spent by an earlier attempt, or not this machine's): %w", err)}
	case errors.As(err, &ae) && ae.Status == http.StatusConflict:
		return nil, unreported{fmt.Errorf("the appliance has no plan for this machine: %s", ae.Msg)}
	case err != nil:
		return nil, fmt.Errorf("fetching the plan: %w", err)
	}
	log := a.log.With("attempt", p.Attempt)
	log.Info("plan received", "phase", agentapi.PhasePlan, "host", p.Host, "version", p.Version.Name, "partitions", len(p.Plan.Partitions), "wipe_data", p.Plan.WipeData)
	if img := p.Plan.Image; img != nil {
		log.Info("image to install", "url", img.URL, "format", img.Format, "sha256", img.SHA256)
	}

	a.setPhase(agentapi.PhaseDisk)
	d, err := a.selectDisk(ctx, p.Plan.Disk)
	if err != nil {
		return nil, err
	}
	log.Info("disk selected", "phase", agentapi.PhaseDisk, "path", d.Path, "size", agentapi.Size(d.Size).String(),
		"sector_size", d.LogicalSectorSize, "model", d.Model, "serial", d.Serial)

	if img := p.Plan.Image; img != nil && img.Format == agentapi.FormatChunked && img.Peers != nil {
		a.peers = a.startPeers(ctx, *img, d.Path)
		a.progress.fromPeers(a.peers.received)
	}
	start := time.Now()
	res, err := a.installer.Install(ctx, &p.Plan, imaging.Target{Path: d.Path})
	if err != nil {
		return nil, err
	}
	log.Info("install finished", "took", time.Since(start).Round(time.Millisecond), "partitions", len(res.Partitions))
	if a.efi != nil {
		a.setBootEntry(log, p.Version.Name, res)
	}
	return res, nil
}

// selectDisk waits until a disk satisfies rule, up to diskWait: right
// after the storage drivers load, their disks are still being probed.
func (a *agent) selectDisk(ctx context.Context, rule agentapi.DiskRule) (imaging.Disk, error) {
	deadline := time.Now().Add(a.diskWait)
	logged := false
	for {
		disks, err := a.disks()
		if err == nil {
			var d imaging.Disk
			if d, err = imaging.SelectDisk(rule, disks); err == nil {
				return d, nil
			}
			// A too-small disk does not grow: fail at once.
			if errors.Is(err, imaging.ErrDiskTooSmall) {
				return imaging.Disk{}, err
			}
		}
		if time.Now().After(deadline) {
			return imaging.Disk{}, fmt.Errorf("no disk for the plan after %v: %w (disks seen: %s)", a.diskWait, err, diskNames(disks))
		}
		if !logged {
			a.log.Info("waiting for a disk", "phase", agentapi.PhaseDisk, "err", err)
			logged = true
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return imaging.Disk{}, err
		}
	}
}

func diskNames(disks []imaging.Disk) string {
	if len(disks) == 0 {
		return "none"
	}
	s := ""
	for i, d := range disks {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %s", d.Path, agentapi.Size(d.Size))
	}
	return s
}

// reportFailed tells the appliance the attempt failed, unless err says it
// must not, and returns err.
func (a *agent) reportFailed(ctx context.Context, phase agentapi.Phase, err error) (outcome, error) {
	a.log.Error("install failed", "phase", phase, "err", err)
	if isUnreported(err) {
		a.flushLog(ctx)
		a.con.close()
		return outcome{}, err
	}
	a.flushLog(ctx)
	a.con.close()
	rep := agentapi.Failed{Error: err.Error(), Phase: phase}
	var r agentapi.Result
	rerr := a.reportRetry.do(ctx, a.log, "report failure", func(ctx context.Context) error {
		var err error
		r, err = a.api.failed(ctx, rep)
		return err
	})
	if rerr != nil {
		a.con.Printf("could not report the failure to the appliance: %v", rerr)
		return outcome{}, err
	}
	return outcome{State: r.State, Reason: r.Reason}, err
}

func (a *agent) setPhase(phase agentapi.Phase) {
	a.progress.Set(imaging.Progress{Phase: phase})
}

// flushLog sends the queued log lines before a final report: once the
// attempt is reported, its token no longer takes log lines.
func (a *agent) flushLog(ctx context.Context) {
	if a.ship == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := a.ship.flush(ctx); err != nil {
		a.con.Printf("could not send the log to the appliance: %v", err)
	}
}

// backoff retries an operation while it fails with a retryable error:
// first, then doubling up to max between attempts, for at most total.
type backoff struct {
	first, max, total time.Duration
}

func (b backoff) do(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	deadline := time.Now().Add(b.total)
	wait := b.first
	for try := 1; ; try++ {
		err := f(ctx)
		if err == nil || !retryable(err) {
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%s: giving up after %d tries: %w", what, try, err)
		}
		log.Warn(what+" failed, retrying", "try", try, "wait", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, b.max)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
