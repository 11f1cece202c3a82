package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/pki"
	"github.com/rackboot/rackboot/registry"
)

// Appliances sharing one store (docs/DESIGN.md, "Several appliances"):
// what they agree on through it (the install-token key, the admin token,
// the TLS CA), what they tell each other (who they are, where their
// agent APIs are, which profiles they serve, live events), and which of
// them drives the staged rollouts.

// Names of the shared secrets.
const (
	secretTokenKey   = "token-key"
	secretAdminToken = "admin-token"
	secretCA         = "tls-ca"
)

// How often an appliance reads the others' announcements; an appliance
// that died leaves the list within the store's lease (seconds).
const peerRefresh = 3 * time.Second

// shareSecrets makes this appliance use the secrets every appliance of
// the store uses: the install-token key (a token minted by one is
// accepted by all), the admin token (written to DATA/admin.token for the
// CLI) and, unless the operator gave a certificate, the CA that signs
// each appliance's HTTPS certificate (the agent trusts one CA, whichever
// appliance it talks to). The first appliance to start contributes its
// own; the others adopt them.
func shareSecrets(ctx context.Context, sh registry.Shared, cfg serveConfig, reg *registry.Registry, adminToken *string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	key, err := sh.Secret(ctx, secretTokenKey, func() ([]byte, error) { return registry.NewTokenKey() })
	if err != nil {
		return fmt.Errorf("shared install-token key: %w", err)
	}
	reg.Key = key
	tok, err := sh.Secret(ctx, secretAdminToken, func() ([]byte, error) { return []byte(*adminToken), nil })
	if err != nil {
		return fmt.Errorf("shared admin token: %w", err)
	}
	if string(tok) != *adminToken {
		if err := api.AdoptAdminToken(cfg.Data, string(tok)); err != nil {
			return err
		}
		log.Info("admin token: the shared one adopted (DATA/admin.token rewritten)")
		*adminToken = string(tok)
	}
	if cfg.TLSCert != "" {
		return nil
	}
	dir := filepath.Join(cfg.Data, tlsDir)
	bundle, err := sh.Secret(ctx, secretCA, func() ([]byte, error) { return pki.CABundle(dir, time.Now()) })
	if err != nil {
		return fmt.Errorf("shared TLS CA: %w", err)
	}
	changed, err := pki.AdoptCA(dir, bundle)
	if err != nil {
		return err
	}
	if changed {
		log.Info("tls: the shared CA adopted; this appliance's certificate is signed again under it")
	}
	return nil
}

// cluster is this appliance among those sharing its store. It is safe for
// concurrent use.
type cluster struct {
	store   registry.Shared
	metrics *metrics.Metrics
	log     *slog.Logger

	mu    sync.Mutex
	self  api.ApplianceView   // what it announces (Self is not sent)
	peers []api.ApplianceView // the others, as last read, by ID
	// peerURLs is firstAPIs(peers), what the scripts list.
	peerURLs []string
	dirty    chan struct{} // self changed: announce again
	differ   string        // why the profiles differ from a peer's, "" when they do not
}

func newCluster(sh registry.Shared, apis []string, m *metrics.Metrics, log *slog.Logger) *cluster {
	return &cluster{store: sh, metrics: m, log: log, dirty: make(chan struct{}, 1),
		self: api.ApplianceView{ID: sh.ID(), API: apis, Version: readVersionInfo().Version, Started: time.Now().UTC()}}
}

// setProfiles records the digest of the profiles now served.
func (c *cluster) setProfiles(digest string) {
	c.mu.Lock()
	c.self.Profiles = digest
	c.mu.Unlock()
	c.changed()
}

// setLeader records whether this appliance drives the rollouts.
func (c *cluster) setLeader(on bool) {
	c.mu.Lock()
	c.self.Leader = on
	c.mu.Unlock()
	c.changed()
}

func (c *cluster) changed() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// run announces this appliance, again whenever what it announces
// changes, and reads the others' announcements every peerRefresh, until
// ctx ends.
func (c *cluster) run(ctx context.Context) {
	t := time.NewTicker(peerRefresh)
	defer t.Stop()
	announced := false
	for {
		if !announced {
			announced = c.announce(ctx)
		}
		c.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-c.dirty:
			announced = false
		case <-t.C:
		}
	}
}

func (c *cluster) announce(ctx context.Context) bool {
	c.mu.Lock()
	b, err := json.Marshal(c.self)
	c.mu.Unlock()
	if err != nil {
		c.log.Error("cannot encode this appliance's announcement", "err", err)
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.store.Announce(ctx, b); err != nil {
		c.log.Warn("cannot announce this appliance in the shared store (tried again shortly)", "err", err)
		return false
	}
	return true
}

func (c *cluster) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	all, err := c.views(ctx)
	if err != nil {
		c.log.Warn("cannot read the other appliances' announcements", "err", err)
		return
	}
	peers := slices.DeleteFunc(all, func(v api.ApplianceView) bool { return v.Self })
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.differ
	c.peers = peers
	c.peerURLs = firstAPIs(peers)
	c.differ = profilesDiffer(c.self, peers)
	if c.differ != was {
		if c.differ != "" {
			c.log.Warn("this appliance's profiles differ from another's: machines may get different answers depending on which appliance answers them", "differ", c.differ)
		} else if was != "" {
			c.log.Info("profiles agree with every other appliance again")
		}
	}
	if c.metrics != nil {
		c.metrics.Appliances(len(peers)+1, c.differ != "")
	}
}

// profilesDiffer says which peers serve other profiles than self.
func profilesDiffer(self api.ApplianceView, peers []api.ApplianceView) string {
	var diff []string
	for _, p := range peers {
		if p.Profiles != "" && self.Profiles != "" && p.Profiles != self.Profiles {
			diff = append(diff, fmt.Sprintf("%s serves %.12s", p.ID, p.Profiles))
		}
	}
	if len(diff) == 0 {
		return ""
	}
	return fmt.Sprintf("profiles %.12s here; %s", self.Profiles, strings.Join(diff, ", "))
}

// profilesWarning is what /readyz says of the profiles of the appliances.
func (c *cluster) profilesWarning() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.differ
}

// peerAPIs are the other appliances' agent API URLs, one each (the
// first it announced), for the scripts' rackboot.server= list. Made once
// per refresh, not per script; callers must not change it.
func (c *cluster) peerAPIs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerURLs
}

// firstAPIs is each peer's first API URL, without repeats.
func firstAPIs(peers []api.ApplianceView) []string {
	var urls []string
	for _, p := range peers {
		if len(p.API) > 0 && !slices.Contains(urls, p.API[0]) {
			urls = append(urls, p.API[0])
		}
	}
	return urls
}

// rolloutsElsewhere names the appliance that drives the rollouts when it
// is not this one (api.Server.RolloutsElsewhere).
func (c *cluster) rolloutsElsewhere() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.self.Leader {
		return ""
	}
	for _, p := range c.peers {
		if p.Leader {
			api := ""
			if len(p.API) > 0 {
				api = " (" + p.API[0] + ")"
			}
			return fmt.Sprintf("staged rollouts are driven by appliance %s%s: run this against it (rackboot --server)", p.ID, api)
		}
	}
	return "staged rollouts are driven by one appliance of the shared store, and none leads right now: try again in a few seconds"
}

// lead runs work whenever this appliance leads, until ctx ends: work's
// context ends when the lead is lost, and work runs again once it is won
// back.
func (c *cluster) lead(ctx context.Context, work func(ctx context.Context)) {
	for ctx.Err() == nil {
		lctx, err := c.store.Lead(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("cannot campaign to drive the rollouts (tried again shortly)", "err", err)
				sleep(ctx, 2*time.Second)
			}
			continue
		}
		c.log.Info("this appliance leads: it drives the staged rollouts and the sweeps")
		c.setLeader(true)
		work(lctx)
		c.setLeader(false)
		if ctx.Err() == nil {
			c.log.Warn("this appliance no longer leads: its session with the store ended")
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// eventBus hands this appliance's live events to the others through the
// store, in batches (one store write per flushEvery at most, whatever the
// rate of progress reports), with each machine's progress coalesced to
// its latest report within a batch. It is best effort: a batch the store
// does not take is dropped and counted.
type eventBus struct {
	store   registry.Shared
	metrics *metrics.Metrics
	log     *slog.Logger

	mu       sync.Mutex
	pending  []api.Event
	progress map[string]int // MAC → index in pending of its progress event
	kick     chan struct{}
}

// Bounds of eventBus: the queue, a batch's encoded size (etcd takes
// requests up to 1.5 MiB), and how often it sends.
const (
	busQueue      = 20000
	busBatchBytes = 512 << 10
	busFlushEvery = 200 * time.Millisecond
)

func newEventBus(sh registry.Shared, m *metrics.Metrics, log *slog.Logger) *eventBus {
	return &eventBus{store: sh, metrics: m, log: log, progress: map[string]int{}, kick: make(chan struct{}, 1)}
}

// forward queues ev for the others (api.Events.Forward).
func (b *eventBus) forward(ev api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ev.Type == api.EventProgress {
		if i, ok := b.progress[ev.MAC]; ok {
			b.pending[i] = ev
			return
		}
	}
	if len(b.pending) >= busQueue {
		b.count("dropped", 1)
		return
	}
	if ev.Type == api.EventProgress {
		b.progress[ev.MAC] = len(b.pending)
	}
	b.pending = append(b.pending, ev)
}

func (b *eventBus) count(result string, n int) {
	if b.metrics != nil && n > 0 {
		b.metrics.SharedEvents(result, n)
	}
}

// run sends the queued events every busFlushEvery until ctx ends.
func (b *eventBus) run(ctx context.Context) {
	t := time.NewTicker(busFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		evs := b.pending
		b.pending = nil
		clear(b.progress)
		b.mu.Unlock()
		b.send(ctx, evs)
	}
}

// send publishes evs, split into batches under busBatchBytes.
func (b *eventBus) send(ctx context.Context, evs []api.Event) {
	if len(evs) == 0 {
		return
	}
	msg, err := api.EncodeEvents(evs)
	if err != nil {
		b.log.Error("cannot encode live events for the other appliances", "err", err)
		b.count("dropped", len(evs))
		return
	}
	if len(msg) > busBatchBytes && len(evs) > 1 {
		b.send(ctx, evs[:len(evs)/2])
		b.send(ctx, evs[len(evs)/2:])
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := b.store.Publish(pctx, msg); err != nil {
		b.log.Debug("live events not sent to the other appliances", "events", len(evs), "err", err)
		b.count("dropped", len(evs))
		return
	}
	b.count("sent", len(evs))
}

// receive delivers the other appliances' events to srv until ctx ends.
func (b *eventBus) receive(ctx context.Context, srv *api.Server) {
	for ctx.Err() == nil {
		err := b.store.Subscribe(ctx, func(from string, msg []byte) {
			evs, err := api.DecodeEvents(msg)
			if err != nil {
				b.log.Warn("live events from another appliance cannot be read", "appliance", from, "err", err)
				return
			}
			for _, ev := range evs {
				srv.Deliver(ev)
			}
			b.count("received", len(evs))
		})
		if ctx.Err() == nil {
			b.log.Warn("the other appliances' live events stopped (subscribing again)", "err", err)
			sleep(ctx, time.Second)
		}
	}
}

// views lists the appliances sharing the store as they announce
// themselves now, by ID, this one marked Self (api.Server.Appliances).
func (c *cluster) views(ctx context.Context) ([]api.ApplianceView, error) {
	all, err := c.store.Appliances(ctx)
	if err != nil {
		return nil, err
	}
	vs := make([]api.ApplianceView, 0, len(all))
	for id, b := range all {
		var v api.ApplianceView
		if err := json.Unmarshal(b, &v); err != nil {
			c.log.Warn("an appliance's announcement cannot be read", "appliance", id, "err", err)
			continue
		}
		v.ID, v.Self = id, id == c.store.ID()
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID })
	return vs, nil
}

// soleAppliance is api.Server.Appliances on an embedded store: this
// appliance alone, leading.
func soleAppliance(cfg serveConfig, ifaces []bootInterface, fl fleet) func(context.Context) ([]api.ApplianceView, error) {
	started := time.Now().UTC()
	return func(context.Context) ([]api.ApplianceView, error) {
		return []api.ApplianceView{{ID: defaultApplianceID(cfg, ifaces), API: agentAPIs(cfg, ifaces), Profiles: fl.Current().Digest(),
			Leader: true, Version: readVersionInfo().Version, Started: started, Self: true}}, nil
	}
}
