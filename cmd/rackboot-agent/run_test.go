package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
)

const (
	mib        = 1 << 20
	imageSize  = 8 * mib
	targetSize = 64 * mib
)

// testImage is a whole-disk OS image: a GPT with one root partition full
// of a pattern, published zstd-compressed.
type testImage struct {
	raw, zst []byte
	sha256   string // of zst
}

func newTestImage(t *testing.T) testImage {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "os.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(imageSize)
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Name: "root", Type: gpt.LinuxRootX86_64, Start: 2048, End: (imageSize-mib)/512 - 1},
	}}
	if err := tbl.Write(f, imageSize); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, imageSize-2*mib)
	for i := range body {
		body[i] = byte(i/4096) ^ byte(i)
	}
	f.WriteAt(body, mib)
	return compressedImage(t, f.Name())
}

// compressedImage publishes the disk image file p.
func compressedImage(t *testing.T, p string) testImage {
	t.Helper()
	var img testImage
	var err error
	if img.raw, err = os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(img.raw)
	zw.Close()
	img.zst = z.Bytes()
	sum := sha256.Sum256(img.zst)
	img.sha256 = hex.EncodeToString(sum[:])
	return img
}

// testPlan installs img over the whole disk with a config drive after it.
func testPlan(imageURL, sha string) agentapi.Plan {
	return agentapi.Plan{
		Disk:       agentapi.DiskRule{Select: agentapi.SelectSmallest, MinSize: 32 * mib},
		Image:      &agentapi.Image{URL: imageURL, SHA256: sha, Format: agentapi.FormatZstd},
		Partitions: []agentapi.Partition{{Name: "cidata", Type: "linux", Size: 16 * mib, Content: agentapi.ContentConfigDrive}},
		ConfigDrive: []agentapi.File{
			{Name: "meta-data", Content: "instance-id: i-1\nlocal-hostname: n01\n"},
			{Name: "user-data", Content: "#cloud-config\n"},
		},
	}
}

// newTarget is a disk image file the agent installs onto.
func newTarget(t *testing.T, size int64) (string, func() ([]imaging.Disk, error)) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vda.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	return p, func() ([]imaging.Disk, error) {
		return []imaging.Disk{{Name: "vda", Path: p, Size: size, LogicalSectorSize: 512, PhysicalSectorSize: 512, Rotational: true}}, nil
	}
}

// testAgent is an agent against the appliance at base (or the
// comma-separated appliances, as rackboot.server= names them), installing
// onto disks, with short retries; screen is its console.
func testAgent(t *testing.T, base, mac, token string, disks func() ([]imaging.Disk, error)) (*agent, *syncBuffer) {
	t.Helper()
	servers, err := parseServers(base)
	if err != nil {
		t.Fatal(err)
	}
	hw, _ := net.ParseMAC(mac)
	screen := &syncBuffer{}
	con := newConsole(screen, fixedUptime(0))
	log := newLogger(con, slog.LevelInfo)
	a := newAgent(con, log, newClient(config{Servers: servers, MAC: hw, Token: token}, nil, log))
	a.disks = disks
	a.diskWait = 500 * time.Millisecond
	a.planRetry = backoff{first: 10 * time.Millisecond, max: 20 * time.Millisecond, total: 2 * time.Second}
	a.reportRetry = a.planRetry
	return a, screen
}

// fakeAppliance serves the agent API from a recorder and the image under
// /artifacts/, the latter only with the agent's token.
type fakeAppliance struct {
	*recorder
	url         string
	imageAsked  atomic.Int32
	imageTokens atomic.Int32
}

func newFakeAppliance(t *testing.T, img testImage, plan func(base string) (int, string)) *fakeAppliance {
	t.Helper()
	fa := &fakeAppliance{recorder: &recorder{answers: map[string]func() (int, string){}}}
	mux := http.NewServeMux()
	mux.Handle("/api/", fa.recorder)
	mux.HandleFunc("/artifacts/os.img.zst", func(w http.ResponseWriter, r *http.Request) {
		fa.imageAsked.Add(1)
		if r.Header.Get("Authorization") == "Bearer "+testToken && r.Header.Get(agentapi.MACHeader) == "52:54:00:00:01:01" {
			fa.imageTokens.Add(1)
		}
		http.ServeContent(w, r, "os.img.zst", time.Time{}, bytes.NewReader(img.zst))
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	fa.url = ts.URL
	fa.answers["/api/agent/plan"] = func() (int, string) { return plan(ts.URL) }
	fa.answers["/api/agent/done"] = func() (int, string) { return 200, `{"state":"installed","attempt":1}` }
	fa.answers["/api/agent/failed"] = func() (int, string) { return 200, `{"state":"pending","attempt":1,"reason":"will retry"}` }
	fa.answers["/api/agent/log"] = func() (int, string) { return 204, "" }
	fa.answers["/api/agent/progress"] = func() (int, string) { return 204, "" }
	return fa
}

func planJSON(p agentapi.Plan) (int, string) {
	b, _ := json.Marshal(agentapi.PlanResponse{Host: "n01", MAC: "52:54:00:00:01:01", Attempt: 1, Plan: p})
	return 200, string(b)
}

// calls returns the API paths requested, in order, without progress.
func (fa *fakeAppliance) calls() []string {
	var paths []string
	for _, r := range fa.got() {
		if r.Path != "/api/agent/progress" {
			paths = append(paths, strings.TrimPrefix(r.Path, "/api/agent/"))
		}
	}
	return paths
}

func (fa *fakeAppliance) body(path string) string {
	for _, r := range fa.got() {
		if r.Path == "/api/agent/"+path {
			return r.Body
		}
	}
	return ""
}

func TestAttempt(t *testing.T) {
	img := newTestImage(t)
	goodPlan := func(base string) (int, string) { return planJSON(testPlan(base+"/artifacts/os.img.zst", img.sha256)) }
	for _, tt := range []struct {
		name  string
		plan  func(base string) (int, string)
		disk  int64
		done  func() (int, string) // nil: 200 installed
		calls []string             // API calls after the plan fetches, progress aside
		plans int                  // GET plan requests
		// The attempt fails when one of these is set: with an error
		// wrapping errIs, or saying errHas; unreported when the appliance
		// must not be told.
		errIs      error
		errHas     string
		unreported bool
		// what the failure report says, if one is sent
		phase agentapi.Phase
		msg   string
	}{
		{name: "installed", plan: goodPlan, disk: targetSize, calls: []string{"log", "done"}, plans: 1},
		{
			name: "appliance down for a while",
			plan: func() func(string) (int, string) {
				var n atomic.Int32
				return func(base string) (int, string) {
					if n.Add(1) <= 2 {
						return 503, `{"error":"registry unavailable"}`
					}
					return goodPlan(base)
				}
			}(),
			disk: targetSize, calls: []string{"log", "done"}, plans: 3,
		},
		{
			name: "checksum mismatch",
			plan: func(base string) (int, string) {
				return planJSON(testPlan(base+"/artifacts/os.img.zst", strings.Repeat("0", 64)))
			},
			disk: targetSize, calls: []string{"log", "failed"}, plans: 1,
			errIs: imaging.ErrChecksum, phase: "image", msg: "checksum mismatch",
		},
		{
			name: "disk too small", plan: goodPlan, disk: 16 * mib, calls: []string{"log", "failed"}, plans: 1,
			errIs: imaging.ErrDiskTooSmall, phase: "disk", msg: "disk too small",
		},
		{
			name:  "token refused",
			plan:  func(string) (int, string) { return 401, `{"error":"invalid or expired install token"}` },
			disk:  targetSize,
			calls: []string{"log"}, plans: 1, unreported: true,
		},
		{
			name:  "no plan for this machine",
			plan:  func(string) (int, string) { return 409, `{"error":"the profiles give this host no layout"}` },
			disk:  targetSize,
			calls: []string{"log"}, plans: 1, unreported: true,
		},
		{
			name: "done refused: digest differs from the plan's", plan: goodPlan, disk: targetSize,
			done:  func() (int, string) { return 409, `{"state":"pending","attempt":1,"reason":"digest mismatch"}` },
			calls: []string{"log", "done"}, plans: 1, errHas: "reporting done: ",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fa := newFakeAppliance(t, img, tt.plan)
			if tt.done != nil {
				fa.answers["/api/agent/done"] = tt.done
			}
			disk, disks := newTarget(t, tt.disk)
			a, screen := testAgent(t, fa.url, "52:54:00:00:01:01", testToken, disks)
			out, err := a.attempt(context.Background())
			t.Logf("console:\n%s", screen)

			var calls []string
			plans := 0
			for _, c := range fa.calls() {
				if c == "plan" {
					plans++
					continue
				}
				calls = append(calls, c)
			}
			if plans != tt.plans || strings.Join(calls, " ") != strings.Join(tt.calls, " ") {
				t.Errorf("%d plan fetches then %v, want %d then %v", plans, calls, tt.plans, tt.calls)
			}
			if tt.errIs == nil && tt.errHas == "" && !tt.unreported {
				if err != nil || !out.Done || out.State != "installed" {
					t.Fatalf("attempt: %+v, %v", out, err)
				}
				var d agentapi.Done
				json.Unmarshal([]byte(fa.body("done")), &d)
				if d.SHA256 != img.sha256 || d.Bytes != int64(len(img.raw)) {
					t.Errorf("done report %+v, want sha256 %s and %d bytes", d, img.sha256, len(img.raw))
				}
				if got, want := fa.imageTokens.Load(), fa.imageAsked.Load(); got == 0 || got != want {
					t.Errorf("%d of %d image requests carried the install token", got, want)
				}
				checkInstalled(t, disk, img)
			}
			switch {
			case err == nil:
			case tt.errIs != nil && !errors.Is(err, tt.errIs):
				t.Errorf("error %v, want one wrapping %v", err, tt.errIs)
			case tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas):
				t.Errorf("error %v, want one saying %q", err, tt.errHas)
			case tt.unreported != isUnreported(err):
				t.Errorf("error %v: unreported %v, want %v", err, isUnreported(err), tt.unreported)
			}
			if err == nil && (tt.errIs != nil || tt.errHas != "" || tt.unreported) {
				t.Fatalf("attempt succeeded: %+v", out)
			}
			if tt.phase != "" {
				var f agentapi.Failed
				json.Unmarshal([]byte(fa.body("failed")), &f)
				if f.Phase != tt.phase || !strings.Contains(f.Error, tt.msg) {
					t.Errorf("failure report %+v, want phase %s and %q", f, tt.phase, tt.msg)
				}
				if out.State != "pending" {
					t.Errorf("outcome %+v, want the appliance's answer", out)
				}
			}
			// The log, sent before the final report, ends with its reason.
			want := `msg=\"install done, reporting\"`
			if tt.phase != "" || tt.unreported {
				want = `msg=\"install failed\"`
			}
			if !strings.Contains(fa.body("log"), want) {
				t.Errorf("log sent lacks %s: %s", want, fa.body("log"))
			}
		})
	}
}

// checkInstalled compares the image's partition with the disk's.
func checkInstalled(t *testing.T, disk string, img testImage) {
	t.Helper()
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[mib:imageSize-mib], img.raw[mib:imageSize-mib]) {
		t.Error("the image's root partition differs on the disk")
	}
}

func TestSelectDiskWaits(t *testing.T) {
	_, disks := newTarget(t, targetSize)
	a, _ := testAgent(t, "http://192.0.2.1", "52:54:00:00:01:01", "t", nil)
	var calls atomic.Int32
	a.disks = func() ([]imaging.Disk, error) {
		if calls.Add(1) < 3 { // still probing
			return nil, nil
		}
		return disks()
	}
	d, err := a.selectDisk(context.Background(), agentapi.DiskRule{})
	if err != nil || d.Name != "vda" {
		t.Fatalf("selectDisk: %+v, %v", d, err)
	}
	a.disks = func() ([]imaging.Disk, error) { return nil, nil }
	start := time.Now()
	if _, err := a.selectDisk(context.Background(), agentapi.DiskRule{}); !errors.Is(err, imaging.ErrNoDisk) || !strings.Contains(err.Error(), "disks seen: none") {
		t.Errorf("no disk: %v", err)
	}
	if waited := time.Since(start); waited < a.diskWait {
		t.Errorf("gave up after %v, before diskWait %v", waited, a.diskWait)
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{first: time.Millisecond, max: 2 * time.Millisecond, total: 50 * time.Millisecond}
	log := slog.New(slog.DiscardHandler)
	tries := 0
	err := b.do(context.Background(), log, "x", func(context.Context) error {
		tries++
		if tries < 3 {
			return errors.New("connection refused")
		}
		return nil
	})
	if err != nil || tries != 3 {
		t.Errorf("%d tries, %v; want success on the third", tries, err)
	}
	tries = 0
	err = b.do(context.Background(), log, "x", func(context.Context) error {
		tries++
		return &apiError{Status: 401, Msg: "no"}
	})
	if !unauthorized(err) || tries != 1 {
		t.Errorf("a 401 was retried: %d tries, %v", tries, err)
	}
	err = b.do(context.Background(), log, "x", func(context.Context) error { return fmt.Errorf("down") })
	if err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Errorf("never-ending failure: %v", err)
	}
}
