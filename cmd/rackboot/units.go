package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/rackboot/rackboot/registry"
)

// humanBytes prints n bytes with a binary unit and three significant
// digits: "912 KiB", "1.50 GiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	unit := ""
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= 1024
		unit = u
		if f < 1024 {
			break
		}
	}
	switch {
	case f < 10:
		return fmt.Sprintf("%.2f %s", f, unit)
	case f < 100:
		return fmt.Sprintf("%.1f %s", f, unit)
	}
	return fmt.Sprintf("%.0f %s", f, unit)
}

// humanRate prints a rate in bytes per second.
func humanRate(r float64) string {
	if r <= 0 {
		return "-"
	}
	return humanBytes(int64(r)) + "/s"
}

// humanDuration prints d to the second, the way a person reads an install
// time: "45s", "4m05s", "1h02m".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// stamp prints t in loc to the second, "-" when t is zero.
func stamp(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format("2006-01-02 15:04:05")
}

// versionString prints a version as "name (number)", "-" when none.
func versionString(v registry.Version) string {
	if v.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%d)", v.Name, v.Number)
}

// shortDigest cuts a hex digest to 12 characters, enough to tell images apart
// and to grep for in a full listing.
func shortDigest(digest string) string {
	digest = strings.TrimPrefix(digest, "sha256:")
	if digest == "" {
		return "-"
	}
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// orDash prints "-" for an empty cell, so columns stay aligned and
// readable by awk.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return oneLine(s)
}

// transferText says how much of a chunked image came over the network
// (of it, peers bytes from peers) and how much the disk already had, of
// an image of size bytes (0: unknown): "fetched 38.0 MiB (31.2 MiB from
// peers) of 1.20 GiB, 97 % reused". It is empty when neither is known: a
// streamed image reports neither.
func transferText(fetched, peers, reused, size int64) string {
	if fetched <= 0 && reused <= 0 {
		return ""
	}
	s := "fetched " + humanBytes(fetched)
	if peers > 0 {
		s += " (" + humanBytes(peers) + " from peers)"
	}
	if size > 0 {
		return s + " of " + humanBytes(size) + fmt.Sprintf(", %d %% reused", percentOf(reused, size))
	}
	return s + ", " + humanBytes(reused) + " reused"
}
