package rollout

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPlan(t *testing.T) {
	hosts := func(n int) []string {
		var hs []string
		for i := range n {
			hs = append(hs, fmt.Sprintf("52:54:00:00:00:%02x", i+1))
		}
		return hs
	}
	h := hosts(10)
	tests := []struct {
		name string
		spec Spec
		want [][]string
	}{
		{"canary then sizes", Spec{Version: "v2", Hosts: h[:6], Canary: 2, WaveSize: 2}, [][]string{h[0:2], h[2:4], h[4:6]}},
		{"last wave holds the rest", Spec{Version: "v2", Hosts: h[:6], Canary: 1, WaveSize: 3}, [][]string{h[0:1], h[1:4], h[4:6]}},
		{"no canary", Spec{Version: "v2", Hosts: h[:5], WaveSize: 2}, [][]string{h[0:2], h[2:4], h[4:5]}},
		{"canary of all", Spec{Version: "v2", Hosts: h[:3], Canary: 3, WaveSize: 1}, [][]string{h[0:3]}},
		{"percent rounds up", Spec{Version: "v2", Hosts: h[:6], WavePercent: 25}, [][]string{h[0:2], h[2:4], h[4:6]}},
		{"percent of all hosts, after the canary", Spec{Version: "v2", Hosts: h[:10], Canary: 1, WavePercent: 30}, [][]string{h[0:1], h[1:4], h[4:7], h[7:10]}},
		{"percent at least one", Spec{Version: "v2", Hosts: h[:3], WavePercent: 1}, [][]string{h[0:1], h[1:2], h[2:3]}},
		{"percent 100", Spec{Version: "v2", Hosts: h[:4], WavePercent: 100}, [][]string{h[0:4]}},
		{"MACs made canonical", Spec{Version: "v2", Hosts: []string{"52-54-00-00-00-0A", "52:54:00:00:00:01"}, WaveSize: 1}, [][]string{{"52:54:00:00:00:0a"}, {h[0]}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Plan(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("waves (-want +got):\n%s", d)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	h := []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"size and percent", Spec{Version: "v2", Hosts: h, WaveSize: 1, WavePercent: 50}, "both a wave size and a wave percent given: give one"},
		{"neither size nor percent", Spec{Version: "v2", Hosts: h}, "no wave size or wave percent given: give one"},
		{"no hosts", Spec{Version: "v2", WaveSize: 1}, "no hosts selected"},
		{"no version", Spec{Hosts: h, WaveSize: 1}, "no version: name the catalog version to install"},
		{"canary too big", Spec{Version: "v2", Hosts: h, Canary: 3, WaveSize: 1}, "canary of 3 is more than the 2 hosts selected"},
		{"negative canary", Spec{Version: "v2", Hosts: h, Canary: -1, WaveSize: 1}, "canary is -1: give 0 (no canary wave) or more"},
		{"negative size", Spec{Version: "v2", Hosts: h, WaveSize: -2}, "wave size is -2: give 1 or more"},
		{"percent over 100", Spec{Version: "v2", Hosts: h, WavePercent: 150}, "wave percent is 150: give 1 to 100"},
		{"negative max failures", Spec{Version: "v2", Hosts: h, WaveSize: 1, MaxFailures: -1}, "max failures is -1: give 0 or more"},
		{"negative timeout", Spec{Version: "v2", Hosts: h, WaveSize: 1, WaveTimeout: -time.Second}, "wave timeout is -1s: give a positive duration, or 0 for 30m0s"},
		{"negative soak", Spec{Version: "v2", Hosts: h, WaveSize: 1, Soak: -time.Second}, "soak is -1s: give a positive duration or 0"},
		{"not a MAC", Spec{Version: "v2", Hosts: []string{"rack1-node4"}, WaveSize: 1}, `host "rack1-node4" is not a MAC address`},
		{"twice", Spec{Version: "v2", Hosts: []string{h[0], strings.ToUpper(h[0])}, WaveSize: 1}, "host 52:54:00:00:00:01 is selected twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Plan(tt.spec)
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("err = %v, want ErrSpec", err)
			}
			if want := "rollout: invalid spec: " + tt.want; err.Error() != want {
				t.Errorf("err = %q, want %q", err, want)
			}
		})
	}
}

func TestEventsBounded(t *testing.T) {
	var r Rollout
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range MaxEvents + 5 {
		r.event(at, fmt.Sprint(i))
	}
	if len(r.Events) != MaxEvents || r.Events[0].Text != "5" || r.Events[MaxEvents-1].Text != fmt.Sprint(MaxEvents+4) {
		t.Errorf("events: %d, first %q, last %q", len(r.Events), r.Events[0].Text, r.Events[len(r.Events)-1].Text)
	}
}
