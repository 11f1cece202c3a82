package registry_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/registrytest"
)

func TestMemoryConformance(t *testing.T) {
	registrytest.Run(t, func(*testing.T) registry.Store { return registry.NewMemory() })
}

func TestBoltConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store {
		s, err := registry.OpenBolt(filepath.Join(t.TempDir(), "registry.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

var ctx = context.Background()

func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	s, err := registry.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	want := registry.HostRecord{MAC: "52:54:00:00:01:01", Hostname: "r1-n01", State: registry.StateInstalled,
		Version: registry.Version{Name: "demo-1.1", Number: 11}, Attempt: 1, LastID: 1, UpdatedAt: at}
	attempt := registry.Attempt{ID: 1, Number: 1, MAC: want.MAC, Version: want.Version, Started: at, Finished: at.Add(time.Minute), Result: registry.ResultSuccess,
		ImageRawSize: 2 << 30, BytesWritten: 50 << 20, BytesFetched: 20 << 20, BytesReused: 2<<30 - 50<<20}
	if _, err := s.Update(ctx, want.MAC, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
		*h = want
		return &attempt, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendLog(ctx, want.MAC, 1, []string{"written", "done"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = registry.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Host(ctx, want.MAC)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record after reopen (-want +got):\n%s", diff)
	}
	hist, err := s.History(ctx, want.MAC)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]registry.Attempt{attempt}, hist); diff != "" {
		t.Errorf("history after reopen (-want +got):\n%s", diff)
	}
	log, err := s.Log(ctx, want.MAC, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"written", "done"}, log.Lines); diff != "" {
		t.Errorf("log after reopen (-want +got):\n%s", diff)
	}
}

func TestBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	s, err := registry.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// bbolt's flock is per open file description, so a second open in
	// the same process contends like a second daemon would.
	if s2, err := registry.OpenBolt(path); err == nil {
		s2.Close()
		t.Fatal("a second OpenBolt of a store in use succeeded")
	} else if !strings.Contains(err.Error(), "locked") {
		t.Errorf("error = %v, want it to say the store is locked", err)
	}
}

// childEnv makes the test binary, re-executed by TestBoltSurvivesKill, the
// writer that gets killed.
const childEnv = "RACKBOOT_REGISTRY_KILL_CHILD"

// TestBoltSurvivesKill runs a child process that writes records in a loop
// and acknowledges each one on stdout after Update returned, kills it with
// SIGKILL in mid-stream, and checks that the store opens and holds every
// acknowledged record, attempt and log batch.
func TestBoltSurvivesKill(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		killChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltSurvivesKill$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(3 * time.Second)
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ack "))
		if err != nil {
			continue // the testing package's own output
		}
		acked = n
		if acked >= 150 || time.Now().After(deadline) {
			break
		}
	}
	// Kill while the child is writing its next record, then read what it
	// acknowledged before dying.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ack ")); err == nil {
			acked = n
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	if acked < 10 {
		t.Fatalf("child acknowledged only %d writes before the kill", acked+1)
	}

	s, err := registry.OpenBolt(path)
	if err != nil {
		t.Fatalf("store after SIGKILL: %v", err)
	}
	defer s.Close()
	for i := 0; i <= acked; i++ {
		mac := childMAC(i)
		h, err := s.Host(ctx, mac)
		if err != nil {
			t.Fatalf("acknowledged record %d lost: %v", i, err)
		}
		if h.Attempt != i || h.State != registry.StateInstalled {
			t.Fatalf("record %d = %+v", i, h)
		}
		hist, err := s.History(ctx, mac)
		if err != nil || len(hist) != 1 || hist[0].ID != 1 {
			t.Fatalf("attempt of record %d = %v, %v", i, hist, err)
		}
		log, err := s.Log(ctx, mac, 1, 0)
		if err != nil || len(log.Lines) != 1 || log.Lines[0] != fmt.Sprint("line ", i) {
			t.Fatalf("log of record %d = %v, %v", i, log, err)
		}
	}
	t.Logf("%d acknowledged writes, all present after SIGKILL", acked+1)
}

func childMAC(i int) string { return fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff) }

// killChild writes until it is killed. Each iteration is two durable
// writes (record and attempt in one transaction, then a log batch) and one
// acknowledgement.
func killChild(path string) {
	s, err := registry.OpenBolt(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; i < 1<<16; i++ {
		mac := childMAC(i)
		_, err := s.Update(ctx, mac, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
			h.State, h.Attempt, h.LastID = registry.StateInstalled, i, 1
			return &registry.Attempt{ID: 1, Number: 1, Started: time.Now().UTC(), Result: registry.ResultSuccess}, nil
		})
		if err == nil {
			_, err = s.AppendLog(ctx, mac, 1, []string{fmt.Sprint("line ", i)})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("ack %d\n", i)
	}
	os.Exit(0)
}
