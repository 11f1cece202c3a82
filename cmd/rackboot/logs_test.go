package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

func logBody(t *testing.T, lines ...string) string {
	t.Helper()
	b, err := json.Marshal(agentapi.Log{Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogs(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	e.agent("/api/agent/log", macS01, logBody(t, "agent: plan fetched", "agent: writing /dev/sda"))

	c, stdout, stderr := e.cli()
	if code := runCmd(c, (*cli).logs, "r1-s01"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if diff := cmp.Diff("agent: plan fetched\nagent: writing /dev/sda\n", stdout.String()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}

	// The first attempt of r1-n02, by ID: empty, and said so.
	c, stdout, stderr = e.cli()
	if code := runCmd(c, (*cli).logs, macN02, "--attempt", "1"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout.String() != "" || stderr.String() != "(the log is empty)\n" {
		t.Errorf("empty log: stdout %q, stderr %q", stdout, stderr)
	}
}

// TestLogsFollow: -f prints what is stored, then the lines as the agent
// sends them, and ends when the attempt ends.
func TestLogsFollow(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	e.agent("/api/agent/log", macS01, logBody(t, "one"))

	c, stdout, stderr := e.cli()
	exit := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { exit <- c.logs(ctx, []string{"-f", "r1-s01"}) }()
	// The stored line is printed after the daemon subscribed the stream
	// to new lines: none sent from now on is lost.
	waitFor(t, stdout, "one\n")
	e.agent("/api/agent/log", macS01, logBody(t, "two", "three"))
	waitFor(t, stdout, "three\n")
	e.agent("/api/agent/log", macS01, logBody(t, "four"))
	e.done(macS01, time.Minute, 1<<30)

	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr)
		}
	case <-ctx.Done():
		t.Fatal("logs -f did not end with the attempt")
	}
	if diff := cmp.Diff("one\ntwo\nthree\nfour\n", stdout.String()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("-- the attempt ended: "+macS01+" is installed\n", stderr.String()); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

// TestLogsFollowInterrupted: Ctrl-C ends a follow with status 130 and no
// error message.
func TestLogsFollowInterrupted(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	e.agent("/api/agent/log", macS01, logBody(t, "one"))
	c, stdout, stderr := e.cli()
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() { exit <- c.logs(ctx, []string{"-f", macS01}) }()
	waitFor(t, stdout, "one\n")
	cancel()
	select {
	case code := <-exit:
		if code != 130 || stderr.String() != "" {
			t.Errorf("exit %d, stderr %q; want 130 and nothing", code, stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("logs -f ignored its context")
	}
}
