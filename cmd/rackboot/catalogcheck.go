package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/profiles"
)

// catalogCheck verifies that every artifact the profiles name (each
// version's image, each installer's kernel and initrd) is in the artifacts
// directory and, for an image, is what the catalog's sha256 says, and holds
// back the hosts whose install would use one that is not (docs/DESIGN.md,
// "Checks before damage"): a wrong digest found by the agent is found
// after the disk was written, and an image missing is found after the
// disk was partitioned.
//
// serve runs it in the background (Run): at start, after every profiles
// reload and every recheck interval, so a file replaced or removed in the
// artifacts directory is noticed without a reload. Digests are remembered
// by inode, size and modification time (artifacts.Digests), so only what
// changed is read again. `rackboot validate --artifacts` runs one check
// in the foreground. A catalogCheck is safe for concurrent use.
type catalogCheck struct {
	dir     string
	digests *artifacts.Digests
	log     *slog.Logger
	// onChecked, if set, is called after each pass over a set.
	onChecked func(catalogStatus)

	mu sync.Mutex
	// results holds the outcome of every artifact of the last pass, by
	// artifactKey. An artifact the current set names that is not in it
	// (new in a reload) is being checked: hosts that need it are held
	// until it is.
	results map[string]artifactResult
	status  catalogStatus
	kick    chan struct{}
}

// artifactResult is the outcome of checking one artifact: "" is fine.
type artifactResult struct {
	problem string
}

// catalogStatus is what a pass found.
type catalogStatus struct {
	// Checked reports that at least one pass finished (readiness).
	Checked bool
	// Versions counts the catalog's versions by outcome: ok, failed
	// (an artifact missing or wrong), pending (not checked yet).
	OK, Failed, Pending int
	// Problems are the failed versions' and installers' messages, each
	// led by the file:line of the entry.
	Problems []string
	// Took is how long the last pass took.
	Took time.Duration
}

func newCatalogCheck(dir string, log *slog.Logger) *catalogCheck {
	return &catalogCheck{dir: dir, digests: &artifacts.Digests{Dir: dir}, log: log, kick: make(chan struct{}, 1)}
}

// recheckInterval is how often serve checks the catalog again without a
// reload: an image replaced or removed by hand is noticed within it.
const recheckInterval = time.Minute

// Run checks current() at once, again after each Changed and every
// interval, until ctx ends.
func (c *catalogCheck) Run(ctx context.Context, current func() *profiles.Set, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.Check(ctx, current())
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-t.C:
		}
	}
}

// Changed asks Run for a pass over the current set soon (a reload).
func (c *catalogCheck) Changed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Status returns what the last finished pass found (the zero status,
// Checked false, before the first).
func (c *catalogCheck) Status() catalogStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// imageKey and fileKey name one artifact to check, the key of its
// result: an image with its digest and format (the same file under
// another digest is another check), or a plain file (an installer's
// kernel or initrd).
func imageKey(img profiles.Image) string {
	return "image\x00" + img.URL + "\x00" + img.Format + "\x00" + strings.ToLower(img.SHA256)
}

func fileKey(name string) string { return "file\x00" + name }

// local reports whether name is a path in the artifacts directory (not an
// http(s) URL, which the appliance cannot check without fetching it).
func local(name string) bool { return name != "" && !strings.Contains(name, "://") }

// Check makes one pass over set and returns what it found. Artifacts are
// checked in the catalog's order; ctx ends a pass early (its results are
// then not kept).
func (c *catalogCheck) Check(ctx context.Context, set *profiles.Set) catalogStatus {
	start := time.Now()
	results := map[string]artifactResult{}
	check := func(key string, run func() error) {
		if _, done := results[key]; done || ctx.Err() != nil {
			return
		}
		var r artifactResult
		if err := run(); err != nil {
			r.problem = err.Error()
		}
		results[key] = r
	}
	for _, v := range set.Versions() {
		if local(v.Image.URL) {
			check(imageKey(v.Image), func() error { return c.checkImage(v.Image) })
		}
	}
	for _, in := range installers(set) {
		for _, f := range []string{in.Kernel, in.Initrd} {
			if local(f) {
				check(fileKey(f), func() error { return c.checkFile(f) })
			}
		}
	}
	if ctx.Err() != nil {
		return c.Status()
	}
	c.mu.Lock()
	before := c.status
	c.results = results
	c.status = c.statusLocked(set)
	c.status.Took = time.Since(start)
	st := c.status
	c.mu.Unlock()
	if c.log != nil {
		if !slices.Equal(before.Problems, st.Problems) || !before.Checked {
			for _, p := range st.Problems {
				c.log.Error("catalog check: hosts of this version are held, not installed", "problem", p)
			}
			c.log.Info("catalog checked", "versions_ok", st.OK, "versions_failed", st.Failed, "took", st.Took.Round(time.Millisecond))
		}
	}
	if c.onChecked != nil {
		c.onChecked(st)
	}
	return st
}

// installers are every installer of set: the defaults', each version's
// and each host's (its own, its group's or its version's).
func installers(set *profiles.Set) []*profiles.Installer {
	var all []*profiles.Installer
	if in := set.DefaultInstaller(); in != nil {
		all = append(all, in)
	}
	for _, v := range set.Versions() {
		if v.Installer != nil {
			all = append(all, v.Installer)
		}
	}
	for _, h := range set.Hosts() {
		if h.Installer != nil {
			all = append(all, h.Installer)
		}
	}
	return all
}

// statusLocked counts set's versions by outcome and words every
// problem: each version's image and installer, then the installer files
// of hosts and defaults that no version's problem named. c.mu is held.
func (c *catalogCheck) statusLocked(set *profiles.Set) catalogStatus {
	st := catalogStatus{Checked: true}
	named := map[string]bool{} // file keys whose problem is in st.Problems
	for _, v := range set.Versions() {
		p, pending := c.imageProblemLocked(v)
		var problems []string
		failed := p != ""
		if failed {
			problems = append(problems, p)
		}
		if v.Installer != nil {
			ps, ifailed, ipending := c.installerProblemsLocked(v.Installer, named)
			for _, ip := range ps {
				problems = append(problems, v.Source+": version "+v.Name+": "+ip)
			}
			failed, pending = failed || ifailed, pending || ipending
		}
		switch {
		case failed:
			st.Failed++
			st.Problems = append(st.Problems, problems...)
		case pending:
			st.Pending++
		default:
			st.OK++
		}
	}
	if in := set.DefaultInstaller(); in != nil {
		ps, _, _ := c.installerProblemsLocked(in, named)
		for _, p := range ps {
			st.Problems = append(st.Problems, "defaults: "+p)
		}
	}
	for _, h := range set.Hosts() {
		if h.Installer == nil {
			continue
		}
		ps, _, _ := c.installerProblemsLocked(h.Installer, named)
		for _, p := range ps {
			st.Problems = append(st.Problems, h.Source+": host "+h.Hostname+": "+p)
		}
	}
	return st
}

// installerProblemsLocked words the problems of in's files not yet in
// named, and adds them there; failed reports a file with a problem
// (named before or not), pending a file not checked yet.
// c.mu is held.
func (c *catalogCheck) installerProblemsLocked(in *profiles.Installer, named map[string]bool) (problems []string, failed, pending bool) {
	for _, f := range []string{in.Kernel, in.Initrd} {
		if !local(f) {
			continue
		}
		r, ok := c.results[fileKey(f)]
		switch {
		case !ok:
			pending = true
		case r.problem != "":
			failed = true
			if !named[fileKey(f)] {
				named[fileKey(f)] = true
				problems = append(problems, "installer: "+r.problem)
			}
		}
	}
	return problems, failed, pending
}

// imageProblemLocked is why v's image cannot be installed ("" if it
// can), or pending when it was not checked yet. c.mu is held.
func (c *catalogCheck) imageProblemLocked(v *profiles.Version) (problem string, pending bool) {
	if !local(v.Image.URL) {
		return "", false
	}
	r, ok := c.results[imageKey(v.Image)]
	if !ok {
		return "", true
	}
	if r.problem != "" {
		return v.Source + ": version " + v.Name + ": " + r.problem, false
	}
	return "", false
}

// Held says why host may not be given its installer now, "" when it may:
// the version it would install (name, else the profile's) or its
// installer failed the check, or was not checked yet. A host with no
// version is not held here (it has no plan to fail).
func (c *catalogCheck) Held(set *profiles.Set, host *profiles.Host, name string) string {
	v := host.Version
	if name != "" {
		if cv, ok := set.Version(name); ok {
			v = cv
		}
	}
	if v == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.results == nil {
		return "version " + v.Name + ": the catalog check has not finished yet"
	}
	if host.Installer != nil {
		switch ps, failed, pending := c.installerProblemsLocked(host.Installer, map[string]bool{}); {
		case pending:
			return "version " + v.Name + ": its installer is being checked"
		case failed:
			return host.Source + ": host " + host.Hostname + ": " + ps[0]
		}
	}
	p, pending := c.imageProblemLocked(v)
	if pending {
		return "version " + v.Name + ": its image is being checked"
	}
	return p
}

// checkImage checks a version's image: a chunked one's index must be
// readable and of the catalog's image, with every chunk in the store; any
// other must be a file whose SHA-256 is the catalog's.
func (c *catalogCheck) checkImage(img profiles.Image) error {
	if img.Format == agentapi.FormatChunked {
		return c.checkChunked(img)
	}
	sum, err := c.digests.Sum(img.URL)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.URL, plainErr(err))
	}
	if !strings.EqualFold(sum, img.SHA256) {
		return fmt.Errorf("image %s: its sha256 is %s, the catalog says %s (rackboot image add prints the right entry)", img.URL, sum, img.SHA256)
	}
	return nil
}

// checkChunked checks a chunked image: its index and every chunk of it.
// The chunks are checked by name and size only: a chunk's name is its
// SHA-256, which the agent verifies as it fetches it.
func (c *catalogCheck) checkChunked(img profiles.Image) error {
	root, err := os.OpenRoot(c.dir)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.URL, plainErr(err))
	}
	defer root.Close()
	f, err := root.Open(img.URL)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.URL, plainErr(err))
	}
	ix, err := chunkstore.ReadIndex(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("image %s: %w", img.URL, err)
	}
	if !strings.EqualFold(ix.Digest(), img.SHA256) {
		return fmt.Errorf("image %s: the index is of an image of sha256 %s, the catalog says %s", img.URL, ix.Digest(), img.SHA256)
	}
	missing, first := 0, ""
	seen := make(map[chunkstore.ChunkID]bool, len(ix.Chunks))
	for _, ch := range ix.Chunks {
		if ch.ID.IsZero() || seen[ch.ID] {
			continue
		}
		seen[ch.ID] = true
		name := chunkstore.ChunkPath(profiles.ChunkDir, ch.ID)
		fi, err := root.Stat(name)
		if err == nil && fi.Mode().IsRegular() && fi.Size() == ch.Stored {
			continue
		}
		if missing++; first == "" {
			first = name
		}
	}
	if missing > 0 {
		return fmt.Errorf("image %s: %d of its %d chunks are missing or damaged in the chunk store, the first %s (import the image again with rackboot image add)", img.URL, missing, len(seen), first)
	}
	return nil
}

// checkFile checks that an installer's kernel or initrd is a non-empty
// regular file.
func (c *catalogCheck) checkFile(name string) error {
	size, err := c.digests.Stat(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, plainErr(err))
	}
	if size == 0 {
		return fmt.Errorf("%s: empty file", name)
	}
	return nil
}

// plainErr words a file error for an admin: the path is already named.
func plainErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("no such file in the artifacts directory")
	case errors.Is(err, fs.ErrPermission):
		return errors.New("permission denied (the daemon's user cannot read it)")
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", path.Base(pe.Path), pe.Err)
	}
	return err
}
