package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/api"
)

// runVersions prints, per installed version ordered by number, how many
// machines run it and which: the fleet's patch level at one look.
func runVersions(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).versions(ctx, args)
}

func (c *cli) versions(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("versions", "rackboot versions [--json]")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) > 0 {
		fmt.Fprintf(c.stderr, "rackboot versions: unexpected argument %q\n", pos[0])
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("versions", err)
	}
	var vs []api.VersionCount
	raw, err := cl.get(ctx, "/api/versions", &vs)
	if err != nil {
		return c.fail("versions", err)
	}
	if *asJSON {
		if err := writeJSON(c.stdout, raw); err != nil {
			return c.fail("versions", err)
		}
		return 0
	}
	// The hosts give the machines their names; the lines, machines and
	// counts are the answer's, as --json prints it.
	hs, _, err := cl.hosts(ctx, nil)
	if err != nil {
		return c.fail("versions", err)
	}
	fmt.Fprint(c.stdout, versionTable(vs, hs))
	return 0
}

func versionTable(vs []api.VersionCount, hs []api.HostView) string {
	names := make(map[string]string, len(hs))
	for _, h := range hs {
		if h.Hostname != "" {
			names[h.MAC] = h.Hostname
		}
	}
	rows := [][]string{{"VERSION", "NUMBER", "MACHINES", "WHICH"}}
	for _, v := range vs {
		which := make([]string, 0, len(v.MACs))
		for _, m := range v.MACs {
			if n, ok := names[m]; ok {
				which = append(which, n)
			} else {
				which = append(which, m)
			}
		}
		name, number := v.Name, strconv.Itoa(v.Number)
		if v.Version.IsZero() { // the machines that run no version
			name, number = "(none)", "-"
		}
		rows = append(rows, []string{name, number, strconv.Itoa(v.Count), strings.Join(which, ", ")})
	}
	var b strings.Builder
	table(&b, "", rows)
	return b.String()
}
