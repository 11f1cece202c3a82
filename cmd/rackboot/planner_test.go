package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

func loadExamples(t *testing.T) *profiles.Set {
	t.Helper()
	set, err := profiles.Load("../../examples")
	if err != nil {
		t.Fatalf("example fleet: %v", err)
	}
	return set
}

// exampleArtifacts writes the example catalog's images (zstd of rawSize
// bytes each, content sizes in the frame headers) into a new directory.
func exampleArtifacts(t *testing.T, set *profiles.Set, rawSize int) string {
	t.Helper()
	dir := t.TempDir()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for _, v := range set.Versions() {
		raw := bytes.Repeat([]byte(v.Name), rawSize/len(v.Name)+1)[:rawSize]
		if err := os.WriteFile(filepath.Join(dir, v.Image.URL), enc.EncodeAll(raw, nil), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPlanner(t *testing.T) {
	set := loadExamples(t)
	dir := exampleArtifacts(t, set, 3<<20)
	pl := profiles.Planner{ImageSizes: (&artifacts.Sizes{Dir: dir}).Image}
	for _, h := range set.Hosts() {
		t.Run(h.Hostname, func(t *testing.T) {
			p, err := pl.Plan(h, h.Version, nil, "http://192.0.2.1:8080")
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dir, h.Version.Image.URL))
			if err != nil {
				t.Fatal(err)
			}
			want := "http://192.0.2.1:8080/artifacts/" + h.Version.Image.URL + "?mac=" + strings.ReplaceAll(profiles.MACKey(h.MAC), ":", "-")
			if img := p.Image; img == nil || img.URL != want || img.SHA256 != h.Version.Image.SHA256 ||
				img.Size != fi.Size() || img.RawSize != 3<<20 || img.Kind != profiles.KindWholeDisk || img.Format != agentapi.FormatZstd {
				t.Errorf("image = %+v, want url %s, size %d, raw size %d", p.Image, want, fi.Size(), 3<<20)
			}
			if len(p.Partitions) != len(h.Layout.Partitions) {
				t.Fatalf("partitions %+v from %+v", p.Partitions, h.Layout.Partitions)
			}
			for i, lp := range h.Layout.Partitions {
				got := p.Partitions[i]
				if got.Name != lp.Name || got.Preserve != lp.Preserve || lp.Content == profiles.ContentConfig && got.Content != agentapi.ContentConfigDrive ||
					lp.Content != profiles.ContentConfig && got.Filesystem != lp.Filesystem {
					t.Errorf("partition %d = %+v from %+v", i, got, lp)
				}
			}
		})
	}
	h, _ := set.Lookup(mustMAC("52:54:00:77:00:04"))
	bare := *h
	bare.Layout = nil
	if _, err := pl.Plan(&bare, nil, nil, "http://x"); !errors.Is(err, profiles.ErrNoPlan) || !strings.Contains(err.Error(), "no layout") {
		t.Errorf("no layout: err = %v", err)
	}
	bare = *h
	bare.Version = nil
	if _, err := pl.Plan(&bare, nil, nil, "http://x"); !errors.Is(err, profiles.ErrNoPlan) || !strings.Contains(err.Error(), "no version") {
		t.Errorf("no version: err = %v", err)
	}
	// An image missing from the artifacts directory fails the plan, named.
	if err := os.Remove(filepath.Join(dir, h.Version.Image.URL)); err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Plan(h, nil, nil, "http://x"); err == nil || !strings.Contains(err.Error(), h.Version.Image.URL) {
		t.Errorf("missing image: err = %v", err)
	}
}

// TestRenderPlanIsServedPlan: for every example host, `rackboot render
// --plan` prints, byte for byte, the plan the agent API serves the
// machine's agent, config drive included.
func TestRenderPlanIsServedPlan(t *testing.T) {
	set := loadExamples(t)
	dir := exampleArtifacts(t, set, 1<<20)
	reg := &registry.Registry{Store: registry.NewMemory(), MaxAttempts: 3}
	ts := httptest.NewServer(&api.Server{Registry: reg, Fleet: set, Planner: profiles.Planner{ImageSizes: (&artifacts.Sizes{Dir: dir}).Image}})
	defer ts.Close()

	for _, h := range set.Hosts() {
		t.Run(h.Hostname, func(t *testing.T) {
			d, err := reg.Boot(context.Background(), h.MAC, h.Hostname, true, false)
			if err != nil || d.Token == "" {
				t.Fatalf("boot: %+v, %v", d, err)
			}
			req, _ := http.NewRequest(http.MethodGet, ts.URL+agentapi.PathPlan, nil)
			req.Header.Set("Authorization", "Bearer "+d.Token)
			req.Header.Set(agentapi.MACHeader, h.MAC.String())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("plan: %d %s", resp.StatusCode, body)
			}
			var served struct {
				Plan json.RawMessage `json:"plan"`
			}
			if err := json.Unmarshal(body, &served); err != nil {
				t.Fatal(err)
			}

			var stdout, stderr bytes.Buffer
			args := []string{"--profiles", "../../examples", "--mac", h.MAC.String(), "--plan", "--url", ts.URL, "--artifacts", dir}
			if code := (renderer{}).run(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("render exit %d: %s", code, stderr.String())
			}
			var want, got bytes.Buffer
			if err := json.Compact(&want, served.Plan); err != nil {
				t.Fatal(err)
			}
			if err := json.Compact(&got, stdout.Bytes()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(want.Bytes(), got.Bytes()) {
				t.Errorf("render --plan differs from the served plan:\nserved %s\nrender %s", want.Bytes(), got.Bytes())
			}
			var p agentapi.Plan
			if err := json.Unmarshal(got.Bytes(), &p); err != nil || len(p.ConfigDrive) != 3 || p.Image.RawSize != 1<<20 {
				t.Errorf("rendered plan: %v, config drive %d files, image %+v", err, len(p.ConfigDrive), p.Image)
			}
		})
	}
}
