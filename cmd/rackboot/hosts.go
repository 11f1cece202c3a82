package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

// runHosts lists the fleet with each machine's state and installed version.
// With --version-below it answers "which machines are not patched".
func runHosts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).hosts(ctx, args)
}

func (c *cli) hosts(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("hosts", "rackboot hosts [--state S] [--version-below N] [--label KEY=VALUE]... [--json]\n       rackboot hosts --state discovered --forget")
	state := fs.String("state", "", "only hosts in `state` discovered, pending, installing, installed or failed")
	below := fs.String("version-below", "", "only hosts whose installed version `number` is below N (not patched)")
	var labels []string
	fs.Var(&listFlag{list: &labels}, "label", "only hosts with label `KEY=VALUE` (repeatable; all must hold)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	forget := fs.Bool("forget", false, "with --state discovered: forget the discovered records (machines not in the profiles) and print how many")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) > 0 {
		fmt.Fprintf(c.stderr, "rackboot hosts: unexpected argument %q\n", pos[0])
		return 2
	}
	if *forget {
		return c.forgetDiscovered(ctx, cf, *state, *below != "" || len(labels) > 0 || *asJSON)
	}
	q := url.Values{}
	if *state != "" {
		if !registry.State(*state).Valid() {
			fmt.Fprintf(c.stderr, "rackboot hosts: --state %q: want discovered, pending, installing, installed or failed\n", *state)
			return 2
		}
		q.Set("state", *state)
	}
	if *below != "" {
		if _, err := strconv.Atoi(*below); err != nil {
			fmt.Fprintf(c.stderr, "rackboot hosts: --version-below %q: want a version number\n", *below)
			return 2
		}
		q.Set("version_below", *below)
	}
	for _, l := range labels {
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" {
			fmt.Fprintf(c.stderr, "rackboot hosts: --label %q: want KEY=VALUE\n", l)
			return 2
		}
		q.Add("label", l)
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("hosts", err)
	}
	hs, raw, err := cl.hosts(ctx, q)
	if err != nil {
		return c.fail("hosts", err)
	}
	if *asJSON {
		if err := writeJSON(c.stdout, raw); err != nil {
			return c.fail("hosts", err)
		}
		return 0
	}
	if len(hs) == 0 {
		fmt.Fprintln(c.stderr, "no host matches")
		return 0
	}
	fmt.Fprint(c.stdout, c.hostTable(hs))
	return 0
}

// forgetDiscovered is `rackboot hosts --state discovered --forget`: only
// discovered records can be forgotten this way, and all of them at once.
func (c *cli) forgetDiscovered(ctx context.Context, cf *clientFlags, state string, other bool) int {
	if state != string(registry.StateDiscovered) || other {
		fmt.Fprintln(c.stderr, "rackboot hosts: --forget goes with --state discovered alone: only discovered records can be forgotten")
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("hosts", err)
	}
	n, err := cl.forgetDiscovered(ctx)
	if err != nil {
		return c.fail("hosts", err)
	}
	word := "records"
	if n == 1 {
		word = "record"
	}
	fmt.Fprintf(c.stdout, "forgot %d discovered %s\n", n, word)
	return 0
}

// hostTable is one line per host: what an admin scans for a machine that
// is behind, stuck or failed.
func (c *cli) hostTable(hs []api.HostView) string {
	rows := [][]string{{"MAC", "HOSTNAME", "STATE", "VERSION", "ATTEMPT", "UPDATED"}}
	var held []string
	for _, h := range hs {
		attempt := "-"
		if h.Attempt > 0 {
			attempt = strconv.Itoa(h.Attempt)
		}
		state := string(h.State)
		if h.Held != "" {
			// Still pending in the registry; what an admin must see is
			// that it will not install until the catalog is fixed.
			state += " (held)"
			held = append(held, fmt.Sprintf("%s %s: held: %s", h.MAC, orDash(h.Hostname), h.Held))
		}
		if h.Rollout != "" {
			held = append(held, fmt.Sprintf("%s %s: rollout %s", h.MAC, orDash(h.Hostname), h.Rollout))
		}
		rows = append(rows, []string{h.MAC, orDash(h.Hostname), state, versionString(h.Version), attempt, stamp(h.UpdatedAt, c.loc)})
	}
	var b strings.Builder
	table(&b, "", rows)
	if len(held) > 0 {
		b.WriteString("\n")
		for _, l := range held {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
