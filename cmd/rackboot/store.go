package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/registry"
)

// storeBolt is --store's default: the registry in DATA/registry.db.
const storeBolt = "bolt"

// defaultEtcdPrefix is where an etcd store keeps rackboot's keys when
// --store names no prefix.
const defaultEtcdPrefix = "/rackboot/"

// etcdTarget is an etcd --store parsed.
type etcdTarget struct {
	// Endpoints are the members' client URLs, http:// or, with
	// --store-ca, https://.
	Endpoints []string
	// Prefix is the key prefix, with a slash at each end.
	Prefix string
}

// storeTarget parses --store: nil for bolt, the etcd cluster otherwise.
// TLS to etcd is --store-ca with --store-cert and --store-key: every key
// of the registry and the shared secrets (docs/DESIGN.md, "Several
// appliances") live there, so a cluster without client certificates is
// for a lab only.
func (c *serveConfig) storeTarget() (*etcdTarget, error) {
	if c.Store == "" || c.Store == storeBolt {
		if c.StoreCA != "" || c.StoreCert != "" || c.StoreKey != "" {
			return nil, errors.New("store-ca, store-cert and store-key are for an etcd store (--store etcd://…)")
		}
		return nil, nil
	}
	rest, ok := strings.CutPrefix(c.Store, "etcd://")
	if !ok {
		return nil, fmt.Errorf("store %q: want bolt or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]", c.Store)
	}
	hosts, prefix, _ := strings.Cut(rest, "/")
	prefix = "/" + strings.Trim(prefix, "/") + "/"
	if prefix == "//" {
		prefix = defaultEtcdPrefix
	}
	if strings.ContainsAny(prefix, " \t\n?#%") {
		return nil, fmt.Errorf("store %q: prefix %q: want plain path characters", c.Store, prefix)
	}
	if (c.StoreCert == "") != (c.StoreKey == "") {
		return nil, errors.New("store-cert and store-key go together")
	}
	if c.StoreCert != "" && c.StoreCA == "" {
		return nil, errors.New("store-cert needs store-ca: the CA that signed the etcd members' certificates")
	}
	scheme := "http://"
	if c.StoreCA != "" {
		scheme = "https://"
	}
	t := &etcdTarget{Prefix: prefix}
	seen := map[string]bool{}
	for _, hp := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" {
			return nil, fmt.Errorf("store %q: member %q: want HOST:PORT", c.Store, hp)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("store %q: member %q: not a port", c.Store, hp)
		}
		if seen[hp] {
			return nil, fmt.Errorf("store %q: member %q named twice", c.Store, hp)
		}
		seen[hp] = true
		t.Endpoints = append(t.Endpoints, scheme+hp)
	}
	return t, nil
}

// openStore opens the registry's store: bolt in DATA, or the etcd cluster
// of --store, which is also returned as shared.
func openStore(ctx context.Context, cfg serveConfig, ifaces []bootInterface, log *slog.Logger) (store registry.Store, shared registry.Shared, err error) {
	t, err := cfg.storeTarget()
	if err != nil {
		return nil, nil, err
	}
	if t == nil {
		s, err := registry.OpenBolt(filepath.Join(cfg.Data, "registry.db"))
		return s, nil, err
	}
	id := cfg.ApplianceID
	if id == "" {
		id = defaultApplianceID(cfg, ifaces)
	}
	sh, err := openEtcd(ctx, cfg, t, id, log)
	if err != nil {
		return nil, nil, fmt.Errorf("store %s: %w", cfg.Store, err)
	}
	log.Info("registry on etcd, shared with the other appliances", "endpoints", t.Endpoints, "prefix", t.Prefix, "appliance", id, "tls", cfg.StoreCA != "")
	return sh, sh, nil
}

// defaultApplianceID is the advertised address and HTTPS port: unique
// among appliances that machines can reach.
func defaultApplianceID(cfg serveConfig, ifaces []bootInterface) string {
	ip := cfg.Advertise
	if ip == "" && len(ifaces) > 0 {
		ip = ifaces[0].Advertise.String()
	}
	return net.JoinHostPort(ip, strconv.Itoa(cfg.HTTPSPort))
}

// agentAPIs are this appliance's agent API URLs, the advertised address
// first, then each boot interface's.
func agentAPIs(cfg serveConfig, ifaces []bootInterface) []string {
	var urls []string
	add := func(ip string) {
		u := "https://" + net.JoinHostPort(ip, strconv.Itoa(cfg.HTTPSPort))
		if ip != "" && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	add(cfg.Advertise)
	for _, bi := range ifaces {
		add(bi.Advertise.String())
	}
	return urls
}

// storeTLS is the TLS configuration of --store-ca, --store-cert and
// --store-key, or nil without --store-ca.
func storeTLS(cfg serveConfig) (*tls.Config, error) {
	if cfg.StoreCA == "" {
		return nil, nil
	}
	ca, err := os.ReadFile(cfg.StoreCA)
	if err != nil {
		return nil, fmt.Errorf("store-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("store-ca %s: no PEM certificate", cfg.StoreCA)
	}
	c := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cfg.StoreCert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.StoreCert, cfg.StoreKey)
		if err != nil {
			return nil, fmt.Errorf("store-cert %s and store-key %s: %w", cfg.StoreCert, cfg.StoreKey, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
