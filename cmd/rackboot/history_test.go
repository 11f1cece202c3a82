package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/registry"
)

func TestHistory(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	tests := []struct {
		name   string
		args   []string
		golden string
	}{
		{"a failure then a success", []string{macN02}, "history-r1-n02"},
		{"by hostname, flags last", []string{"r1-n02"}, "history-r1-n02"},
		{"MAC in another spelling", []string{"5254.0077.0002"}, "history-r1-n02"},
		{"running", []string{"r1-s01"}, "history-r1-s01"},
		{"never seen", []string{"r2-n02"}, "history-r2-n02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, stdout, stderr := e.cli()
			if code := runCmd(c, (*cli).history, tt.args...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden(t, tt.golden, stdout.String())
		})
	}
}

func TestHistoryJSON(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	c, stdout, stderr := e.cli()
	if code := runCmd(c, (*cli).history, "r1-n02", "--json"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var hist []registry.Attempt
	if err := json.Unmarshal([]byte(stdout.String()), &hist); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	var got []registry.Result
	for _, a := range hist {
		got = append(got, a.Result)
	}
	if diff := cmp.Diff([]registry.Result{registry.ResultFailed, registry.ResultSuccess}, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

func TestHistoryErrors(t *testing.T) {
	e := newAdminEnv(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown MAC", []string{macOut}, 1, "rackboot history: 404: no such host: " + macOut + "\n"},
		{"unknown name", []string{"nosuchhost"}, 1, "rackboot history: \"nosuchhost\" is neither a MAC address nor the hostname of a known host\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, stderr := e.cli()
			if code := runCmd(c, (*cli).history, tt.args...); code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if diff := cmp.Diff(tt.want, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
	c, _, _ := e.cli()
	if code := runCmd(c, (*cli).history); code != 2 {
		t.Errorf("no MAC: exit %d, want 2", code)
	}
}

// TestHistoryChunked: an attempt that installed a chunked image says what
// it fetched (and how much of that came from peers) and how much of the
// image its disk already had.
func TestHistoryChunked(t *testing.T) {
	e := newAdminEnv(t)
	const mac = "52:54:00:77:00:03" // r1-n03
	e.boot(mac)
	ctx := context.Background()
	sha := strings.Repeat("4", 64)
	if _, err := e.reg.Start(ctx, mustMAC(mac), e.tokens[mac], registry.Install{Version: registry.Version{Name: "demo-1.1", Number: 11},
		ImageSHA256: sha, ImageRawSize: 1229 << 20, ProfileDigest: strings.Repeat("c0", 32)}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	if err := e.reg.Writing(ctx, mustMAC(mac), e.tokens[mac]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Done(ctx, mustMAC(mac), e.tokens[mac], registry.Report{SHA256: sha, Bytes: 1229 << 20, WriteMS: 50000,
		Written: 40 << 20, Fetched: 38 << 20, Reused: 1189 << 20, FetchedPeers: 31 << 20}); err != nil {
		t.Fatal(err)
	}
	c, stdout, stderr := e.cli()
	if code := runCmd(c, (*cli).history, mac); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "history-chunked", stdout.String())
}
