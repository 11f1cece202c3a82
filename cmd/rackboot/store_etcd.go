package main

import (
	"context"
	"log/slog"

	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore"
)

// openEtcd opens the etcd store of t as appliance id.
func openEtcd(ctx context.Context, cfg serveConfig, t *etcdTarget, id string, log *slog.Logger) (registry.Shared, error) {
	tc, err := storeTLS(cfg)
	if err != nil {
		return nil, err
	}
	return etcdstore.Open(ctx, etcdstore.Config{Endpoints: t.Endpoints, Prefix: t.Prefix, TLS: tc, ID: id, Logger: log.With("store", "etcd")})
}
