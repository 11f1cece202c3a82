package registrytest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/registry"
)

// RunShared runs the suite of registry.Shared: two appliances on one
// backend. open returns two stores with different IDs on the same new,
// empty backend; RunShared closes them, and may close one before (so a
// second Close must be harmless). The backend's lease TTL should be short
// (about 2 s): an appliance's presence must vanish within 10 s of its
// Close.
func RunShared(t *testing.T, open func(t *testing.T) (a, b registry.Shared)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b registry.Shared)
	}{
		{"UpdatesFromTwoStores", testUpdatesFromTwoStores},
		{"Secret", testSecret},
		{"Appliances", testAppliances},
		{"PublishSubscribe", testPublishSubscribe},
		{"Lead", testLead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := open(t)
			t.Cleanup(func() {
				a.Close()
				b.Close()
			})
			if a.ID() == b.ID() {
				t.Fatalf("both stores have ID %q", a.ID())
			}
			tt.fn(t, a, b)
		})
	}
}

// testUpdatesFromTwoStores: increments of one record from two appliances at
// once all land, once each.
func testUpdatesFromTwoStores(t *testing.T, a, b registry.Shared) {
	const each = 200
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, s := range []registry.Shared{a, b} {
		wg.Go(func() {
			for range each {
				if _, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
					h.Attempt++
					return nil, nil
				}); err != nil {
					errs <- fmt.Errorf("%s: %w", s.ID(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, s := range []registry.Shared{a, b} {
		h, err := s.Host(ctx, macA)
		if err != nil {
			t.Fatal(err)
		}
		if h.Attempt != 2*each {
			t.Errorf("%s reads Attempt = %d after 2×%d increments from two stores", s.ID(), h.Attempt, each)
		}
	}
}

// testSecret: two appliances racing to make a secret get the same bytes,
// one of those made; later calls do not make another.
func testSecret(t *testing.T, a, b registry.Shared) {
	var wg sync.WaitGroup
	got := make([][]byte, 2)
	errs := make([]error, 2)
	for i, s := range []registry.Shared{a, b} {
		wg.Go(func() {
			got[i], errs[i] = s.Secret(ctx, "token-key", func() ([]byte, error) {
				return []byte("made by " + s.ID()), nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Secret (store %d): %v", i, err)
		}
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Fatalf("two appliances got secrets %q and %q", got[0], got[1])
	}
	if made := []string{"made by " + a.ID(), "made by " + b.ID()}; !slices.Contains(made, string(got[0])) {
		t.Errorf("secret = %q, want one of %q", got[0], made)
	}
	again, err := b.Secret(ctx, "token-key", func() ([]byte, error) {
		t.Error("gen called for a secret that exists")
		return []byte("again"), nil
	})
	if err != nil || !bytes.Equal(again, got[0]) {
		t.Errorf("Secret again = %q, %v; want %q", again, err, got[0])
	}
	other, err := a.Secret(ctx, "admin-token", func() ([]byte, error) { return []byte("admin"), nil })
	if err != nil || string(other) != "admin" {
		t.Errorf("another secret = %q, %v; want %q", other, err, "admin")
	}
}

// testAppliances: each appliance sees both; announcing again replaces; a
// closed appliance vanishes.
func testAppliances(t *testing.T, a, b registry.Shared) {
	for _, s := range []registry.Shared{a, b} {
		if err := s.Announce(ctx, []byte("url of "+s.ID())); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Announce(ctx, []byte("new url of "+a.ID())); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{a.ID(): []byte("new url of " + a.ID()), b.ID(): []byte("url of " + b.ID())}
	for _, s := range []registry.Shared{a, b} {
		got, err := s.Appliances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Appliances seen by %s (-want +got):\n%s", s.ID(), diff)
		}
	}
	a.Close()
	delete(want, a.ID())
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := b.Appliances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cmp.Equal(want, got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after %s closed, Appliances = %q", a.ID(), got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testPublishSubscribe: b receives a's messages in order, and not its own.
func testPublishSubscribe(t *testing.T, a, b registry.Shared) {
	sctx, cancel := context.WithCancel(ctx)
	type message struct{ from, msg string }
	got := make(chan message, 1000)
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(sctx, func(from string, msg []byte) { got <- message{from, string(msg)} })
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Subscribe returned %v when its context ended, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Subscribe did not return 10 s after its context ended")
		}
	}()
	// A message published before the subscription started is not
	// delivered: publish pings until one arrives.
	deadline := time.After(10 * time.Second)
	for ready := false; !ready; {
		if err := a.Publish(ctx, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			ready = m.msg == "ping"
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no message reached the subscriber in 10 s")
		}
	}
	const n = 50
	for i := range n {
		if err := b.Publish(ctx, []byte(fmt.Sprintf("own %d", i))); err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(ctx, []byte(fmt.Sprintf("msg %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	next := 0
	for next < n {
		select {
		case m := <-got:
			if m.from != a.ID() {
				t.Fatalf("message %q from %q, want only %q's", m.msg, m.from, a.ID())
			}
			if m.msg == "ping" {
				continue
			}
			if want := fmt.Sprintf("msg %d", next); m.msg != want {
				t.Fatalf("message %q, want %q (in order)", m.msg, want)
			}
			next++
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d messages delivered", next, n)
		}
	}
}

// testLead: one appliance leads at a time; when the leader closes, the
// other leads.
func testLead(t *testing.T, a, b registry.Shared) {
	actx, err := a.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	led := make(chan error, 1)
	go func() {
		_, err := b.Lead(bctx)
		led <- err
	}()
	select {
	case err := <-led:
		t.Fatalf("%s leads (err %v) while %s does", b.ID(), err, a.ID())
	case <-time.After(500 * time.Millisecond):
	}
	if actx.Err() != nil {
		t.Fatalf("the leader's context ended: %v", actx.Err())
	}
	a.Close()
	select {
	case <-actx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the leader's context did not end 10 s after it closed")
	}
	select {
	case err := <-led:
		if err != nil {
			t.Fatalf("%s: Lead = %v after the leader closed", b.ID(), err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s does not lead 10 s after %s closed", b.ID(), a.ID())
	}
}
