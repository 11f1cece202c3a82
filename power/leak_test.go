package power_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/rackboot/rackboot/power"
	"github.com/rackboot/rackboot/power/powertest"
)

// TestNoLeaks: operations that succeed or fail on auth leave no goroutine
// (go-ipmi's keep-alive, HTTP connections) and no Redfish session behind.
func TestNoLeaks(t *testing.T) {
	rb, rf := redfishDouble(t, map[string]powertest.Machine{"n": powertest.NewFakeMachine(true)})
	ipmiAddr := powertest.ServeIPMI(t, &powertest.IPMIBMC{User: user, Password: password, Machine: powertest.NewFakeMachine(true)})
	targets := []struct {
		power.Target
		good bool
	}{
		{power.Target{Protocol: "redfish", Address: rf.URL, Username: user, Password: password}, true},
		{power.Target{Protocol: "redfish", Address: rf.URL, Username: user, Password: "nope"}, false},
		{power.Target{Protocol: "ipmi", Address: ipmiAddr, Username: user, Password: password}, true},
		{power.Target{Protocol: "ipmi", Address: ipmiAddr, Username: user, Password: "nope"}, false},
	}
	ctx := context.Background()
	// A session left open would also show as the BMC refusing new ones
	// once its few slots are taken: the good operations must all succeed.
	run := func() {
		for _, tg := range targets {
			c := newController(t, tg.Target, fast)
			_, err1 := c.Status(ctx)
			err2 := c.NetBootOnce(ctx)
			if tg.good && (err1 != nil || err2 != nil) {
				t.Fatalf("%s: %v, %v", tg.Protocol, err1, err2)
			}
		}
	}
	run() // warm up: servers' idle goroutines
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 10 {
		run()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after 40 operations\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
	if n := rb.Sessions(); n != 0 {
		t.Errorf("%d Redfish sessions left open", n)
	}
}
