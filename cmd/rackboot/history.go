package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

// runHistory prints every install attempt of one machine, oldest first:
// what was installed, from which image and profile, when, and how it ended.
func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).history(ctx, args)
}

func (c *cli) history(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("history", "rackboot history MAC|HOSTNAME [--json]")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("history", err)
	}
	mac, err := cl.resolve(ctx, pos[0])
	if err != nil {
		return c.fail("history", err)
	}
	var hist []registry.Attempt
	raw, err := cl.get(ctx, "/api/hosts/"+mac+"/history", &hist)
	if err != nil {
		return c.fail("history", err)
	}
	if *asJSON {
		if err := writeJSON(c.stdout, raw); err != nil {
			return c.fail("history", err)
		}
		return 0
	}
	var h api.HostView
	if _, err := cl.get(ctx, "/api/hosts/"+mac, &h); err != nil {
		return c.fail("history", err)
	}
	fmt.Fprint(c.stdout, c.historyText(h, hist))
	return 0
}

// historyText is a line about the host, then one row per attempt.
func (c *cli) historyText(h api.HostView, hist []registry.Attempt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", machineLabel(h.MAC, h.Hostname), h.State)
	if !h.Since.IsZero() {
		fmt.Fprintf(&b, " since %s", stamp(h.Since, c.loc))
	}
	if !h.Version.IsZero() {
		fmt.Fprintf(&b, ", runs %s", versionString(h.Version))
	}
	b.WriteString("\n")
	if h.Reason != "" {
		fmt.Fprintf(&b, "  %s\n", oneLine(h.Reason))
	}
	if len(hist) == 0 {
		b.WriteString("no install attempt yet\n")
		b.WriteString(c.powerHistory(h))
		return b.String()
	}
	b.WriteString("\n")
	rows := [][]string{{"ID", "ATTEMPT", "VERSION", "IMAGE", "PROFILE", "STARTED", "FINISHED", "RESULT", "WRITTEN", "DURATION", "REASON", "ERROR"}}
	for _, a := range hist {
		result, finished, written, took := "running", "-", "-", "-"
		if a.Result != "" {
			result = string(a.Result)
		}
		if !a.Finished.IsZero() {
			finished = stamp(a.Finished, c.loc)
			// The same day need not be read twice.
			if s := stamp(a.Started, c.loc); !a.Started.IsZero() && s[:11] == finished[:11] {
				finished = finished[11:]
			}
		}
		if a.BytesWritten > 0 {
			written = humanBytes(a.BytesWritten)
		}
		if a.DurationMS > 0 {
			took = humanDuration(time.Duration(a.DurationMS) * time.Millisecond)
		}
		why := orDash(a.Reason)
		if a.WipeData != nil {
			why += " (wipe data)"
		}
		failure := a.Error
		if a.Phase != "" && failure != "" {
			failure = a.Phase + ": " + failure
		}
		rows = append(rows, []string{
			strconv.Itoa(a.ID), strconv.Itoa(a.Number), versionString(a.Version),
			shortDigest(a.ImageSHA256), shortDigest(a.ProfileDigest),
			stamp(a.Started, c.loc), finished, result, written, took,
			why, orDash(failure),
		})
	}
	table(&b, "", rows)
	var moved []string
	for _, a := range hist {
		// Without the plan's size no share is given: written and reused
		// overlap (a chunk copied from the seed is both).
		if t := transferText(a.BytesFetched, a.BytesFetchedPeers, a.BytesReused, a.ImageRawSize); t != "" {
			moved = append(moved, fmt.Sprintf("  ID %d: %s\n", a.ID, t))
		}
	}
	if len(moved) > 0 {
		b.WriteString("\nchunked images (fetched: compressed bytes over the network, from the appliance and from peers; reused: bytes the disk already had)\n")
		b.WriteString(strings.Join(moved, ""))
	}
	b.WriteString(c.powerHistory(h))
	return b.String()
}

// powerHistory lists the host's power actions through its BMC, oldest
// first, after its attempts.
func (c *cli) powerHistory(h api.HostView) string {
	if len(h.Power) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\npower actions through the BMC (%s)\n", orDash(h.BMC))
	rows := [][]string{{"AT", "ACTION", "RESULT", "POWER", "TOOK", "BY", "ERROR"}}
	for _, p := range h.Power {
		action := p.Action
		if p.NetBoot {
			action += " + netboot once"
		}
		failure := p.Error
		if p.Kind != "" && failure != "" {
			failure = p.Kind + ": " + failure
		}
		rows = append(rows, []string{stamp(p.At, c.loc), action, p.Result, orDash(p.State),
			humanDuration(time.Duration(p.DurationMS) * time.Millisecond), orDash(p.By), orDash(oneLine(failure))})
	}
	table(&b, "", rows)
	return b.String()
}
