package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rackboot/rackboot/api"
)

// runAppliances lists the appliances sharing the daemon's store: which
// are up, where their APIs are, which profiles they serve, which one
// leads.
func runAppliances(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).appliances(ctx, args)
}

func (c *cli) appliances(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("appliances", "rackboot appliances [--json]")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) > 0 {
		fmt.Fprintf(c.stderr, "rackboot appliances: unexpected argument %q\n", pos[0])
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("appliances", err)
	}
	var vs []api.ApplianceView
	raw, err := cl.get(ctx, "/api/appliances", &vs)
	if err != nil {
		return c.fail("appliances", err)
	}
	if *asJSON {
		if err := writeJSON(c.stdout, raw); err != nil {
			return c.fail("appliances", err)
		}
		return 0
	}
	fmt.Fprint(c.stdout, applianceTable(vs, time.Now()))
	return 0
}

// applianceTable is the text of `rackboot appliances`: one line each,
// this one marked, and a last line when their profiles differ.
func applianceTable(vs []api.ApplianceView, now time.Time) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APPLIANCE\tAPI\tPROFILES\tROLE\tVERSION\tUP")
	digests := map[string]bool{}
	for _, v := range vs {
		id := v.ID
		if v.Self {
			id += " (this one)"
		}
		role := "-"
		if v.Leader {
			role = "leader"
		}
		api := "-"
		if len(v.API) > 0 {
			api = strings.Join(v.API, ",")
		}
		prof := v.Profiles
		if len(prof) > 12 {
			prof = prof[:12]
		}
		digests[v.Profiles] = true
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id, api, orDash(prof), role, orDash(v.Version), now.Sub(v.Started).Round(time.Second))
	}
	tw.Flush()
	if len(digests) > 1 {
		fmt.Fprintf(&b, "the appliances serve %d different profiles: machines may get different answers depending on which appliance answers\n", len(digests))
	}
	return b.String()
}
