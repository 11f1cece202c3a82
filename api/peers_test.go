package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

// fakePeers records the holdings it is given, and the ends.
type fakePeers struct {
	mu    sync.Mutex
	got   []agentapi.Holdings
	from  []string
	ended []string // "finished MAC", "forget MAC"
	err   error
}

func (f *fakePeers) Finished(mac string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, "finished "+mac)
}

func (f *fakePeers) Forget(mac string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, "forget "+mac)
}

func (f *fakePeers) Hold(mac string, addr netip.Addr, h agentapi.Holdings) (agentapi.HoldingsReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return agentapi.HoldingsReply{}, f.err
	}
	f.got = append(f.got, h)
	f.from = append(f.from, mac+" "+addr.String())
	return agentapi.HoldingsReply{Serve: true, IntervalMS: 2000}, nil
}

func TestHoldings(t *testing.T) {
	e := newEnv(t, nil)
	_, tok := e.boot(macN01, "efi")
	ok := agentapi.Holdings{Port: 8090, Have: agentapi.Bitmap{0x80}, Failed: []agentapi.PeerFailure{{Peer: "http://10.0.0.7:8090", Bad: true}}}

	// Off: 404.
	code, body := e.agent(http.MethodPost, agentapi.PathHoldings, macN01, tok, ok)
	e.must(http.StatusNotFound, code, body)
	peers := &fakePeers{}
	e.srv.Peers = peers

	// Before the plan, no attempt installs anything.
	ok.Image = strings.Repeat("ab", 32)
	code, body = e.agent(http.MethodPost, agentapi.PathHoldings, macN01, tok, ok)
	e.must(http.StatusConflict, code, body)

	var p agentapi.PlanResponse
	code, body = e.agent(http.MethodGet, agentapi.PathPlan, macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	// Another image than the attempt's.
	code, body = e.agent(http.MethodPost, agentapi.PathHoldings, macN01, tok, ok)
	e.must(http.StatusConflict, code, body)

	ok.Image = p.Plan.Image.SHA256
	code, body = e.agent(http.MethodPost, agentapi.PathHoldings, macN01, tok, ok)
	e.must(http.StatusOK, code, body)
	var reply agentapi.HoldingsReply
	if err := json.Unmarshal([]byte(body), &reply); err != nil || reply != (agentapi.HoldingsReply{Serve: true, IntervalMS: 2000}) {
		t.Errorf("reply %s, %v", body, err)
	}
	if diff := cmp.Diff([]agentapi.Holdings{ok}, peers.got); diff != "" {
		t.Errorf("holdings given (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{macN01 + " 127.0.0.1"}, peers.from); diff != "" {
		t.Errorf("from (-want +got):\n%s", diff)
	}

	// No token: 401, as on every agent path.
	code, body = e.agent(http.MethodPost, agentapi.PathHoldings, macN01, "wrong", ok)
	e.must(http.StatusUnauthorized, code, body)

	// The coordinator refuses: 400 with its reason.
	peers.err = fmt.Errorf("%w: peers: bad holdings: a bitmap of 1 bytes over 9 chunks", ErrBadHoldings)
	code, body = e.agent(http.MethodPost, agentapi.PathHoldings, macN01, tok, ok)
	e.must(http.StatusBadRequest, code, body)
	if !strings.Contains(body, "bitmap of 1 bytes") {
		t.Errorf("body %s", body)
	}
	// Its own failure: 500, never a refusal.
	peers.err = errors.New("read images/x.rbidx: input/output error")
	code, body = e.agent(http.MethodPost, agentapi.PathHoldings, macN01, tok, ok)
	e.must(http.StatusInternalServerError, code, body)
}

func TestDecodeHoldings(t *testing.T) {
	img := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"good", `{"image":"` + img + `","port":8090,"have":"gA==","failed":[{"peer":"http://10.0.0.1:8090"},{"peer":"http://[fd00::1]:8090","bad":true}]}`, true},
		{"no-port", `{"image":"` + img + `","have":""}`, true},
		{"upper-case-image", `{"image":"` + strings.ToUpper(img) + `","have":""}`, false},
		{"short-image", `{"image":"abcd","have":""}`, false},
		{"port", `{"image":"` + img + `","port":65536,"have":""}`, false},
		{"negative-port", `{"image":"` + img + `","port":-1,"have":""}`, false},
		{"unknown-field", `{"image":"` + img + `","have":"","extra":1}`, false},
		{"bad-base64", `{"image":"` + img + `","have":"!!"}`, false},
		{"peer-https", `{"image":"` + img + `","have":"","failed":[{"peer":"https://10.0.0.1:8090"}]}`, false},
		{"peer-name", `{"image":"` + img + `","have":"","failed":[{"peer":"http://evil.example:80"}]}`, false},
		{"peer-zone", `{"image":"` + img + `","have":"","failed":[{"peer":"http://[fe80::1%eth0]:80"}]}`, false},
		{"peer-path", `{"image":"` + img + `","have":"","failed":[{"peer":"http://10.0.0.1:80/x"}]}`, false},
		{"many-failures", `{"image":"` + img + `","have":"","failed":[` + strings.Repeat(`{"peer":"http://10.0.0.1:1"},`, agentapi.MaxPeerFailures) + `{"peer":"http://10.0.0.1:1"}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeHoldings([]byte(tc.body)); (err == nil) != tc.ok {
				t.Errorf("decodeHoldings = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestHoldingsEnds: Peers hears when an install starts writing (the
// plan), ends well (done) or fails.
func TestHoldingsEnds(t *testing.T) {
	e := newEnv(t, nil)
	peers := &fakePeers{}
	e.srv.Peers = peers
	plan := func(mac, tok string) agentapi.PlanResponse {
		var p agentapi.PlanResponse
		code, body := e.agent(http.MethodGet, agentapi.PathPlan, mac, tok, nil)
		e.must(http.StatusOK, code, body)
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, tok1 := e.boot(macN01, "efi")
	p := plan(macN01, tok1)
	code, body := e.agent(http.MethodPost, agentapi.PathProgress, macN01, tok1, agentapi.Progress{Phase: agentapi.PhaseImage, Done: 1, Total: 1})
	e.must(http.StatusNoContent, code, body)
	code, body = e.agent(http.MethodPost, agentapi.PathDone, macN01, tok1, agentapi.Done{SHA256: p.Plan.Image.SHA256, Bytes: max(p.Plan.Image.RawSize, 1)})
	e.must(http.StatusOK, code, body)

	_, tok2 := e.boot(macN02, "efi")
	plan(macN02, tok2)
	code, body = e.agent(http.MethodPost, agentapi.PathFailed, macN02, tok2, agentapi.Failed{Error: "disk on fire", Phase: agentapi.PhaseImage})
	e.must(http.StatusOK, code, body)

	want := []string{"forget " + macN01, "finished " + macN01, "forget " + macN02, "forget " + macN02}
	if diff := cmp.Diff(want, peers.ended); diff != "" {
		t.Errorf("ends (-want +got):\n%s", diff)
	}
}
