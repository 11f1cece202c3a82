package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rackboot/rackboot/api"
)

// runPower drives machines' power through their BMCs: status, on, off,
// cycle, with --netboot a one-time network boot first. The daemon does
// it (it holds the credentials) and records every action in the hosts'
// history; a selection is previewed and confirmed as reinstall's is.
func runPower(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).power(ctx, args)
}

// parseSelectors reads the --selector values of cmd (KEY=VALUE, repeated
// or comma-separated) into a map; nil when there are none. ok false: the
// error is printed, exit 2.
func parseSelectors(cmd string, values []string, stderr io.Writer) (map[string]string, bool) {
	var sel map[string]string
	for _, s := range values {
		for kv := range strings.SplitSeq(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				fmt.Fprintf(stderr, "rackboot %s: --selector %q: want KEY=VALUE\n", cmd, kv)
				return nil, false
			}
			if sel == nil {
				sel = map[string]string{}
			}
			sel[k] = v
		}
	}
	return sel, true
}

func (c *cli) power(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("power", "rackboot power status|on|off|cycle MAC|HOSTNAME... | --selector KEY=VALUE\n"+
		"         [--netboot] [--stagger DURATION] [--concurrency N] [--yes] [--dry-run] [--json]")
	var selectors []string
	fs.Var(&listFlag{list: &selectors}, "selector", "hosts with label `KEY=VALUE` (repeatable or comma-separated; all must hold)")
	netboot := fs.Bool("netboot", false, "with on or cycle: set a one-time boot from the network first (the machine PXE-boots once)")
	stagger := fs.Duration("stagger", -1, "least `duration` between two machines' actions (default: the appliance's --power-stagger)")
	concurrency := fs.Int("concurrency", 0, "most `machines` handled at once (default: the appliance's --power-concurrency)")
	yes := fs.Bool("yes", false, "act on the machines --selector matches without asking\n(required when stdin is not a terminal)")
	dryRun := fs.Bool("dry-run", false, "show which machines would be acted on; do nothing")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	req := api.PowerRequest{Action: pos[0], NetBoot: *netboot, Concurrency: *concurrency, By: c.user, DryRun: *dryRun}
	switch req.Action {
	case api.PowerStatus, api.PowerOn, api.PowerOff, api.PowerCycle:
	default:
		fmt.Fprintf(c.stderr, "rackboot power: %q: want status, on, off or cycle\n", req.Action)
		return 2
	}
	if *netboot && req.Action != api.PowerOn && req.Action != api.PowerCycle {
		fmt.Fprintln(c.stderr, "rackboot power: --netboot goes with on or cycle")
		return 2
	}
	if *stagger >= 0 {
		ms := stagger.Milliseconds()
		req.StaggerMS = &ms
	}
	sel, ok := parseSelectors("power", selectors, c.stderr)
	if !ok {
		return 2
	}
	req.Selector = sel
	if len(pos) == 1 && sel == nil {
		fs.Usage()
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("power", err)
	}
	hs, _, err := cl.hosts(ctx, nil)
	if err != nil {
		return c.fail("power", err)
	}
	for _, arg := range pos[1:] {
		mac, err := findHost(hs, arg)
		if err != nil {
			return c.fail("power", err)
		}
		req.MACs = append(req.MACs, mac)
	}
	if sel != nil && !*dryRun && req.Action != api.PowerStatus {
		preview := req
		preview.DryRun = true
		var pr api.PowerResponse
		if err := cl.post(ctx, "/api/power", preview, &pr); err != nil {
			return c.fail("power", err)
		}
		if len(pr.Results) == 0 {
			fmt.Fprintln(c.stderr, "rackboot power: the selection matches no machine")
			return 1
		}
		if !*yes {
			if code, ok := c.confirmPower(req, pr); !ok {
				return code
			}
		}
		req.Selector = nil
		req.MACs = nil
		for _, r := range pr.Results {
			req.MACs = append(req.MACs, r.MAC)
		}
	}
	var resp api.PowerResponse
	if err := cl.postLong(ctx, "/api/power", req, &resp); err != nil {
		return c.fail("power", err)
	}
	if *asJSON {
		b, err := json.Marshal(resp)
		if err == nil {
			err = writeJSON(c.stdout, b)
		}
		if err != nil {
			return c.fail("power", err)
		}
	} else {
		fmt.Fprint(c.stdout, powerText(req, resp))
	}
	code := 0
	for _, r := range resp.Results {
		if !r.OK {
			code = 1
		}
	}
	if len(resp.Skipped) > 0 || len(resp.Results) == 0 {
		code = 1 // a selection that matches no machine, as reinstall's
	}
	return code
}

// confirmPower asks before acting on a selection; ok false means stop
// with code.
func (c *cli) confirmPower(req api.PowerRequest, preview api.PowerResponse) (code int, ok bool) {
	n := len(preview.Results)
	if c.interactive == nil || !c.interactive() {
		fmt.Fprintf(c.stderr, "rackboot power: the selection matches %s; stdin is not a terminal to ask: give --yes (--dry-run lists them)\n", machineCount(n))
		return 2, false
	}
	for _, r := range preview.Results {
		fmt.Fprintf(c.stderr, "  %s  %s\n", r.MAC, orDash(r.Hostname))
	}
	fmt.Fprintf(c.stderr, "power %s %s? [y/N] ", req.Action, machineCount(n))
	answer, _ := bufio.NewReader(c.stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		fmt.Fprintln(c.stderr, "nothing done")
		return 1, false
	}
	return 0, true
}

// powerText is the answer of a power request as a table, one row per
// machine, failures with their kind and error.
func powerText(req api.PowerRequest, resp api.PowerResponse) string {
	var b strings.Builder
	what := req.Action
	if req.NetBoot {
		what += " with a one-time network boot"
	}
	failed := 0
	for _, r := range resp.Results {
		if !r.OK {
			failed++
		}
	}
	switch {
	case req.DryRun:
		fmt.Fprintf(&b, "dry run: would %s %s (nothing done)\n", what, machineCount(len(resp.Results)))
	case req.Action == api.PowerStatus:
		fmt.Fprintf(&b, "power status of %s", machineCount(len(resp.Results)))
	default:
		fmt.Fprintf(&b, "power %s: %s", what, machineCount(len(resp.Results)))
	}
	if !req.DryRun {
		if failed > 0 {
			fmt.Fprintf(&b, ", %d failed", failed)
		}
		b.WriteString("\n")
	}
	rows := [][]string{{"MAC", "HOSTNAME", "POWER", "RESULT", "TOOK"}}
	for _, r := range resp.Results {
		result := "ok"
		if !r.OK {
			result = r.Kind + ": " + oneLine(r.Error)
		}
		took := "-"
		if !r.Finished.IsZero() {
			took = r.Finished.Sub(r.Started).Round(10 * time.Millisecond).String()
		}
		rows = append(rows, []string{r.MAC, orDash(r.Hostname), r.State, result, took})
	}
	if len(resp.Results) > 0 {
		table(&b, "  ", rows)
	}
	for _, s := range resp.Skipped {
		fmt.Fprintf(&b, "skipped %s: %s\n", s.MAC, oneLine(s.Reason))
	}
	return b.String()
}
