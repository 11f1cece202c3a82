package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/initrd"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// jsonLines decodes one JSON value per line of s.
func jsonLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	for l := range strings.Lines(s) {
		var v T
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%v in line %q", err, l)
		}
		out = append(out, v)
	}
	return out
}

// TestLogsJSON: logs --json prints the lines the text prints, one object
// each, also while following.
func TestLogsJSON(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	e.agent("/api/agent/log", macS01, logBody(t, "agent: plan fetched", `agent: "quoted" \ line`))

	c, text, stderr := e.cli()
	if code := runCmd(c, (*cli).logs, "r1-s01"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	c, stdout, stderr := e.cli()
	if code := runCmd(c, (*cli).logs, "r1-s01", "--json"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []string
	for _, l := range jsonLines[logLine](t, stdout.String()) {
		if l.MAC != macS01 {
			t.Errorf("mac %q", l.MAC)
		}
		got = append(got, l.Line+"\n")
	}
	if diff := cmp.Diff(text.String(), strings.Join(got, "")); diff != "" {
		t.Errorf("text and --json disagree (-text +json):\n%s", diff)
	}

	c, stdout, stderr = e.cli()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- c.logs(ctx, []string{"-f", "--json", macS01}) }()
	waitFor(t, stdout, `"line":"agent: \"quoted\" \\ line"}`+"\n")
	e.agent("/api/agent/log", macS01, logBody(t, "three"))
	waitFor(t, stdout, `{"mac":"`+macS01+`","line":"three"}`+"\n")
	e.done(macS01, time.Minute, 1<<30)
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr)
		}
	case <-ctx.Done():
		t.Fatal("logs -f --json did not end with the attempt")
	}
	if n := len(jsonLines[logLine](t, stdout.String())); n != 3 {
		t.Errorf("%d lines, want 3:\n%s", n, stdout)
	}
}

// TestWatchJSON: watch --json prints the stream's events as JSON lines,
// the snapshots of the installing hosts among them, and keeps the exit
// status of --until-idle.
func TestWatchJSON(t *testing.T) {
	v10 := registry.Version{Name: "demo-1.0", Number: 10}
	n01 := registry.HostRecord{MAC: macN01, Hostname: "r1-n01", State: registry.StateInstalling, Attempt: 1, UpdatedAt: at(0)}
	installed := n01
	installed.State, installed.Version = registry.StateInstalled, v10
	p := progress(macN01, "r1-n01", "image", 1<<30, 2<<30, 50<<20, time.Second)
	f := &fakeDaemon{}
	f.installing = [2][]api.HostView{{{HostRecord: n01, InProfiles: true}}, {{HostRecord: n01, InProfiles: true}}}
	f.stream = ": rackboot events\n\n" +
		sse(t, "progress", p) +
		"event: dropped\ndata: {\"count\": 1}\n\n" +
		"event: progress\ndata: {not json\n\n" +
		sse(t, "state", api.StateEvent{Event: "done", Host: installed, Attempt: &registry.Attempt{Number: 1, Version: v10, Result: registry.ResultSuccess}})
	ts := httptest.NewTLSServer(f)
	defer ts.Close()

	c, stdout, stderr := testCLI(map[string]string{"RACKBOOT_SERVER": ts.URL, "RACKBOOT_TOKEN": testAdminToken})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code := c.watch(ctx, []string{"--until-idle", "--json"}); code != 0 {
		t.Errorf("exit %d: %s", code, stderr)
	}
	var events []string
	for _, ev := range jsonLines[struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}](t, stdout.String()) {
		events = append(events, ev.Event)
		switch ev.Event {
		case api.EventProgress:
			var got api.ProgressEvent
			if err := json.Unmarshal(ev.Data, &got); err != nil || !cmp.Equal(got, p) {
				t.Errorf("progress %s, want %+v (%v)", ev.Data, p, err)
			}
		case watchSnapshot:
			var hs []api.HostView
			if err := json.Unmarshal(ev.Data, &hs); err != nil || len(hs) != 1 || hs[0].MAC != macN01 {
				t.Errorf("snapshot %s (%v)", ev.Data, err)
			}
		}
	}
	want := []string{watchSnapshot, api.EventProgress, watchSnapshot, watchNotice, api.EventState}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if strings.Contains(stdout.String(), "\x1b") {
		t.Error("terminal escapes in JSON output")
	}
}

// TestValidateJSON: validate --json says what the text says, valid or not.
func TestValidateJSON(t *testing.T) {
	var text, stdout, stderr bytes.Buffer
	if code := runValidate(context.Background(), []string{"../../examples"}, &text, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := runValidate(context.Background(), []string{"../../examples", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var ok validateJSON
	if err := json.Unmarshal(stdout.Bytes(), &ok); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("ok: %d hosts, %d groups, %d versions, %d layouts in %d files (digest %.12s)\n",
		ok.Hosts, ok.Groups, ok.Versions, ok.Layouts, ok.Files, ok.Digest)
	if !ok.OK || want != text.String() {
		t.Errorf("text %q, JSON %s", text.String(), stdout.String())
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("hosts:\n  - mac: 52:54:00\n  - mac: 52:54:00:00:00:01\n    hostnmae: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	text.Reset()
	stdout.Reset()
	if code := runValidate(context.Background(), []string{dir}, &stdout, &text); code != 1 {
		t.Fatalf("exit %d", code)
	}
	stdout.Reset()
	if code := runValidate(context.Background(), []string{"--json", dir}, &stdout, &stderr); code != 1 {
		t.Fatalf("--json: exit %d", code)
	}
	var bad validateJSON
	if err := json.Unmarshal(stdout.Bytes(), &bad); err != nil {
		t.Fatal(err)
	}
	var list profiles.ErrorList
	for _, e := range bad.Errors {
		list = append(list, profiles.Error{File: e.File, Line: e.Line, Column: e.Column, Msg: e.Message})
	}
	var back bytes.Buffer
	printLoadError(&back, list)
	if diff := cmp.Diff(text.String(), back.String()); bad.OK || len(bad.Errors) == 0 || diff != "" {
		t.Errorf("ok %v, text and --json disagree (-text +json):\n%s", bad.OK, diff)
	}
}

// TestVersionJSON: version and version --json say the same.
func TestVersionJSON(t *testing.T) {
	var text, stdout, stderr bytes.Buffer
	if code := runVersion(context.Background(), nil, &text, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := runVersion(context.Background(), []string{"--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var b versionInfo
	if err := json.Unmarshal(stdout.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if b.Go != runtime.Version() || b.String()+"\n" != text.String() {
		t.Errorf("text %q, JSON %s", text.String(), stdout.String())
	}
}

// TestImageAddJSON: image add --json says what the text says.
func TestImageAddJSON(t *testing.T) {
	v1, _ := testImages(t)
	work := t.TempDir()
	dir := filepath.Join(work, "artifacts")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(work, "v1.img"), v1, 0o644)
	add := func(more ...string) (int, string, string) {
		return runImageCmd(t, append([]string{"add", filepath.Join(work, "v1.img"), "--artifacts", dir, "--name", "base", "--number", "3"}, more...)...)
	}
	code, text, errs := add()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, out, errs := add("--json")
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errs)
	}
	var r imageReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	// Both ran on the same store: the second found every chunk stored.
	for _, want := range []string{
		fmt.Sprintf("(%d chunks), digest %s\n", r.Chunks, r.Digest),
		fmt.Sprintf("index:  %s, ", r.Index),
		fmt.Sprintf("  - name: %s\n    number: %d\n    image: { url: %s, sha256: %s, format: %s, kind: %s }\n",
			r.Entry.Name, r.Entry.Number, r.Entry.Image.URL, r.Entry.Image.SHA256, r.Entry.Image.Format, r.Entry.Image.Kind),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q of the JSON:\n%s\n%s", want, text, out)
		}
	}
	if !r.Unchanged || r.NewChunks != 0 {
		t.Errorf("again: unchanged %v, new chunks %d", r.Unchanged, r.NewChunks)
	}
}

// TestInitrdReport: the text and the JSON of a build report agree.
func TestInitrdReport(t *testing.T) {
	rep := initrd.Report{Modules: []string{"kernel/drivers/virtio.ko"}, Missing: []string{"mlx5_core"}, Tools: []string{"/usr/sbin/mkfs.ext4"},
		Libraries: []string{"/lib/libc.so.6"}, MissingTools: []string{"mkfs.xfs"}, Files: 12, Bytes: 4096}
	b, err := json.Marshal(newInitrdReport("out.cpio.gz", rep))
	if err != nil {
		t.Fatal(err)
	}
	var r initrdReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	text := initrdText("out.cpio.gz", rep)
	for _, want := range []string{
		fmt.Sprintf("%s: %d files, %d modules, %d tools, %d bytes before compression\n", r.Output, r.Files, len(r.Modules), len(r.Tools), r.Bytes),
		"not in this kernel (skipped): " + strings.Join(r.Missing, ", ") + "\n",
		"tools: " + strings.Join(r.Tools, ", ") + "\n",
		"their libraries: " + strings.Join(r.Libraries, ", ") + "\n",
		"not on this host (skipped): " + r.MissingTools[0],
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q:\n%s", want, text)
		}
	}
	if b, _ := json.Marshal(newInitrdReport("x", initrd.Report{})); strings.Contains(string(b), "null") {
		t.Errorf("empty lists are null: %s", b)
	}
}

// TestBuildInfoText: the text of version names every field of the JSON.
func TestBuildInfoText(t *testing.T) {
	for _, tc := range []struct {
		b    versionInfo
		want string
	}{
		{versionInfo{Version: "(devel)", Go: "go1.26.8"}, "rackboot (devel) go1.26.8"},
		{versionInfo{Version: "v1.2.0", Revision: "9fbe812", Time: "2026-12-07T14:00:00Z", Go: "go1.26.8"}, "rackboot v1.2.0 9fbe812 2026-12-07T14:00:00Z go1.26.8"},
		{versionInfo{Version: "v1.2.1-0.20261207140000-9fbe812+dirty", Revision: "9fbe812", Time: "2026-12-07T14:00:00Z", Modified: true, Go: "go1.26.8"},
			"rackboot v1.2.1-0.20261207140000-9fbe812+dirty 9fbe812 (modified) 2026-12-07T14:00:00Z go1.26.8"},
	} {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.b, got, tc.want)
		}
	}
}

// TestValidateArtifactsJSON: validate --artifacts --json lists the
// problems the text prints.
func TestValidateArtifactsJSON(t *testing.T) {
	dir := t.TempDir() // no image, no installer file
	var stdout, text bytes.Buffer
	if code := runValidate(context.Background(), []string{"--artifacts", dir, "../../examples"}, &stdout, &text); code != 1 {
		t.Fatalf("exit %d: %s", code, text.String())
	}
	stdout.Reset()
	var stderr bytes.Buffer
	if code := runValidate(context.Background(), []string{"--artifacts", dir, "--json", "../../examples"}, &stdout, &stderr); code != 1 {
		t.Fatalf("--json: exit %d: %s", code, stderr.String())
	}
	var out validateJSON
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	a := out.Artifacts
	if out.OK || a == nil || a.Dir != dir || a.Failed == 0 || len(a.Problems) == 0 {
		t.Fatalf("JSON %s", stdout.String())
	}
	var lines []string
	for _, p := range a.Problems {
		if p.File == "" || p.Line == 0 {
			t.Errorf("problem without its file:line: %+v", p)
		}
		lines = append(lines, fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message))
	}
	want := strings.Join(lines, "\n") + "\n" +
		fmt.Sprintf("%d of %d versions cannot be installed from %s: serve holds their hosts until this is fixed\n", a.Failed, a.Failed+a.OK, dir)
	if diff := cmp.Diff(text.String(), want); diff != "" {
		t.Errorf("text and --json disagree (-text +json):\n%s", diff)
	}
}
