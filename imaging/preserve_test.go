package imaging

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"

	"github.com/rackboot/rackboot/agentapi"
)

// guardLayout is the first install of TestInstallGuardsPreserved: an ESP,
// the config drive, a preserved ext4 data partition and a scratch
// partition behind it.
func guardLayout() []agentapi.Partition {
	return []agentapi.Partition{
		{Name: "esp", Type: "esp", Size: 34 * mib},
		{Name: "config", Type: "linux", Size: 8 * mib, Content: agentapi.ContentConfigDrive},
		{Name: "data", Type: "linux", Size: 32 * mib, Filesystem: agentapi.FilesystemExt4, Preserve: true},
		{Name: "scratch", Type: "linux", Size: agentapi.Rest},
	}
}

// TestInstallGuardsPreserved installs a layout with a preserved data
// partition, writes into it as the installed system would, and then
// tries layouts that would destroy it. Each is refused with a
// PreservedError naming the partition, its size and file system, and the
// disk stays byte-for-byte as it was; the same plan with WipeData goes
// on.
func TestInstallGuardsPreserved(t *testing.T) {
	ctx := context.Background()
	edit := func(f func(parts []agentapi.Partition) []agentapi.Partition) []agentapi.Partition {
		return f(guardLayout())
	}
	tests := []struct {
		name       string
		parts      []agentapi.Partition
		wantChange string
		// after checks the disk after the WipeData install.
		after func(t *testing.T, p string)
	}{
		{
			name: "dropped",
			parts: edit(func(ps []agentapi.Partition) []agentapi.Partition {
				return append(ps[:2], ps[3:]...)
			}),
			wantChange: "no longer in the layout",
			after: func(t *testing.T, p string) {
				for _, part := range readTable(t, p, 512).Partitions {
					if part.Name == "data" {
						t.Error("data still in the table")
					}
				}
			},
		},
		{
			name: "renamed",
			parts: edit(func(ps []agentapi.Partition) []agentapi.Partition {
				ps[2].Name = "srv"
				return ps
			}),
			wantChange: "no longer in the layout",
			after: func(t *testing.T, p string) {
				if srv := partitionByName(t, p, 512, "srv"); srv.Attributes&PreservedAttribute == 0 {
					t.Error("the renamed partition is not marked preserved")
				}
			},
		},
		{
			name: "no longer preserved",
			parts: edit(func(ps []agentapi.Partition) []agentapi.Partition {
				ps[2].Preserve = false
				return ps
			}),
			wantChange: "no longer preserve: true in the layout; it would be recreated and formatted ext4",
			after: func(t *testing.T, p string) {
				if data := partitionByName(t, p, 512, "data"); data.Attributes&PreservedAttribute != 0 {
					t.Error("an unpreserved partition is still marked preserved")
				}
			},
		},
		{
			name: "resized",
			parts: edit(func(ps []agentapi.Partition) []agentapi.Partition {
				ps[2].Size = 40 * mib
				return ps
			}),
			wantChange: "would be resized from 32MiB to 40MiB",
			after: func(t *testing.T, p string) {
				if data := partitionByName(t, p, 512, "data"); data.GetSize() != 40*mib {
					t.Errorf("data is %d bytes, want 40 MiB", data.GetSize())
				}
			},
		},
		{
			name: "moved by a larger partition before it",
			parts: edit(func(ps []agentapi.Partition) []agentapi.Partition {
				ps[0].Size = 40 * mib
				return ps
			}),
			wantChange: "would have to move",
		},
		{
			name: "retyped",
			parts: edit(func(ps []agentapi.Partition) []agentapi.Partition {
				ps[2].Type, ps[2].Filesystem = "swap", agentapi.FilesystemSwap
				return ps
			}),
			wantChange: "has type 0FC63DAF-8483-4772-8E79-3D69D8477DE4 on the disk, the layout now says swap",
		},
		{
			name: "another file system",
			parts: edit(func(ps []agentapi.Partition) []agentapi.Partition {
				ps[2].Filesystem = agentapi.FilesystemSwap
				return ps
			}),
			wantChange: "would have to become swap",
			after: func(t *testing.T, p string) {
				data := partitionByName(t, p, 512, "data")
				if fs := probeFilesystem(openRead(t, p), data.GetStart(), data.GetSize()); fs != agentapi.FilesystemSwap {
					t.Errorf("data holds %q after the wipe, want swap", fs)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newDisk(t, 128*mib)
			first := &agentapi.Plan{Partitions: guardLayout(), ConfigDrive: testNoCloud(t, "i-1")}
			if _, err := testInstaller(t).Install(ctx, first, Target{Path: p}); err != nil {
				t.Fatal(err)
			}
			data := partitionByName(t, p, 512, "data")
			if data.Attributes&PreservedAttribute == 0 {
				t.Fatalf("data: attributes %#x, want the preserved bit", data.Attributes)
			}
			for _, name := range []string{"esp", "config", "scratch"} {
				if a := partitionByName(t, p, 512, name).Attributes; a != 0 {
					t.Errorf("%s: attributes %#x, want none", name, a)
				}
			}
			mark := []byte("the users' data")
			writeAt(t, p, data.GetStart()+8*mib, mark)

			plan := &agentapi.Plan{Partitions: tt.parts, ConfigDrive: testNoCloud(t, "i-2")}
			before := sha256File(t, p)
			_, err := testInstaller(t).Install(ctx, plan, Target{Path: p})
			var pe *PreservedError
			if !errors.As(err, &pe) || !errors.Is(err, ErrLayoutChanged) {
				t.Fatalf("Install() = %v, want a PreservedError", err)
			}
			t.Logf("refused: %v", err)
			want := PreservedError{Name: "data", Size: 32 * mib, Filesystem: agentapi.FilesystemExt4}
			if pe.Name != want.Name || pe.Size != want.Size || pe.Filesystem != want.Filesystem || !strings.Contains(pe.Change, tt.wantChange) {
				t.Errorf("error %+v, want %+v with a change saying %q", *pe, want, tt.wantChange)
			}
			for _, s := range []string{`"data"`, "32MiB", "ext4", "rackboot reinstall --wipe-data"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error does not say %s", s)
				}
			}
			if sha256File(t, p) != before {
				t.Fatal("a refused install changed the disk")
			}

			plan.WipeData = true
			if _, err := testInstaller(t).Install(ctx, plan, Target{Path: p}); err != nil {
				t.Fatalf("Install() with WipeData = %v", err)
			}
			if tt.after != nil {
				tt.after(t, p)
			}
		})
	}
}

// TestInstallKeepsWhatWipeDataDoesNotNeed: WipeData gives up only the
// preserved partitions the new layout cannot keep; another one it keeps
// as it is stays, bytes and all.
func TestInstallKeepsWhatWipeDataDoesNotNeed(t *testing.T) {
	ctx := context.Background()
	layout := []agentapi.Partition{
		{Name: "home", Type: "linux", Size: 16 * mib, Preserve: true},
		{Name: "data", Type: "linux", Size: 16 * mib, Preserve: true},
	}
	p := newDisk(t, 64*mib)
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{Partitions: layout}, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	home := partitionByName(t, p, 512, "home")
	want := fillRandom(t, p, home)
	plan := &agentapi.Plan{Partitions: layout[:1], WipeData: true}
	if _, err := testInstaller(t).Install(ctx, plan, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	after := partitionByName(t, p, 512, "home")
	if after.GUID != home.GUID || !bytes.Equal(readRange(t, p, after.GetStart(), after.GetSize()), want) {
		t.Error("WipeData destroyed a partition the layout keeps")
	}
	if n := len(readTable(t, p, 512).Partitions); n != 1 {
		t.Errorf("%d partitions, want home only", n)
	}
}

// TestInstallGuardsPreservedWholeDisk: with a whole-disk image, a layout
// that drops the preserved partition is refused before the image is
// fetched.
func TestInstallGuardsPreservedWholeDisk(t *testing.T) {
	ctx := context.Background()
	img := osImage(t, 512, 16*mib, 1)
	file := compress(t, agentapi.FormatZstd, img)
	ts, srv := serveFile(t, file)
	image := &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(file), RawSize: 16 * mib}
	p := newDisk(t, 64*mib)
	first := &agentapi.Plan{Image: image, Partitions: []agentapi.Partition{{Name: "data", Type: "linux", Size: 16 * mib, Preserve: true}}}
	if _, err := testInstaller(t).Install(ctx, first, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	requests := len(srv.seen())
	before := sha256File(t, p)
	plan := &agentapi.Plan{Image: image}
	var pe *PreservedError
	if _, err := testInstaller(t).Install(ctx, plan, Target{Path: p}); !errors.As(err, &pe) || pe.Name != "data" || !strings.Contains(pe.Change, "the image and the layout would be written over it") {
		t.Fatalf("Install() = %v, want a PreservedError for data", err)
	}
	if sha256File(t, p) != before || len(srv.seen()) != requests {
		t.Error("a refused install changed the disk or fetched the image")
	}
	plan.WipeData = true
	if _, err := testInstaller(t).Install(ctx, plan, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
}

// TestInstallMarksOldPreserved: a preserved partition from before the
// mark existed gets it when an install keeps it, and is guarded from
// then on.
func TestInstallMarksOldPreserved(t *testing.T) {
	ctx := context.Background()
	p := newDisk(t, 32*mib)
	g, _ := newGeometry(32*mib, 512)
	b, err := file.OpenFromPath(p, false)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := b.Writable()
	old := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Name: "data", Type: gpt.LinuxFilesystem, Start: g.align(), End: 9*g.align() - 1, GUID: strings.ToUpper(uuid.NewString())},
	}}
	if err := old.Write(w, 32*mib); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if a := partitionByName(t, p, 512, "data").Attributes; a != 0 {
		t.Fatalf("attributes %#x before", a)
	}
	layout := []agentapi.Partition{{Name: "data", Type: "linux", Size: 8 * mib, Preserve: true}, {Name: "x", Type: "linux", Size: agentapi.Rest}}
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{Partitions: layout}, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	if a := partitionByName(t, p, 512, "data").Attributes; a != PreservedAttribute {
		t.Errorf("attributes %#x after keeping it, want %#x", a, uint64(PreservedAttribute))
	}
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{Partitions: layout[1:]}, Target{Path: p}); !errors.Is(err, ErrLayoutChanged) {
		t.Errorf("dropping it: %v, want ErrLayoutChanged", err)
	}
}

// TestInstallDamagedTable: a GPT whose two copies are both damaged may
// have listed preserved partitions; only WipeData replaces it.
func TestInstallDamagedTable(t *testing.T) {
	ctx := context.Background()
	p := newDisk(t, 32*mib)
	layout := &agentapi.Plan{Partitions: []agentapi.Partition{{Name: "a", Type: "linux", Size: agentapi.Rest}}}
	if _, err := testInstaller(t).Install(ctx, layout, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	// Break the entries' CRC in both headers (bytes 88-91 of each).
	writeAt(t, p, 512+88, []byte{1, 2, 3, 4})
	writeAt(t, p, 32*mib-512+88, []byte{1, 2, 3, 4})
	before := sha256File(t, p)
	_, err := testInstaller(t).Install(ctx, layout, Target{Path: p})
	if !errors.Is(err, ErrLayoutChanged) || !strings.Contains(err.Error(), "--wipe-data") {
		t.Fatalf("Install() on a damaged table = %v, want ErrLayoutChanged naming --wipe-data", err)
	}
	if sha256File(t, p) != before {
		t.Error("a refused install changed the disk")
	}
	layout.WipeData = true
	if _, err := testInstaller(t).Install(ctx, layout, Target{Path: p}); err != nil {
		t.Fatalf("Install() with WipeData = %v", err)
	}
}

// TestProbeFilesystem recognises what the installer writes.
func TestProbeFilesystem(t *testing.T) {
	const size = 40 * mib
	for _, fs := range []string{agentapi.FilesystemExt4, agentapi.FilesystemSwap, agentapi.FilesystemVFAT} {
		t.Run(fs, func(t *testing.T) {
			p := newDisk(t, size)
			b, err := file.OpenFromPath(p, false)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			w, _ := b.Writable()
			if err := makeFilesystem(b, w, 0, size, 512, fs, "x"); err != nil {
				t.Fatal(err)
			}
			if got := probeFilesystem(openRead(t, p), 0, size); got != fs {
				t.Errorf("probe = %q, want %q", got, fs)
			}
		})
	}
	t.Run("xfs", func(t *testing.T) {
		p := newDisk(t, mib)
		writeAt(t, p, 0, []byte("XFSB"))
		if got := probeFilesystem(openRead(t, p), 0, mib); got != agentapi.FilesystemXFS {
			t.Errorf("probe = %q, want xfs", got)
		}
	})
	t.Run("none", func(t *testing.T) {
		p := newDisk(t, mib)
		writeAt(t, p, 0, pattern(mib, 3))
		if got := probeFilesystem(openRead(t, p), 0, mib); got != "" {
			t.Errorf("probe of random bytes = %q", got)
		}
		if got := probeFilesystem(openRead(t, p), 0, 100); got != "" {
			t.Errorf("probe of 100 bytes = %q", got)
		}
	})
}

// openRead opens an image file for reading until the test ends.
func openRead(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestInstallGuardsPreservedAfterImage: a whole-disk image of unknown size
// turns out to leave no room for the partitions before the preserved
// one. The image never reaches the partition, the old table stays, and
// the error says so rather than "nothing was written".
func TestInstallGuardsPreservedAfterImage(t *testing.T) {
	ctx := context.Background()
	plan := func(size int64, parts ...agentapi.Partition) *agentapi.Plan {
		img := osImage(t, 512, size, 1)
		ts, _ := serveFile(t, img)
		return &agentapi.Plan{Image: &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(img), RawSize: size}, Partitions: parts}
	}
	data := agentapi.Partition{Name: "data", Type: "linux", Size: 16 * mib, Preserve: true}
	p := newDisk(t, 64*mib)
	if _, err := testInstaller(t).Install(ctx, plan(16*mib, data), Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	kept := partitionByName(t, p, 512, "data")
	want := fillRandom(t, p, kept)

	next := plan(32*mib, agentapi.Partition{Name: "extra", Type: "linux", Size: 20 * mib}, data)
	next.Image.RawSize = 0 // an image on another server
	_, err := testInstaller(t).Install(ctx, next, Target{Path: p})
	var pe *PreservedError
	if !errors.As(err, &pe) || pe.Name != "data" || !strings.Contains(err.Error(), "the image was written before it") {
		t.Fatalf("Install() = %v, want a PreservedError for data saying the image was written", err)
	}
	t.Logf("refused: %v", err)
	if again := partitionByName(t, p, 512, "data"); again.GUID != kept.GUID ||
		!bytes.Equal(readRange(t, p, again.GetStart(), again.GetSize()), want) {
		t.Error("the preserved partition changed")
	}
}

// TestInstallKeepsUnrecognisedPreserved: a preserved partition in which
// the installer recognises no file system (encrypted, or left unformatted
// by a failed attempt) is kept as it is when the layout names a file
// system: it may hold data, so it is never formatted.
func TestInstallKeepsUnrecognisedPreserved(t *testing.T) {
	ctx := context.Background()
	layout := []agentapi.Partition{{Name: "data", Type: "linux", Size: 16 * mib, Preserve: true}}
	p := newDisk(t, 32*mib)
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{Partitions: layout}, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	data := partitionByName(t, p, 512, "data")
	want := fillRandom(t, p, data)
	layout[0].Filesystem = agentapi.FilesystemExt4
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{Partitions: layout}, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readRange(t, p, data.GetStart(), data.GetSize()), want) {
		t.Error("a preserved partition without a recognised file system was formatted")
	}
}
