package power_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/power"
	"github.com/rackboot/rackboot/power/powertest"
)

// TestErrors classifies every failure the BMCs of a fleet show, over both
// protocols, concurrently: each case ends within its own deadline, and no
// error text holds the password, right or wrong.
func TestErrors(t *testing.T) {
	const wrong = "wr0ng-Pass!"
	cfg := power.Config{Timeout: time.Second, Retries: -1, PollInterval: 10 * time.Millisecond}

	_, rf := redfishDouble(t, map[string]powertest.Machine{"n": powertest.NewFakeMachine(true)})
	ib := &powertest.IPMIBMC{User: user, Password: password, Machine: powertest.NewFakeMachine(true)}
	ipmiAddr := powertest.ServeIPMI(t, ib)
	tlsSrv := httptest.NewUnstartedServer(&powertest.RedfishBMC{User: user, Password: password,
		Systems: map[string]powertest.Machine{"n": powertest.NewFakeMachine(true)}})
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	tests := []struct {
		name   string
		target power.Target
		want   power.Kind // "" = success
		slow   bool       // takes the whole Timeout
	}{
		{name: "redfish good", target: power.Target{Protocol: "redfish", Address: rf.URL, Username: user, Password: password}},
		{name: "redfish wrong password", target: power.Target{Protocol: "redfish", Address: rf.URL, Username: user, Password: wrong}, want: power.KindAuth},
		{name: "redfish wrong user", target: power.Target{Protocol: "redfish", Address: rf.URL, Username: "root", Password: password}, want: power.KindAuth},
		{name: "redfish closed port", target: power.Target{Protocol: "redfish", Address: "http://" + powertest.ClosedTCP(t), Username: user, Password: password}, want: power.KindUnreachable},
		{name: "redfish hangs", target: power.Target{Protocol: "redfish", Address: "http://" + powertest.HangTCP(t), Username: user, Password: password}, want: power.KindTimeout, slow: true},
		{name: "redfish https self-signed, verified", target: power.Target{Protocol: "redfish", Address: tlsSrv.URL, Username: user, Password: password}, want: power.KindTLS},
		{name: "redfish https self-signed, insecure", target: power.Target{Protocol: "redfish", Address: tlsSrv.URL, Username: user, Password: password, InsecureTLS: true}},
		{name: "redfish host:port means https", target: power.Target{Protocol: "redfish", Address: tlsSrv.Listener.Addr().String(), Username: user, Password: password, InsecureTLS: true}},
		{name: "redfish https wrong password", target: power.Target{Protocol: "redfish", Address: tlsSrv.URL, Username: user, Password: wrong, InsecureTLS: true}, want: power.KindAuth},
		{name: "ipmi good", target: power.Target{Protocol: "ipmi", Address: ipmiAddr, Username: user, Password: password}},
		{name: "ipmi wrong password", target: power.Target{Protocol: "ipmi", Address: ipmiAddr, Username: user, Password: wrong}, want: power.KindAuth},
		{name: "ipmi wrong user", target: power.Target{Protocol: "ipmi", Address: ipmiAddr, Username: "root", Password: password}, want: power.KindAuth},
		{name: "ipmi closed port", target: power.Target{Protocol: "ipmi", Address: powertest.ClosedUDP(t), Username: user, Password: password}, want: power.KindUnreachable},
		{name: "ipmi drops", target: power.Target{Protocol: "ipmi", Address: powertest.HangUDP(t), Username: user, Password: password}, want: power.KindTimeout, slow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newController(t, tt.target, cfg)
			start := time.Now()
			state, err := power.Do(context.Background(), c, power.ActionStatus, false, cfg)
			d := time.Since(start)
			if got := power.KindOf(err); got != tt.want {
				t.Fatalf("kind %q, want %q; err: %v", got, tt.want, err)
			}
			if err == nil {
				if state != power.StateOn {
					t.Errorf("state %s, want on", state)
				}
				return
			}
			var pe *power.Error
			if !errors.As(err, &pe) || pe.Op != "power status" {
				t.Errorf("error %#v, want a *power.Error of op power status", err)
			}
			if state != power.StateUnknown {
				t.Errorf("state %s on error, want unknown", state)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "power status: "+string(tt.want)+": ") {
				t.Errorf("error %q does not start with its op and kind", msg)
			}
			for _, secret := range []string{password, wrong} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q holds the password", msg)
				}
			}
			switch {
			case tt.slow && (d < 900*time.Millisecond || d > 1500*time.Millisecond):
				t.Errorf("took %s, want about the 1 s timeout", d)
			case !tt.slow && d > 500*time.Millisecond:
				t.Errorf("took %s, want a quick answer", d)
			}
			t.Logf("%s: %v", d.Round(time.Millisecond), err)
		})
	}
}

// TestContextBounds: the caller's context beats the configured timeout.
func TestContextBounds(t *testing.T) {
	cfg := power.Config{Timeout: 30 * time.Second, Retries: 5}
	for _, tg := range []power.Target{
		{Protocol: "redfish", Address: "http://" + powertest.HangTCP(t), Username: user, Password: password},
		{Protocol: "ipmi", Address: powertest.HangUDP(t), Username: user, Password: password},
	} {
		t.Run(tg.Protocol, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := power.Do(ctx, newController(t, tg, cfg), power.ActionOn, true, cfg)
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %s, want the context's 300 ms", d)
			}
			if power.KindOf(err) != power.KindTimeout {
				t.Errorf("err %v, want a timeout", err)
			}
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, tg := range []power.Target{
		{Protocol: "", Address: "h", Username: user},
		{Protocol: "snmp", Address: "h", Username: user},
		{Protocol: "ipmi", Address: "", Username: user},
		{Protocol: "ipmi", Address: "h:x", Username: user},
		{Protocol: "ipmi", Address: "h", Username: ""},
		{Protocol: "ipmi", Address: "h", Username: user, Password: strings.Repeat("p", 21)},
		{Protocol: "redfish", Address: "ftp://h", Username: user},
		{Protocol: "redfish", Address: "https://admin:" + password + "@h", Username: user, Password: password},
		{Protocol: "redfish", Address: "https://h/other", Username: user},
	} {
		_, err := power.New(tg, power.Config{})
		if power.KindOf(err) != power.KindConfig {
			t.Errorf("New(%+v): %v, want a config error", tg, err)
			continue
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("error %q holds the password", err)
		}
	}
	for _, tg := range []power.Target{
		{Protocol: "ipmi", Address: "10.0.0.5", Username: user},
		{Protocol: "ipmi", Address: "bmc-1.example:6230", Username: user},
		{Protocol: "ipmi", Address: "fd00::5", Username: user},
		{Protocol: "IPMI", Address: "[fd00::5]:623", Username: user},
		{Protocol: "redfish", Address: "bmc-1.example", Username: user},
		{Protocol: "redfish", Address: "http://10.0.0.5:8000/redfish/v1/", Username: user},
	} {
		if _, err := power.New(tg, power.Config{}); err != nil {
			t.Errorf("New(%+v): %v", tg, err)
		}
	}
}

func TestRedact(t *testing.T) {
	err := &power.Error{Op: "power on", Kind: power.KindBMC, Err: errors.New(`body {"Password":"p@ss word"} p%40ss+word`)}
	got := power.Redact(err, "p@ss word", "").Error()
	if strings.Contains(got, "p@ss word") || strings.Contains(got, "p%40ss+word") {
		t.Errorf("Redact left the secret: %q", got)
	}
	if power.KindOf(power.Redact(err, "x")) != power.KindBMC {
		t.Error("Redact lost the *Error")
	}
	if power.Redact(nil, "x") != nil {
		t.Error("Redact(nil) is not nil")
	}
	wrapped := power.Redact(context.DeadlineExceeded, "deadline")
	if !errors.Is(wrapped, context.DeadlineExceeded) || strings.Contains(wrapped.Error(), "deadline") {
		t.Errorf("Redact(DeadlineExceeded) = %v: want the secret gone and errors.Is kept", wrapped)
	}
}

// TestBMCFailure: a BMC that answers with an error is KindBMC, not
// retried, even when its message speaks of a timeout.
func TestBMCFailure(t *testing.T) {
	m := powertest.NewFakeMachine(false)
	m.Err = errors.New("host controller timeout")
	b, srv := redfishDouble(t, map[string]powertest.Machine{"n": m})
	c := newController(t, power.Target{Protocol: "redfish", Address: srv.URL, Username: user, Password: password}, fast)
	_, err := power.Do(context.Background(), c, power.ActionOn, false, fast)
	if power.KindOf(err) != power.KindBMC {
		t.Fatalf("err %v, want kind bmc", err)
	}
	if n := len(m.Calls()); n != 1 {
		t.Errorf("%d power-on calls, want 1 (no retry)", n)
	}
	if !strings.Contains(err.Error(), "500: ") || b.Sessions() != 0 {
		t.Errorf("err %v (want the HTTP status), %d sessions open", err, b.Sessions())
	}

	ib := &powertest.IPMIBMC{User: user, Password: password, Machine: m}
	ic := newController(t, power.Target{Protocol: "ipmi", Address: powertest.ServeIPMI(t, ib), Username: user, Password: password}, fast)
	_, err = power.Do(context.Background(), ic, power.ActionOn, false, fast)
	if power.KindOf(err) != power.KindBMC {
		t.Fatalf("ipmi: err %v, want kind bmc", err)
	}
	t.Logf("ipmi: %v", err)
}
