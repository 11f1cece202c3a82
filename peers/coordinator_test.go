package peers

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// testIndex is an index of n chunks: chunk i has the id sha256(i), but
// chunk 3 is all zeros and chunk n-1 repeats chunk 1.
func testIndex(n int) *chunkstore.Index {
	ix := &chunkstore.Index{SHA256: sha256.Sum256([]byte("image")), MinChunk: 1, AvgChunk: 1, MaxChunk: 1}
	for i := range n {
		c := chunkstore.IndexChunk{Offset: int64(i), Size: 1, Stored: 1, ID: chunkID(i)}
		switch {
		case i == 3:
			c.ID, c.Stored = chunkstore.ChunkID{}, 0
		case i == n-1:
			c.ID = chunkID(1)
		}
		ix.Chunks = append(ix.Chunks, c)
	}
	ix.Size = int64(n)
	return ix
}

func chunkID(i int) chunkstore.ChunkID { return chunkstore.ChunkID(sha256.Sum256([]byte{byte(i)})) }

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

const chunks = 10

func newCoordinator(t *testing.T) (*Coordinator, *clock, string) {
	t.Helper()
	ix := testIndex(chunks)
	clk := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	r := rand.New(rand.NewPCG(1, 2))
	c := &Coordinator{
		Index: func(sha string) (*chunkstore.Index, error) {
			if sha != ix.Digest() {
				return nil, fmt.Errorf("%w: not in the test catalog", ErrUnknownImage)
			}
			return ix, nil
		},
		Now: clk.now, Rand: r.IntN, Uploads: 1 << 20,
	}
	return c, clk, ix.Digest()
}

// have is a bitmap over the test index with the given positions set.
func have(pos ...int) agentapi.Bitmap {
	b := agentapi.NewBitmap(chunks)
	for _, p := range pos {
		b.Set(p)
	}
	return b
}

func hold(t *testing.T, c *Coordinator, sha, mac, addr string, b agentapi.Bitmap) {
	t.Helper()
	if err := c.Hold(mac, netip.MustParseAddr(addr), agentapi.Holdings{Image: sha, Port: 8081, Have: b}); err != nil {
		t.Fatal(err)
	}
}

func req(mac, addr string) Requester { return Requester{MAC: mac, Addr: netip.MustParseAddr(addr)} }

// picks counts, over n picks of chunk i, which peer base each went to
// ("" for none).
func picks(c *Coordinator, sha string, i, n int, r Requester) map[string]int {
	got := map[string]int{}
	for range n {
		u, ok := c.Pick(sha, chunkID(i), r)
		if !ok {
			got[""]++
			continue
		}
		got[u[:len(u)-len("/chunks/xxxx/.zst")-64]]++
	}
	return got
}

func TestPickURL(t *testing.T) {
	c, _, sha := newCoordinator(t)
	hold(t, c, sha, "52:54:00:00:00:01", "10.0.0.1", have(2))
	u, ok := c.Pick(sha, chunkID(2), req("52:54:00:00:00:09", "10.0.0.9"))
	id := chunkID(2).String()
	if want := "http://10.0.0.1:8081/chunks/" + id[:4] + "/" + id + ".zst"; !ok || u != want {
		t.Errorf("Pick = %q, %v; want %q", u, ok, want)
	}
}

func TestPlaces(t *testing.T) {
	c, _, sha := newCoordinator(t)
	hold(t, c, sha, "a", "10.0.0.1", have(2))
	got := c.Places(sha, []chunkstore.ChunkID{chunkID(2), chunkID(5), {}}, req("me", "10.0.0.9"))
	if diff := cmp.Diff([]string{"http://10.0.0.1:8081", "", ""}, got); diff != "" {
		t.Errorf("Places (-want +got):\n%s", diff)
	}
}

// TestPlacesLater: a chunk the appliance was just told to send to a
// peer, or whose holders are all at their cap, is to be asked for later
// by the others; the appliance serves it again to the agent it was sent
// to (which asks again after a failure), once Pending has passed, when
// that agent is no holder, or when it is bad.
func TestPlacesLater(t *testing.T) {
	c, clk, sha := newCoordinator(t)
	c.Pending, c.Uploads = 5*time.Second, 1
	hold(t, c, sha, "a", "10.0.0.1", have())
	hold(t, c, sha, "b", "10.0.0.2", have())
	ids := []chunkstore.ChunkID{chunkID(5), chunkID(6)}
	check := func(step, mac, addr string, want ...string) {
		t.Helper()
		if diff := cmp.Diff(want, c.Places(sha, ids, req(mac, addr))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", step, diff)
		}
	}
	later := agentapi.PlaceLater
	check("first request", "a", "10.0.0.1", "", "")
	check("while a receives them", "b", "10.0.0.2", later, later)
	check("a asks again", "a", "10.0.0.1", "", "")
	check("an agent that is no holder, while a receives them", "x", "10.0.0.9", later, later)

	// Pending passes: x is sent chunk 6, but it is no holder.
	clk.advance(6 * time.Second)
	hold(t, c, sha, "a", "10.0.0.1", have())
	hold(t, c, sha, "b", "10.0.0.2", have())
	check("after Pending", "x", "10.0.0.9", "", "")
	check("the receiver is no holder", "b", "10.0.0.2", "", "")

	// a reports chunk 5: a peer serves it, and while a is at its cap of
	// one upload, the next requester waits.
	hold(t, c, sha, "a", "10.0.0.1", have(5))
	check("chunk 5 held by a", "y", "10.0.0.8", "http://10.0.0.1:8081", later)
	check("a at its cap", "z", "10.0.0.7", later, later)
	c.Report(sha, "http://10.0.0.1:8081", true, netip.MustParseAddr("10.0.0.8"))
	clk.advance(6 * time.Second)
	hold(t, c, sha, "b", "10.0.0.2", have())
	check("a reported bad", "z", "10.0.0.7", "", "")
}

// TestPickAmongHolders: only holders of the chunk are picked, each about
// as often; a chunk the index has twice is held by whoever has either
// place; the requester, by MAC or address, is never picked.
func TestPickAmongHolders(t *testing.T) {
	c, _, sha := newCoordinator(t)
	hold(t, c, sha, "a", "10.0.0.1", have(0, 1, 2))
	hold(t, c, sha, "b", "10.0.0.2", have(2, 4))
	hold(t, c, sha, "c", "10.0.0.3", have(2, chunks-1))
	hold(t, c, sha, "d", "10.0.0.4", have())
	me := req("z", "10.0.0.9")
	got := picks(c, sha, 2, 3000, me)
	for _, p := range []string{"http://10.0.0.1:8081", "http://10.0.0.2:8081", "http://10.0.0.3:8081"} {
		if got[p] < 800 || got[p] > 1200 {
			t.Errorf("%s picked %d times of 3000 among 3 holders: %v", p, got[p], got)
		}
	}
	if len(got) != 3 {
		t.Errorf("picks %v: only the three holders", got)
	}
	// Chunk 1 is also at position chunks-1, which c has.
	if diff := cmp.Diff(map[string]int{"http://10.0.0.1:8081": 0, "http://10.0.0.3:8081": 0}, zero(picks(c, sha, 1, 100, me))); diff != "" {
		t.Errorf("holders of a repeated chunk (-want +got):\n%s", diff)
	}
	for name, r := range map[string]Requester{"by-mac": req("b", "10.0.0.99"), "by-address": req("", "10.0.0.2")} {
		t.Run(name, func(t *testing.T) {
			if got := picks(c, sha, 4, 100, r); got[""] != 100 {
				t.Errorf("the requester, the only holder, was picked: %v", got)
			}
		})
	}
}

// zero maps every count to 0: which keys, not how often.
func zero(m map[string]int) map[string]int {
	for k := range m {
		m[k] = 0
	}
	return m
}

// TestPickPrefersSubnet: a holder in the requester's subnet is picked
// while it has room; the others only then.
func TestPickPrefersSubnet(t *testing.T) {
	c, clk, sha := newCoordinator(t)
	c.Uploads = 3
	hold(t, c, sha, "near", "10.0.1.5", have(2))
	hold(t, c, sha, "far1", "10.0.2.5", have(2))
	hold(t, c, sha, "far2", "10.0.3.5", have(2))
	got := picks(c, sha, 2, 9, req("me", "10.0.1.77"))
	if diff := cmp.Diff(map[string]int{"http://10.0.1.5:8081": 3, "http://10.0.2.5:8081": 3, "http://10.0.3.5:8081": 3}, got); diff != "" {
		t.Errorf("picks (-want +got):\n%s", diff)
	}
	clk.advance(3 * time.Second) // the leases ended
	if got := picks(c, sha, 2, 3, req("me", "10.0.1.77")); got["http://10.0.1.5:8081"] != 3 {
		t.Errorf("after the leases: %v, want the neighbour", got)
	}
	c.SubnetBits = 16
	clk.advance(3 * time.Second)
	if got := picks(c, sha, 2, 9, req("me", "10.0.9.9")); len(got) != 3 || got[""] != 0 {
		t.Errorf("with /16 every holder is a neighbour: %v", got)
	}
}

// TestPickSubnetOnly: with SubnetOnly a holder outside the requester's
// subnet is never picked; the appliance serves the chunk.
func TestPickSubnetOnly(t *testing.T) {
	c, clk, sha := newCoordinator(t)
	c.SubnetOnly, c.Uploads = true, 1
	hold(t, c, sha, "near", "10.0.1.5", have(2))
	hold(t, c, sha, "far", "10.0.2.5", have(2))
	if got := picks(c, sha, 2, 3, req("me", "10.0.1.77")); got["http://10.0.1.5:8081"] != 1 || got[""] != 2 {
		t.Errorf("picks %v; want the neighbour once (its cap), then the appliance", got)
	}
	clk.advance(3 * time.Second)
	if got := picks(c, sha, 2, 3, req("me", "10.0.9.9")); got[""] != 3 {
		t.Errorf("a requester with no neighbour: %v, want the appliance only", got)
	}
}

// TestPickCaps: a peer gets at most Uploads redirects per the time a
// chunk takes at UploadRate (a second for the test's 1-byte chunks at 1
// byte/s); at the
// cap the chunk is the appliance's.
func TestPickCaps(t *testing.T) {
	c, clk, sha := newCoordinator(t)
	c.Uploads, c.UploadRate = 2, 1
	hold(t, c, sha, "a", "10.0.0.1", have(2))
	me := req("me", "10.0.0.9")
	if got := picks(c, sha, 2, 5, me); got["http://10.0.0.1:8081"] != 2 || got[""] != 3 {
		t.Errorf("picks %v; want 2 redirects, then the appliance", got)
	}
	clk.advance(999 * time.Millisecond)
	if _, ok := c.Pick(sha, chunkID(2), me); ok {
		t.Error("picked before a lease ended")
	}
	clk.advance(time.Millisecond)
	if got := picks(c, sha, 2, 3, me); got["http://10.0.0.1:8081"] != 2 {
		t.Errorf("after the leases ended: %v", got)
	}
}

// TestPickDeadAndReported: a holder not heard from for TTL is not picked
// and is then forgotten; one reported unreachable rests; one reported
// bad is not picked again until Forget.
func TestPickDeadAndReported(t *testing.T) {
	me := req("me", "10.0.0.9")
	t.Run("expired", func(t *testing.T) {
		c, clk, sha := newCoordinator(t)
		c.TTL = 10 * time.Second
		hold(t, c, sha, "a", "10.0.0.1", have(2))
		clk.advance(10 * time.Second)
		if _, ok := c.Pick(sha, chunkID(2), me); !ok {
			t.Fatal("a holder seen TTL ago is live")
		}
		clk.advance(time.Millisecond)
		if u, ok := c.Pick(sha, chunkID(2), me); ok {
			t.Errorf("picked %s, silent for longer than TTL", u)
		}
		hold(t, c, sha, "b", "10.0.0.2", have(5)) // sweeps
		if n := c.Holders(sha); n != 1 {
			t.Errorf("%d holders after the sweep, want 1", n)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		c, clk, sha := newCoordinator(t)
		hold(t, c, sha, "a", "10.0.0.1", have(2))
		hold(t, c, sha, "b", "10.0.0.2", have(2))
		c.Report(sha, "http://10.0.0.1:8081", false, me.Addr)
		if got := picks(c, sha, 2, 50, me); got["http://10.0.0.2:8081"] != 50 {
			t.Errorf("picks %v; the reported peer rests", got)
		}
		clk.advance(31 * time.Second)
		hold(t, c, sha, "a", "10.0.0.1", have(2))
		hold(t, c, sha, "b", "10.0.0.2", have(2))
		if got := picks(c, sha, 2, 50, me); got["http://10.0.0.1:8081"] == 0 {
			t.Errorf("picks %v; the rest is over", got)
		}
	})
	t.Run("bad", func(t *testing.T) {
		c, clk, sha := newCoordinator(t)
		hold(t, c, sha, "a", "10.0.0.1", have(2))
		// Reported by another agent, in its holdings.
		err := c.Hold("me", netip.MustParseAddr("10.0.0.9"), agentapi.Holdings{Image: sha, Port: 8081, Have: have(),
			Failed: []agentapi.PeerFailure{{Peer: "http://10.0.0.1:8081", Bad: true}}})
		if err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Hour)
		hold(t, c, sha, "a", "10.0.0.1", have(2)) // it announces again
		if u, ok := c.Pick(sha, chunkID(2), me); ok {
			t.Errorf("picked %s, reported bad", u)
		}
		c.Forget("a")
		hold(t, c, sha, "a", "10.0.0.1", have(2))
		if _, ok := c.Pick(sha, chunkID(2), me); !ok {
			t.Error("not picked after Forget")
		}
	})
	t.Run("unreachable-from-one-subnet", func(t *testing.T) {
		// A firewall between 10.0.2.0/24 and the peer: the peer rests
		// for that subnet only.
		c, _, sha := newCoordinator(t)
		hold(t, c, sha, "a", "10.0.1.1", have(2))
		c.Report(sha, "http://10.0.1.1:8081", false, netip.MustParseAddr("10.0.2.9"))
		if u, ok := c.Pick(sha, chunkID(2), req("x", "10.0.2.10")); ok {
			t.Errorf("picked %s for the reporter's subnet", u)
		}
		for _, from := range []string{"10.0.1.10", "10.0.3.10"} {
			if _, ok := c.Pick(sha, chunkID(2), req("y", from)); !ok {
				t.Errorf("not picked for %s, outside the reporter's subnet", from)
			}
		}
		c.Report(sha, "http://10.0.1.1:8081", false, netip.Addr{})
		if u, ok := c.Pick(sha, chunkID(2), req("y", "10.0.3.10")); ok {
			t.Errorf("picked %s after a report from nowhere (rests for all)", u)
		}
	})
	t.Run("withdrawn", func(t *testing.T) {
		c, _, sha := newCoordinator(t)
		hold(t, c, sha, "a", "10.0.0.1", have(2))
		if err := c.Hold("a", netip.MustParseAddr("10.0.0.1"), agentapi.Holdings{Image: sha}); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Pick(sha, chunkID(2), me); ok {
			t.Error("picked after port 0 withdrew it")
		}
	})
}

// TestPickRefuses: an unknown image, a chunk not in the image, and the
// zero chunk are never redirected.
func TestPickRefuses(t *testing.T) {
	c, _, sha := newCoordinator(t)
	all := have(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	hold(t, c, sha, "a", "10.0.0.1", all)
	me := req("me", "10.0.0.9")
	for _, tc := range []struct {
		name  string
		image string
		id    chunkstore.ChunkID
	}{
		{"unknown-image", "00" + sha[2:], chunkID(2)},
		{"unknown-chunk", sha, chunkID(200)},
		{"zero-chunk", sha, chunkstore.ChunkID{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if u, ok := c.Pick(tc.image, tc.id, me); ok {
				t.Errorf("Pick = %s", u)
			}
		})
	}
}

// TestHoldRefuses: reports that do not fit the published index.
func TestHoldRefuses(t *testing.T) {
	c, _, sha := newCoordinator(t)
	addr := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		name string
		mac  string
		addr netip.Addr
		h    agentapi.Holdings
		want error
	}{
		{"unknown-image", "a", addr, agentapi.Holdings{Image: "00" + sha[2:], Port: 1, Have: have()}, ErrUnknownImage},
		{"short-bitmap", "a", addr, agentapi.Holdings{Image: sha, Port: 1, Have: agentapi.Bitmap{0}}, ErrBadHoldings},
		{"bits-past-end", "a", addr, agentapi.Holdings{Image: sha, Port: 1, Have: agentapi.Bitmap{0, 0x20}}, ErrBadHoldings},
		{"port", "a", addr, agentapi.Holdings{Image: sha, Port: 70000, Have: have()}, ErrBadHoldings},
		{"address", "a", netip.IPv4Unspecified(), agentapi.Holdings{Image: sha, Port: 1, Have: have()}, ErrBadHoldings},
		{"no-mac", "", addr, agentapi.Holdings{Image: sha, Port: 1, Have: have()}, ErrBadHoldings},
		{"many-failures", "a", addr, agentapi.Holdings{Image: sha, Port: 1, Have: have(), Failed: make([]agentapi.PeerFailure, agentapi.MaxPeerFailures+1)}, ErrBadHoldings},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Hold(tc.mac, tc.addr, tc.h); !errors.Is(err, tc.want) {
				t.Errorf("Hold = %v, want %v", err, tc.want)
			}
		})
	}
	if n := c.Holders(sha); n != 0 {
		t.Errorf("%d holders after refused reports", n)
	}
}

// TestHoldIndexError: an index that cannot be read is the appliance's
// failure, not an unknown image.
func TestHoldIndexError(t *testing.T) {
	eio := errors.New("read images/x.rbidx: input/output error")
	c := &Coordinator{Index: func(string) (*chunkstore.Index, error) { return nil, eio }}
	err := c.Hold("a", netip.MustParseAddr("10.0.0.1"), agentapi.Holdings{Image: "ab", Port: 1})
	if !errors.Is(err, eio) || errors.Is(err, ErrUnknownImage) || errors.Is(err, ErrBadHoldings) {
		t.Errorf("Hold = %v, want the index's error alone", err)
	}
}

// TestPickFinished: a finished install's holdings stay live for its
// linger without reports, then expire; a linger of 0 forgets them.
func TestPickFinished(t *testing.T) {
	c, clk, sha := newCoordinator(t)
	me := req("me", "10.0.0.9")
	hold(t, c, sha, "a", "10.0.0.1", have(2))
	hold(t, c, sha, "b", "10.0.0.2", have(2))
	c.Finish("a", time.Minute)
	c.Finish("b", 0)
	clk.advance(59 * time.Second) // far past the TTL
	if got := picks(c, sha, 2, 20, me); got["http://10.0.0.1:8081"] != 20 {
		t.Errorf("picks %v; want the lingering holder only", got)
	}
	clk.advance(time.Second)
	if u, ok := c.Pick(sha, chunkID(2), me); ok {
		t.Errorf("picked %s after the linger", u)
	}
}

// TestHoldRefusedChangesNothing: a refused report's failures are not
// applied.
func TestHoldRefusedChangesNothing(t *testing.T) {
	c, _, sha := newCoordinator(t)
	hold(t, c, sha, "a", "10.0.0.1", have(2))
	err := c.Hold("me", netip.MustParseAddr("10.0.0.9"), agentapi.Holdings{Image: sha, Port: 8081, Have: agentapi.Bitmap{0},
		Failed: []agentapi.PeerFailure{{Peer: "http://10.0.0.1:8081", Bad: true}}})
	if !errors.Is(err, ErrBadHoldings) {
		t.Fatalf("Hold = %v", err)
	}
	if _, ok := c.Pick(sha, chunkID(2), req("x", "10.0.0.3")); !ok {
		t.Error("a refused report excluded a peer")
	}
}

// TestInstalling: the agents installing an image are the live holders
// whose install has not finished, the asker not counted.
func TestInstalling(t *testing.T) {
	c, clk, sha := newCoordinator(t)
	hold(t, c, sha, "a", "10.0.0.1", have())
	hold(t, c, sha, "b", "10.0.0.2", have())
	hold(t, c, sha, "c", "10.0.0.3", have())
	if n := c.Installing(sha, "a"); n != 2 {
		t.Errorf("Installing = %d, want 2", n)
	}
	c.Finish("b", time.Minute)
	if n := c.Installing(sha, "a"); n != 1 {
		t.Errorf("after b finished: %d, want 1", n)
	}
	clk.advance(time.Hour) // c is no longer heard from
	hold(t, c, sha, "a", "10.0.0.1", have())
	if n := c.Installing(sha, "a"); n != 0 {
		t.Errorf("the wave has ended: %d, want 0", n)
	}
	if n := c.Installing("unknown", "a"); n != 0 {
		t.Errorf("unknown image: %d", n)
	}
}
