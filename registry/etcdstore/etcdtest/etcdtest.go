// Package etcdtest gives tests a real etcd server: one embedded etcd
// (go.etcd.io/etcd/server/v3/embed) per test binary, on loopback ports
// picked at random, its data in a temporary directory, shared by every
// test through a fresh key prefix each. Only tests import it: embed adds
// about 14 MB and 42 modules to a binary.
//
// A package that uses it stops the server after its tests:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		etcdtest.Stop()
//		os.Exit(code)
//	}
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// startTimeout bounds the embedded server's start (measured 0.1–0.9 s).
const startTimeout = 30 * time.Second

var (
	mu        sync.Mutex
	server    *embed.Etcd
	dir       string
	endpoints []string
	prefixes  atomic.Uint64
	// stopping silences the servers' log while quietClose closes one:
	// its listeners report being closed as errors.
	stopping atomic.Bool
)

// logOutput is the servers' log output: stderr, except while one stops.
type logOutput struct{}

func (logOutput) Write(p []byte) (int, error) {
	if stopping.Load() {
		return len(p), nil
	}
	return os.Stderr.Write(p)
}

func (logOutput) Sync() error { return nil }

// Start returns the client endpoints of the test binary's embedded etcd,
// starting it at the first call. It fails tb when the server does not
// start.
func Start(tb testing.TB) []string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if server != nil {
		return endpoints
	}
	var err error
	for range 3 { // a port picked free may be taken before etcd binds it
		if err = start(); err == nil {
			return endpoints
		}
	}
	tb.Fatalf("etcdtest: %v", err)
	return nil
}

// Prefix returns a key prefix that no other call in this process returns,
// so each test has an empty store on the shared server.
func Prefix() string {
	return fmt.Sprintf("/rackboot-test/%d/", prefixes.Add(1))
}

// Stop stops the embedded server, if one was started, and removes its
// data.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if server == nil {
		return
	}
	quietClose(server)
	os.RemoveAll(dir)
	server, endpoints = nil, nil
}

// start starts the shared server; mu is held.
func start() error {
	e, d, eps, err := launch(nil)
	if err != nil {
		return err
	}
	server, dir, endpoints = e, d, eps
	return nil
}

// StartTLS starts an embedded etcd of tb's own that serves clients over
// TLS (certFile and keyFile, PEM) and requires client certificates signed
// by the CA in caFile, as the package etcdstore asks of production
// clusters. It returns the https endpoints and stops the server when tb
// ends.
func StartTLS(tb testing.TB, certFile, keyFile, caFile string) []string {
	tb.Helper()
	info := &transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: caFile, ClientCertAuth: true}
	var err error
	for range 3 {
		e, d, eps, lerr := launch(info)
		if err = lerr; err == nil {
			tb.Cleanup(func() {
				quietClose(e)
				os.RemoveAll(d)
			})
			return eps
		}
	}
	tb.Fatalf("etcdtest: %v", err)
	return nil
}

// launch starts an embedded etcd in a new temporary directory, serving
// clients over TLS when info is set.
func launch(info *transport.TLSInfo) (e *embed.Etcd, dir string, endpoints []string, err error) {
	d, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, "", nil, fmt.Errorf("make data directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(d)
		}
	}()
	ports, err := FreePorts(2)
	if err != nil {
		return nil, "", nil, err
	}
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	cfg := embed.NewConfig()
	if info != nil {
		client.Scheme = "https"
		cfg.ClientTLSInfo = *info
	}
	cfg.Dir = filepath.Join(d, "data")
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), logOutput{}, zapcore.ErrorLevel)))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err = embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err = <-e.Err():
		e.Close()
		return nil, "", nil, fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(startTimeout):
		e.Close()
		err = fmt.Errorf("embedded etcd not ready after %v", startTimeout)
		return nil, "", nil, err
	}
	return e, d, []string{client.String()}, nil
}

// quietClose stops e without the errors its listeners log when closed.
func quietClose(e *embed.Etcd) {
	stopping.Store(true)
	defer stopping.Store(false)
	e.Close()
}

// FreePorts returns n loopback TCP ports that were free a moment ago (for
// an etcd, embedded or not, that must be told its ports).
func FreePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
