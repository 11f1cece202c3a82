package imaging

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

func testNoCloud(t *testing.T, instance string) []agentapi.File {
	t.Helper()
	files, err := agentapi.NoCloud{
		InstanceID: instance,
		Hostname:   "node-07",
		Users:      []agentapi.User{{Name: "ops", PasswordHash: "$6$salt$hash", SSHKeys: []string{"ssh-ed25519 AAAAC3Nza ops@lab"}}},
		Network:    &agentapi.Network{MAC: "52:54:00:ab:cd:ef", Address: "10.0.0.7/24", Gateway: "10.0.0.1", DNS: []string{"10.0.0.1"}},
	}.Render()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// fileMap is files by name, as fatFiles reads them back.
func fileMap(files []agentapi.File) map[string][]byte {
	m := make(map[string][]byte, len(files))
	for _, f := range files {
		m[f.Name] = []byte(f.Content)
	}
	return m
}

func testInstaller(t *testing.T) *Installer {
	return &Installer{Logger: testLogger(t), Stream: StreamOptions{BufferSize: 1 << 20, RetryDelay: 1}}
}

// TestInstallLayout partitions an empty disk for each sector size, compares
// the table read back with a golden layout, and checks the ESP and the
// config drive with fsck.vfat and by reading their files back.
func TestInstallLayout(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			plan := &agentapi.Plan{
				Partitions: []agentapi.Partition{
					{Name: "bios", Type: "bios-boot", Size: mib},
					{Name: "esp", Type: "esp", Size: 260 * mib},
					{Name: "swap", Type: "swap", Size: 64 * mib},
					{Name: "root", Type: "linux-root-x86-64", Size: agentapi.Rest},
					{Name: "config", Type: "linux", Size: 8 * mib, Content: agentapi.ContentConfigDrive},
				},
				ConfigDrive: testNoCloud(t, "i-1"),
			}
			p := newDisk(t, gib)
			// Stale data where the swap partition will start, as a
			// previous install would leave.
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			f.WriteAt(bytes.Repeat([]byte{0xAA}, 4096), 262*mib)
			f.Close()

			res, err := testInstaller(t).Install(context.Background(), plan, Target{Path: p, SectorSize: ss})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, fmt.Sprintf("layout-%d.json", ss), dumpLayout(t, p, ss))
			if ss == 512 {
				sgdiskVerify(t, p)
			}
			if len(res.Partitions) != 5 || res.SectorSize != ss || res.Size != gib {
				t.Errorf("result = %+v", res)
			}

			esp := partitionByName(t, p, ss, "esp")
			fsckVfat(t, p, esp)
			if label, files := fatFiles(t, p, ss, esp); label != "ESP" || len(files) != 0 {
				t.Errorf("ESP: label %q, files %v", label, sortedKeys(files))
			}
			cfg := partitionByName(t, p, ss, "config")
			fsckVfat(t, p, cfg)
			label, files := fatFiles(t, p, ss, cfg)
			if label != "CIDATA" {
				t.Errorf("config drive label %q, want CIDATA", label)
			}
			if diff := cmp.Diff(fileMap(plan.ConfigDrive), files); diff != "" {
				t.Errorf("config drive files (-want +got):\n%s", diff)
			}
			swap := partitionByName(t, p, ss, "swap")
			if b := readRange(t, p, swap.GetStart(), mib); !bytes.Equal(b, make([]byte, mib)) {
				t.Error("stale bytes left at the start of the swap partition")
			}
		})
	}
}

// TestInstallWholeDisk streams a whole-disk image onto a larger disk, moves
// the backup GPT to the end and appends the config drive and a data
// partition, for each sector size.
func TestInstallWholeDisk(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			const imgSize = 24 * mib
			img := osImage(t, ss, imgSize, 1)
			file := compress(t, agentapi.FormatZstd, img)
			ts, srv := serveFile(t, file)
			srv.breaks, srv.breakFn = 1, cutAfter(t, file, len(file)/2)
			plan := &agentapi.Plan{
				Image: &agentapi.Image{URL: ts.URL + "/os.img.zst", SHA256: sha256Hex(file), RawSize: imgSize},
				Partitions: []agentapi.Partition{
					{Name: "config", Type: "linux", Size: 8 * mib, Content: agentapi.ContentConfigDrive},
					{Name: "data", Type: "linux", Size: agentapi.Rest},
				},
				ConfigDrive: testNoCloud(t, "i-2"),
			}
			p := newDisk(t, 128*mib)
			var phases []agentapi.Phase
			in := testInstaller(t)
			in.Progress = func(pr Progress) {
				if len(phases) == 0 || phases[len(phases)-1] != pr.Phase {
					phases = append(phases, pr.Phase)
				}
			}
			res, err := in.Install(context.Background(), plan, Target{Path: p, SectorSize: ss})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]agentapi.Phase{agentapi.PhaseImage, agentapi.PhasePartition, agentapi.PhaseFilesystems, agentapi.PhaseSync}, phases); diff != "" {
				t.Errorf("phases (-want +got):\n%s", diff)
			}
			if res.Image == nil || res.Image.Resumes != 1 || res.Image.Written != imgSize || res.Image.SHA256 != plan.Image.SHA256 {
				t.Errorf("image result = %+v, want one resume", res.Image)
			}
			golden(t, fmt.Sprintf("wholedisk-%d.json", ss), dumpLayout(t, p, ss))
			if ss == 512 {
				sgdiskVerify(t, p)
			}

			// The image's partitions hold the image's bytes.
			for _, name := range []string{"boot", "root"} {
				part := partitionByName(t, p, ss, name)
				got := readRange(t, p, part.GetStart(), part.GetSize())
				if !bytes.Equal(got, img[part.GetStart():part.GetStart()+part.GetSize()]) {
					t.Errorf("partition %q differs from the image", name)
				}
			}
			// The image's backup header is gone; the new one is at the end.
			if hdr := readRange(t, p, imgSize-int64(ss), 8); bytes.Equal(hdr, gptSignature) {
				t.Error("the image's backup GPT header is still mid-disk")
			}
			if hdr := readRange(t, p, 128*mib-int64(ss), 8); !bytes.Equal(hdr, gptSignature) {
				t.Error("no backup GPT header at the end of the disk")
			}
			cfg := partitionByName(t, p, ss, "config")
			if cfg.GetStart() < imgSize || cfg.GetStart()%mib != 0 {
				t.Errorf("config drive at %d, want 1 MiB aligned after the image", cfg.GetStart())
			}
			fsckVfat(t, p, cfg)
			if _, files := fatFiles(t, p, ss, cfg); !cmp.Equal(files, fileMap(plan.ConfigDrive)) {
				t.Errorf("config drive holds %v", sortedKeys(files))
			}
		})
	}
}

func TestInstallImageIntoPartition(t *testing.T) {
	root := pattern(4*mib+512, 3)
	file := compress(t, agentapi.FormatXz, root)
	ts, _ := serveFile(t, file)
	plan := &agentapi.Plan{
		Image: &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(file), Format: agentapi.FormatXz},
		Partitions: []agentapi.Partition{
			{Name: "esp", Type: "esp", Size: 40 * mib},
			{Name: "root", Type: "linux-root-x86-64", Size: 8 * mib, Content: agentapi.ContentImage},
		},
	}
	p := newDisk(t, 64*mib)
	in := testInstaller(t)
	in.Buffered = true
	res, err := in.Install(context.Background(), plan, Target{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	part := partitionByName(t, p, 512, "root")
	if got := readRange(t, p, part.GetStart(), int64(len(root))); !bytes.Equal(got, root) {
		t.Error("root partition differs from the image")
	}
	if res.Image.Format != agentapi.FormatXz || res.Image.Written != int64(len(root)) {
		t.Errorf("image result %+v", res.Image)
	}
	sgdiskVerify(t, p)
	fsckVfat(t, p, partitionByName(t, p, 512, "esp"))

	// An image larger than its partition is refused before any write.
	before := sha256File(t, p)
	plan.Image.RawSize = 9 * mib
	if _, err := testInstaller(t).Install(context.Background(), plan, Target{Path: p}); !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("Install() = %v, want ErrImageTooLarge", err)
	}
	if sha256File(t, p) != before {
		t.Error("disk changed")
	}
}

// fillRandom fills a partition with random bytes and returns them.
func fillRandom(t *testing.T, p string, part *gpt.Partition) []byte {
	t.Helper()
	b := make([]byte, part.GetSize())
	rand.Read(b)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, part.GetStart()); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInstallPreserve reinstalls a machine whose data partition is marked
// preserve: its bytes and PARTUUID survive, the rest is rewritten; a layout
// that would move it is refused with the disk untouched.
func TestInstallPreserve(t *testing.T) {
	ctx := context.Background()
	t.Run("partitioned", func(t *testing.T) {
		plan := func(espSize agentapi.Size, instance string) *agentapi.Plan {
			return &agentapi.Plan{
				Partitions: []agentapi.Partition{
					{Name: "esp", Type: "esp", Size: espSize},
					{Name: "config", Type: "linux", Size: 8 * mib, Content: agentapi.ContentConfigDrive},
					{Name: "data", Type: "linux", Size: agentapi.Rest, Preserve: true},
				},
				ConfigDrive: testNoCloud(t, instance),
			}
		}
		p := newDisk(t, 96*mib)
		if _, err := testInstaller(t).Install(ctx, plan(40*mib, "i-1"), Target{Path: p}); err != nil {
			t.Fatal(err)
		}
		data := partitionByName(t, p, 512, "data")
		want := fillRandom(t, p, data)

		res, err := testInstaller(t).Install(ctx, plan(40*mib, "i-2"), Target{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		after := partitionByName(t, p, 512, "data")
		if !bytes.Equal(readRange(t, p, after.GetStart(), after.GetSize()), want) || after.GUID != data.GUID {
			t.Error("preserved partition changed")
		}
		if !res.Partitions[2].Preserved || res.Partitions[0].Preserved {
			t.Errorf("result partitions %+v", res.Partitions)
		}
		_, files := fatFiles(t, p, 512, partitionByName(t, p, 512, "config"))
		if !bytes.Contains(files["meta-data"], []byte("i-2")) {
			t.Errorf("config drive not rewritten: %s", files["meta-data"])
		}

		// A bigger ESP would overlap the data partition.
		before := sha256File(t, p)
		_, err = testInstaller(t).Install(ctx, plan(60*mib, "i-3"), Target{Path: p})
		if !errors.Is(err, ErrLayoutChanged) {
			t.Fatalf("Install() = %v, want ErrLayoutChanged", err)
		}
		t.Logf("refused: %v", err)
		if sha256File(t, p) != before {
			t.Error("disk changed by a refused install")
		}
	})

	t.Run("whole disk", func(t *testing.T) {
		plan := func(img []byte, dataSize agentapi.Size) *agentapi.Plan {
			file := compress(t, agentapi.FormatGzip, img)
			ts, _ := serveFile(t, file)
			return &agentapi.Plan{
				Image: &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(file)},
				Partitions: []agentapi.Partition{
					{Name: "config", Type: "linux", Size: 8 * mib, Content: agentapi.ContentConfigDrive},
					{Name: "data", Type: "linux", Size: dataSize, Preserve: true},
				},
				ConfigDrive: testNoCloud(t, "i"),
			}
		}
		p := newDisk(t, 48*mib)
		if _, err := testInstaller(t).Install(ctx, plan(osImage(t, 512, 16*mib, 1), agentapi.Rest), Target{Path: p}); err != nil {
			t.Fatal(err)
		}
		data := partitionByName(t, p, 512, "data")
		want := fillRandom(t, p, data)

		// A new image version of the same size, same layout.
		v2 := osImage(t, 512, 16*mib, 2)
		if _, err := testInstaller(t).Install(ctx, plan(v2, agentapi.Rest), Target{Path: p}); err != nil {
			t.Fatal(err)
		}
		after := partitionByName(t, p, 512, "data")
		if !bytes.Equal(readRange(t, p, after.GetStart(), after.GetSize()), want) || after.GUID != data.GUID {
			t.Error("preserved partition changed")
		}
		root := partitionByName(t, p, 512, "root")
		if !bytes.Equal(readRange(t, p, root.GetStart(), root.GetSize()), v2[root.GetStart():root.GetStart()+root.GetSize()]) {
			t.Error("root does not hold the new image")
		}
		sgdiskVerify(t, p)

		// A bigger image would overwrite the data partition: refused
		// before writing, since the plan states the image size.
		before := sha256File(t, p)
		big := plan(osImage(t, 512, 32*mib, 3), agentapi.Rest)
		big.Image.RawSize = 32 * mib
		var pe *PreservedError
		if _, err := testInstaller(t).Install(ctx, big, Target{Path: p}); !errors.As(err, &pe) || pe.Name != "data" {
			t.Fatalf("Install() = %v, want a PreservedError for data", err)
		}
		if sha256File(t, p) != before {
			t.Error("disk changed by a refused install")
		}
		// Without a stated size the stream stops at the data partition
		// and the old table still lists it.
		big.Image.RawSize = 0
		if _, err := testInstaller(t).Install(ctx, big, Target{Path: p}); !errors.Is(err, ErrImageTooLarge) {
			t.Fatalf("Install() = %v, want ErrImageTooLarge", err)
		}
		if got := readRange(t, p, after.GetStart(), after.GetSize()); !bytes.Equal(got, want) {
			t.Error("preserved partition overwritten by a too large image")
		}
		if again := partitionByName(t, p, 512, "data"); again.GUID != data.GUID {
			t.Error("the partition table no longer lists the preserved partition")
		}
		// A different size for the preserved partition is refused.
		before = sha256File(t, p)
		if _, err := testInstaller(t).Install(ctx, plan(v2, 20*mib), Target{Path: p}); !errors.Is(err, ErrLayoutChanged) {
			t.Fatalf("Install() = %v, want ErrLayoutChanged", err)
		}
		if sha256File(t, p) != before {
			t.Error("disk changed by a refused install")
		}
	})
}

// TestInstallBadChecksum: a corrupted or wrong image fails the install, and
// for a whole-disk image the disk keeps its previous partition table since
// the image's head is never written.
func TestInstallBadChecksum(t *testing.T) {
	ctx := context.Background()
	p := newDisk(t, 64*mib)
	first := &agentapi.Plan{Partitions: []agentapi.Partition{{Name: "data", Type: "linux", Size: agentapi.Rest, Preserve: true}}}
	if _, err := testInstaller(t).Install(ctx, first, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	img := osImage(t, 512, 8*mib, 1)
	file := compress(t, agentapi.FormatZstd, img)
	ts, _ := serveFile(t, file)
	bad := sha256Hex(append(file, 0))
	var reported error
	// WipeData: the image drops the preserved partition, which the
	// failed install must leave anyway.
	plan := &agentapi.Plan{Image: &agentapi.Image{URL: ts.URL, SHA256: bad}, WipeData: true}
	_, err := testInstaller(t).Install(ctx, plan, Target{Path: p})
	reported = err
	if !errors.Is(reported, ErrChecksum) {
		t.Fatalf("Install() = %v, want ErrChecksum", err)
	}
	t.Logf("reported: %v", reported)
	if got := readTable(t, p, 512).Partitions; len(got) != 1 || got[0].Name != "data" {
		t.Errorf("partition table after a failed install: %+v", got)
	}
	if head := readRange(t, p, 0, mib); bytes.Equal(head, img[:mib]) {
		t.Error("the bad image's head reached the disk")
	}

	plan = &agentapi.Plan{Image: &agentapi.Image{URL: ts.URL, SHA256: bad}, Partitions: []agentapi.Partition{{Name: "root", Type: "linux", Size: agentapi.Rest, Content: agentapi.ContentImage}}, WipeData: true}
	if _, err := testInstaller(t).Install(ctx, plan, Target{Path: p}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Install() into a partition = %v, want ErrChecksum", err)
	}
}

// TestInstallRefusesBeforeWriting: plans that cannot fit leave the disk
// byte-for-byte as it was.
func TestInstallRefusesBeforeWriting(t *testing.T) {
	img := osImage(t, 512, 8*mib, 1)
	file := compress(t, agentapi.FormatZstd, img)
	ts, _ := serveFile(t, file)
	tests := []struct {
		name    string
		plan    *agentapi.Plan
		ss      int
		wantErr error
	}{
		{name: "partitions too big", wantErr: ErrDiskTooSmall, plan: &agentapi.Plan{Partitions: []agentapi.Partition{
			{Name: "esp", Type: "esp", Size: 34 * mib},
		}}},
		{name: "image too big", wantErr: ErrImageTooLarge, plan: &agentapi.Plan{Image: &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(file), RawSize: 33 * mib}}},
		{name: "image and appended partitions too big", wantErr: ErrDiskTooSmall, plan: &agentapi.Plan{
			Image:      &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(file), RawSize: 20 * mib},
			Partitions: []agentapi.Partition{{Name: "data", Type: "linux", Size: 12 * mib}},
		}},
		{name: "4Kn ESP below the FAT32 minimum", ss: 4096, wantErr: ErrInvalidPlan, plan: &agentapi.Plan{Partitions: []agentapi.Partition{
			{Name: "esp", Type: "esp", Size: 20 * mib},
		}}},
		{name: "invalid plan", wantErr: ErrInvalidPlan, plan: &agentapi.Plan{Partitions: []agentapi.Partition{{Name: "x", Type: "ntfs", Size: mib}}}},
		{name: "below the rule's minimum", wantErr: ErrDiskTooSmall, plan: &agentapi.Plan{Disk: agentapi.DiskRule{MinSize: 64 * mib}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newDisk(t, 32*mib)
			// Some content to notice any write.
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			f.WriteAt(pattern(mib, 9), 0)
			f.WriteAt(pattern(mib, 9), 31*mib)
			f.Close()
			before := sha256File(t, p)
			_, err := testInstaller(t).Install(context.Background(), tt.plan, Target{Path: p, SectorSize: tt.ss})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Install() = %v, want %v", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
			if sha256File(t, p) != before {
				t.Error("disk changed")
			}
		})
	}
}

func TestInstallTargetErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{}, Target{Path: t.TempDir()}); err == nil {
		t.Error("a directory accepted as target")
	}
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{}, Target{Path: "/nonexistent/disk"}); err == nil {
		t.Error("a missing path accepted as target")
	}
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{}, Target{Path: newDisk(t, mib), SectorSize: 1024}); err == nil {
		t.Error("1024-byte sectors accepted")
	}
	// An image made for 512-byte sectors cannot go on a 4Kn disk.
	img := osImage(t, 512, 8*mib, 1)
	ts, _ := serveFile(t, img)
	plan := &agentapi.Plan{Image: &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(img)}}
	_, err := testInstaller(t).Install(ctx, plan, Target{Path: newDisk(t, 64*mib), SectorSize: 4096})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("512-byte sectors")) {
		t.Errorf("512-byte image on a 4Kn disk: %v", err)
	}
}

// TestInstallImageWithoutGPT writes a whole-disk image that has no GPT
// over a disk that had one: the old backup header must not survive at the
// end of the disk.
func TestInstallImageWithoutGPT(t *testing.T) {
	ctx := context.Background()
	p := newDisk(t, 16*mib)
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{Partitions: []agentapi.Partition{{Name: "a", Type: "linux", Size: agentapi.Rest}}}, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	img := pattern(3*mib+100, 4)
	ts, _ := serveFile(t, img)
	if _, err := testInstaller(t).Install(ctx, &agentapi.Plan{Image: &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(img)}}, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	if got := readRange(t, p, 0, int64(len(img))); !bytes.Equal(got, img) {
		t.Error("image not written")
	}
	if hdr := readRange(t, p, 16*mib-512, 8); bytes.Equal(hdr, gptSignature) {
		t.Error("old backup GPT header left at the end of the disk")
	}
	// Partitions cannot be appended to it.
	plan := &agentapi.Plan{Image: &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(img)}, Partitions: []agentapi.Partition{{Name: "c", Type: "linux", Size: mib}}}
	if _, err := testInstaller(t).Install(ctx, plan, Target{Path: p}); err == nil || !strings.Contains(err.Error(), "no GPT") {
		t.Errorf("appending to an image without GPT: %v", err)
	}
}

func TestInstallRefusesImagePartitionName(t *testing.T) {
	img := osImage(t, 512, 8*mib, 1)
	ts, _ := serveFile(t, img)
	plan := &agentapi.Plan{
		Image:      &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(img)},
		Partitions: []agentapi.Partition{{Name: "root", Type: "linux", Size: mib}},
	}
	if _, err := testInstaller(t).Install(context.Background(), plan, Target{Path: newDisk(t, 32*mib)}); !errors.Is(err, ErrInvalidPlan) {
		t.Fatalf("Install() = %v, want ErrInvalidPlan for a name the image uses", err)
	}
}
