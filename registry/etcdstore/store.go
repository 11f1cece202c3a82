package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rackboot/rackboot/registry"
)

// Defaults of Config's zero fields.
const (
	DefaultPrefix      = "/rackboot/"
	DefaultDialTimeout = 5 * time.Second
	DefaultCallTimeout = 5 * time.Second
	DefaultLeaseTTL    = 10 * time.Second
)

// Config says which etcd cluster to use and how. Its zero fields take the
// defaults above; Endpoints and ID are required.
type Config struct {
	// Endpoints are the client URLs of every etcd member
	// ("https://10.0.0.1:2379"): the client moves to another when one
	// fails or has no leader.
	Endpoints []string
	// Prefix is put before every key, so several fleets (or tests) can
	// share one cluster. A "/" is added when it does not end with one.
	Prefix string
	// TLS, when set, is used for every connection; it should carry a
	// client certificate, since the store holds secrets.
	TLS *tls.Config
	// ID names this appliance among those sharing the store (for example
	// its host name and port). It must not contain "/".
	ID string
	// DialTimeout is the etcd client's: it bounds the client's own first
	// exchanges and sets how long a lease keep-alive waits for an answer
	// (DialTimeout + 1 s). The client connects lazily: what proves etcd
	// reachable in Open is its first call, bounded by CallTimeout.
	DialTimeout time.Duration
	// CallTimeout bounds each call to etcd (a Store method may make a few,
	// more when it retries after a conflict).
	CallTimeout time.Duration
	// LeaseTTL is how long this appliance's presence and leadership outlive
	// it when it dies without closing the store. etcd rounds it up to whole
	// seconds, and to its own minimum (about 2 s by default).
	LeaseTTL time.Duration
	// Logger receives what the store cannot return (a lost lease, a
	// subscription re-opened); nil discards it.
	Logger *slog.Logger
}

// Store is the registry.Shared on etcd. It is safe for concurrent use; Close
// ends its lease (presence vanishes at once, leadership passes on) and its
// connections.
type Store struct {
	cfg    Config
	client *clientv3.Client
	// kv and watcher are the client's, replaced by tests to inject
	// failures.
	kv      clientv3.KV
	watcher clientv3.Watcher
	log     *slog.Logger
	ttl     int64 // LeaseTTL in whole seconds

	// ctx lives as long as the Store; stop cancels it in Close.
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup // lease keeper, leadership watchers, host cache

	hosts    hostCache   // what Host answers from while it is current
	hostSync atomic.Bool // syncHosts started

	mu      sync.Mutex
	lease   clientv3.LeaseID // presence lease, renewed by keepLease
	info    []byte           // last Announce, put again on a new lease
	closed  bool
	closeMu sync.Mutex // serialises Close

	busMu  sync.Mutex       // guards the three below (Publish)
	busID  clientv3.LeaseID // the short lease of published messages
	busAt  time.Time        // when busID was granted
	busSeq uint64
}

var _ registry.Shared = (*Store)(nil)

// errClosed is what a closed Store's methods return.
var errClosed = errors.New("etcdstore: store closed")

// Open connects to etcd, grants this appliance's lease and starts keeping
// it alive. It fails when no member grants the lease within CallTimeout
// (or before ctx ends).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcdstore: no endpoints")
	}
	if cfg.ID == "" || strings.Contains(cfg.ID, "/") {
		return nil, fmt.Errorf("etcdstore: appliance ID %q: want a non-empty name without /", cfg.ID)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         cfg.TLS,
		DialTimeout: cfg.DialTimeout,
		// The client logs on its own (zap JSON on stderr) unless told;
		// what matters reaches the caller as errors.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: connect to %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	sctx, stop := context.WithCancel(context.Background())
	s := &Store{
		cfg: cfg, client: c, kv: c.KV, watcher: c.Watcher, log: log,
		ttl: int64(math.Ceil(cfg.LeaseTTL.Seconds())),
		ctx: sctx, stop: stop,
		// Message keys of an earlier life of this ID may still exist:
		// start the sequence where they cannot be.
		busSeq: uint64(time.Now().UnixNano()),
	}
	lease, err := s.grant(ctx, s.ttl)
	if err != nil {
		stop()
		c.Close()
		return nil, err
	}
	s.lease = lease
	s.wg.Add(1)
	go s.keepLease(lease)
	return s, nil
}

// ID implements registry.Shared.
func (s *Store) ID() string { return s.cfg.ID }

// Close implements registry.Store. It revokes the lease (this appliance's
// entry and leadership go at once), stops the Store's goroutines and closes
// the connections. Closing twice is allowed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	s.mu.Lock()
	lease := s.lease // the keeper may have renewed it until it stopped
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	_, rerr := s.client.Revoke(ctx, lease)
	cancel()
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("etcdstore: close: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("etcdstore: revoke lease at close: %w", rerr)
	}
	return nil
}

// call returns the context of one etcd call: bounded by CallTimeout,
// refused at once by a member without a leader (so the client tries
// another instead of waiting for the deadline), and ended by Close (a
// closed client's calls otherwise linger in its retries).
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), s.cfg.CallTimeout)
	unhook := context.AfterFunc(s.ctx, cancel)
	return cctx, func() {
		unhook()
		cancel()
	}
}

// get reads key (with opts) under one call's deadline.
func (s *Store) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if s.ctx.Err() != nil {
		return nil, errClosed
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	r, err := s.kv.Get(cctx, key, opts...)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: read %s: %w", key, err)
	}
	return r, nil
}

// Keys. Attempt IDs and log sequence numbers are fixed-width hex, so
// etcd's byte order is their numeric order.

func (s *Store) hostKey(mac string) string { return s.cfg.Prefix + "hosts/" + mac }
func (s *Store) hostsPrefix() string       { return s.cfg.Prefix + "hosts/" }
func (s *Store) attemptsPrefix(mac string) string {
	return s.cfg.Prefix + "attempts/" + mac + "/"
}
func (s *Store) attemptKey(mac string, id int) string {
	return fmt.Sprintf("%s%016x", s.attemptsPrefix(mac), uint64(id))
}
func (s *Store) logIndexPrefix(mac string) string { return s.cfg.Prefix + "logidx/" + mac + "/" }
func (s *Store) logIndexKey(mac string, id int) string {
	return fmt.Sprintf("%s%016x", s.logIndexPrefix(mac), uint64(id))
}
func (s *Store) logsPrefix(mac string) string { return s.cfg.Prefix + "logs/" + mac + "/" }
func (s *Store) logPrefix(mac string, id int) string {
	return fmt.Sprintf("%s%016x/", s.logsPrefix(mac), uint64(id))
}
func (s *Store) logKey(mac string, id, seq int) string {
	return fmt.Sprintf("%s%08x", s.logPrefix(mac, id), uint32(seq))
}
func (s *Store) blobKey(key string) string    { return s.cfg.Prefix + "blobs/" + key }
func (s *Store) secretKey(name string) string { return s.cfg.Prefix + "secret/" + name }
func (s *Store) appliancesPrefix() string     { return s.cfg.Prefix + "appliances/" }
func (s *Store) busPrefix() string            { return s.cfg.Prefix + "bus/" }
