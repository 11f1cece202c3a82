package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/registry"
)

// readiness answers /readyz: 200 once the appliance can do its whole job
// (its sockets are bound, the profiles loaded, the store answers and the
// artifact check has finished a pass, so no host is held only because
// its image was not checked yet), 503 with what is missing before. It is
// distinct from /healthz, which answers as soon as the HTTP server runs:
// a load balancer or an orchestrator waits for /readyz, a liveness probe
// asks /healthz.
type readiness struct {
	store   registry.Store
	check   *catalogCheck
	metrics *metrics.Metrics
	// cluster, with a shared store, says whether this appliance's
	// profiles differ from another's.
	cluster *cluster
	// bound is set once every socket is bound and the profiles loaded
	// (serve sets it before it starts waiting on the servers).
	bound atomic.Bool
}

// readyReport is /readyz's body.
type readyReport struct {
	Ready bool `json:"ready"`
	// Checks maps each condition to "ok" or what is missing.
	Checks map[string]string `json:"checks"`
	// Warnings are what is wrong without making the appliance unready:
	// "profiles" when its profiles differ from another appliance's of a
	// shared store. That does not fail readiness: during a rolling
	// deploy of the profiles every appliance differs from another for a
	// while, and taking them all out of service would stop the fleet's
	// installs rather than protect them.
	Warnings map[string]string `json:"warnings,omitempty"`
}

// report checks every condition now.
func (r *readiness) report(ctx context.Context) readyReport {
	rep := readyReport{Ready: true, Checks: map[string]string{}}
	set := func(name, missing string) {
		if missing == "" {
			rep.Checks[name] = "ok"
			return
		}
		rep.Checks[name] = missing
		rep.Ready = false
	}
	if r.bound.Load() {
		set("sockets", "")
		set("profiles", "")
	} else {
		set("sockets", "not all bound yet")
		set("profiles", "not loaded yet")
	}
	switch {
	case r.store == nil:
		set("store", "not open")
	default:
		// One read of a key that is never a MAC: it answers not found
		// from an open store, quickly.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := r.store.Host(ctx, "readyz")
		cancel()
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			set("store", "cannot be read: "+err.Error())
		} else {
			set("store", "")
		}
	}
	if r.cluster != nil {
		if w := r.cluster.profilesWarning(); w != "" {
			rep.Warnings = map[string]string{"profiles": "differ from another appliance's: " + w}
		}
	}
	switch {
	case r.check == nil:
		set("artifacts", "not checked")
	case !r.check.Status().Checked:
		set("artifacts", "the first check of the catalog's artifacts is running")
	default:
		set("artifacts", "")
	}
	return rep
}

// update sets the rackboot_ready gauge.
func (r *readiness) update() {
	if r.metrics != nil {
		r.metrics.Ready(r.report(context.Background()).Ready)
	}
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rep := r.report(req.Context())
	if r.metrics != nil {
		r.metrics.Ready(rep.Ready)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	b, _ := json.Marshal(rep)
	w.Write(append(b, '\n'))
}

// notifyReady tells systemd (Type=notify) that the daemon serves. Outside
// systemd ($NOTIFY_SOCKET unset) it does nothing.
func notifyReady(log *slog.Logger) {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=serving; checking the catalog's artifacts"); err != nil {
		log.Warn("cannot notify systemd", "err", err)
	} else if ok {
		log.Debug("notified systemd: ready")
	}
}

// notifyStatus shows the artifact check's outcome in `systemctl status`.
func notifyStatus(log *slog.Logger, st catalogStatus) {
	msg := fmt.Sprintf("STATUS=serving; catalog: %d versions ok", st.OK)
	if st.Failed > 0 {
		msg += fmt.Sprintf(", %d failed the artifact check (their hosts are held: rackboot hosts)", st.Failed)
	}
	if st.Pending > 0 {
		msg += fmt.Sprintf(", %d being checked", st.Pending)
	}
	if _, err := daemon.SdNotify(false, msg); err != nil {
		log.Debug("cannot notify systemd", "err", err)
	}
}

// buildInfo is what rackboot_build_info says of this binary: what
// `rackboot version` says (versionInfo).
func buildInfo() metrics.BuildInfo {
	v := readVersionInfo()
	rev := v.Revision
	if v.Modified {
		rev = strings.TrimSpace(rev + " modified")
	}
	return metrics.BuildInfo{Version: v.Version, Revision: rev, GoVersion: v.Go}
}
