package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/power"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// powerControl is the appliance's side of power control (api.Power): it
// finds each host's BMC in its profile and the password in the
// credentials directory, runs package power over the hosts, and records
// every on, off and cycle in the host's history and the metrics
// (docs/DESIGN.md, "Power").
type powerControl struct {
	// credentials is the directory of the BMC password files
	// (serveConfig.bmcCredentials: never empty).
	credentials string
	stagger     time.Duration
	concurrency int
	timeout     time.Duration
	reg         *registry.Registry
	metrics     *metrics.Metrics
	log         *slog.Logger
}

// maxCredentialBytes bounds a password file: a password, not a document.
const maxCredentialBytes = 4096

// password reads a host's BMC password from its credential file, without
// the trailing newline an editor leaves. The error never holds the
// file's contents.
func (p *powerControl) password(name string) (string, error) {
	file := filepath.Join(p.credentials, name)
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("credential %s: %w", name, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialBytes+1))
	if err != nil {
		return "", fmt.Errorf("credential %s: %s is unreadable", name, file)
	}
	if len(b) > maxCredentialBytes {
		return "", fmt.Errorf("credential %s: %s is longer than %d bytes: not a password", name, file, maxCredentialBytes)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("credential %s: %s is empty", name, file)
	}
	return pw, nil
}

// target is the power.Target of a host, its password read now, so that a
// rotated password takes effect at the next operation.
func (p *powerControl) target(h *profiles.Host) (power.Target, error) {
	b := h.BMC
	if b == nil {
		return power.Target{}, errors.New("no bmc in its profile")
	}
	pw, err := p.password(b.Credential)
	if err != nil {
		return power.Target{}, err
	}
	return power.Target{Protocol: b.Protocol, Address: b.Address, Username: b.Username, Password: pw, System: b.System, InsecureTLS: b.InsecureTLS}, nil
}

// Run implements api.Power.
func (p *powerControl) Run(ctx context.Context, hosts []*profiles.Host, action string, netboot bool, opt api.PowerOptions, by string, each func(api.PowerResult)) []api.PowerResult {
	// Each try of an operation gets a third of the timeout, so that a BMC
	// that never answers costs the machine its timeout, retries included.
	plan := power.Plan{Concurrency: p.concurrency, Stagger: p.stagger, Config: power.Config{Timeout: max(p.timeout/3, time.Second), Retries: 2}}
	if opt.Stagger != nil {
		plan.Stagger = *opt.Stagger
	}
	if opt.Concurrency > 0 {
		plan.Concurrency = opt.Concurrency
	}
	out := make([]api.PowerResult, len(hosts))
	byKey := make(map[string]int, len(hosts))
	var jobs []power.Job
	for i, h := range hosts {
		mac := profiles.MACKey(h.MAC)
		byKey[mac] = i
		out[i] = api.PowerResult{MAC: mac, Hostname: h.Hostname, Action: action, NetBoot: netboot, State: string(power.StateUnknown)}
		t, err := p.target(h)
		if err != nil {
			now := time.Now().UTC()
			out[i].Kind, out[i].Error, out[i].Started, out[i].Finished = string(power.KindConfig), err.Error(), now, now
			p.record(ctx, h, out[i], by)
			if each != nil {
				each(out[i])
			}
			continue
		}
		jobs = append(jobs, power.Job{Key: mac, Target: t})
	}
	power.Run(ctx, jobs, power.Action(action), netboot, plan, func(r power.Result) {
		i := byKey[r.Key]
		res := &out[i]
		res.State, res.OK, res.Started, res.Finished = string(r.State), r.Err == nil, r.Started.UTC(), r.Finished.UTC()
		if r.Err != nil {
			res.Kind, res.Error = string(kindOf(r.Err)), r.Err.Error()
		}
		p.record(ctx, hosts[i], *res, by)
		if each != nil {
			each(*res)
		}
	})
	return out
}

// kindOf is the Kind of a power error.
func kindOf(err error) power.Kind {
	var pe *power.Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return power.KindBMC
}

// record keeps a result: metrics always, the host's history for what
// changes power (a status read is not an action).
func (p *powerControl) record(ctx context.Context, h *profiles.Host, r api.PowerResult, by string) {
	mac := profiles.MACKey(h.MAC)
	reached := r.OK || r.Kind == string(power.KindAuth) || r.Kind == string(power.KindBMC)
	if p.metrics != nil {
		p.metrics.PowerAction(mac, h.Hostname, r.Action, r.Kind, reached, r.State)
	}
	if !r.OK {
		p.log.Warn("power action failed", "mac", mac, "host", h.Hostname, "action", r.Action, "netboot", r.NetBoot, "kind", r.Kind, "err", r.Error, "by", by)
	}
	if r.Action == api.PowerStatus {
		return
	}
	a := registry.PowerAction{At: r.Started, By: by, Action: r.Action, NetBoot: r.NetBoot, Result: registry.PowerOK, State: r.State,
		Kind: r.Kind, Error: r.Error, DurationMS: r.Finished.Sub(r.Started).Milliseconds()}
	if !r.OK {
		a.Result = registry.PowerFailed
	}
	// The request may have ended (the admin pressed ^C): the action
	// happened all the same, and is recorded.
	if _, err := p.reg.RecordPower(context.WithoutCancel(ctx), h.MAC, h.Hostname, a); err != nil {
		p.log.Error("power action not recorded", "mac", mac, "err", err)
	}
}
