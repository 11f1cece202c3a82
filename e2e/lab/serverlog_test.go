package lab

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseLog(t *testing.T) {
	// The log is written by slog's own JSON handler, so the test follows
	// whatever the format is, not a copy of it.
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Info("answered", "mac", "52:54:00:77:00:01", "kind", "offer", "path", "undionly.kpxe")
	buf.WriteString("panic: not JSON\n{\"msg\":\"no time\"}\n{half a line")
	buf.WriteString("\n")
	log.WithGroup("req").Debug("script served", "path", "/ipxe", "status", 200, "ok", true)

	entries, err := ParseLog(&buf)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ Level, Msg, MAC, Kind, Path, Status, OK, Missing string }
	var got []row
	for _, e := range entries {
		if time.Since(e.Time) > time.Minute {
			t.Errorf("%s: time %v not parsed", e.Msg, e.Time)
		}
		if !strings.HasPrefix(e.Raw, "{") {
			t.Errorf("Raw = %q", e.Raw)
		}
		got = append(got, row{e.Level, e.Msg, e.Str("mac"), e.Str("kind"), e.Str("path") + e.Str("req.path"),
			e.Str("req.status"), e.Str("req.ok"), e.Str("req.path.deeper")})
	}
	want := []row{
		{Level: "INFO", Msg: "answered", MAC: "52:54:00:77:00:01", Kind: "offer", Path: "undionly.kpxe"},
		{Level: "DEBUG", Msg: "script served", Path: "/ipxe", Status: "200", OK: "true"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}
