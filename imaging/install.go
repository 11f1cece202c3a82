package imaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// Installer applies Plans to disks. The zero value is ready to use: it
// downloads images over HTTP and checks block devices against this
// machine's mounts.
type Installer struct {
	// Source returns the Opener of a plan's image. Nil means an HTTPSource
	// for the image URL without extra headers; the agent sets one that
	// adds its install token.
	Source func(agentapi.Image) Opener
	// Chunks returns the ChunkStore of a chunked image (agentapi
	// FormatChunked). Nil means an HTTPChunks for the image's chunk
	// store without extra headers; the agent sets one that adds its
	// install token.
	Chunks func(agentapi.Image) ChunkStore
	// Share, if set, is called when the assembly of a chunked image
	// whose plan turns peer distribution on (agentapi.Image.Peers)
	// starts, with the image's index and its offset on the target: the
	// agent serves its peers the chunks the returned onDisk is told of
	// (AssembleOptions.OnDisk, e.g. HeldChunks.Add), and spread asks
	// for AssembleOptions.Spread. docs/DESIGN.md, "Peer distribution".
	Share func(ix *chunkstore.Index, offset int64) (onDisk func(int), spread bool)
	// Host is where CheckIdle looks before a block device is opened.
	Host Host
	// Logger receives one line per step. Nil means slog.Default().
	Logger *slog.Logger
	// Progress receives the phases as they start: PhasePartition,
	// PhaseImage (repeatedly, with byte counts), PhaseFilesystems and
	// PhaseSync of agentapi. A whole-disk image comes before
	// PhasePartition, since the table is extended after it.
	Progress func(Progress)
	// Stream tunes the image stream: BufferSize, Buffers, Retries,
	// RetryDelay, ProgressInterval. The other fields come from the plan.
	Stream StreamOptions
	// Buffered writes the image through the page cache instead of with
	// O_DIRECT (see diskFile).
	Buffered bool
}

// Target is the disk or image file an Installer writes.
type Target struct {
	// Path is a block device ("/dev/sda", a /dev/disk/by-id link) or a
	// regular file holding a disk image.
	Path string
	// SectorSize is the logical sector size of an image file: 512 (the
	// default) or 4096. A block device reports its own; a non-zero value
	// that disagrees is an error.
	SectorSize int
}

// Result describes a finished install.
type Result struct {
	Path       string        `json:"path"`
	Size       int64         `json:"size"`
	SectorSize int           `json:"sector_size"`
	Image      *StreamResult `json:"image,omitempty"`
	// Chunked details how a chunked image was assembled; Image then
	// says Format "chunked", Written the image's size and Received the
	// compressed bytes fetched.
	Chunked    *AssembleResult `json:"chunked,omitempty"`
	Partitions []PartitionInfo `json:"partitions"`
}

// PartitionInfo is one partition of the table as written.
type PartitionInfo struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Type      string `json:"type"`  // type GUID
	GUID      string `json:"guid"`  // PARTUUID
	Start     int64  `json:"start"` // bytes
	Size      int64  `json:"size"`  // bytes
	Preserved bool   `json:"preserved,omitempty"`
}

// Install applies plan to the target. Everything that can be checked
// without the image (plan, idle disk, sizes, preserved partitions) is
// checked before the first write, so those errors leave the disk exactly as
// it was. An error after that means the install failed and the disk must
// not be booted as installed; preserved partitions are intact either way.
func (in *Installer) Install(ctx context.Context, plan *agentapi.Plan, t Target) (*Result, error) {
	log := in.logger().With("path", t.Path)
	if err := validate(plan); err != nil {
		return nil, err
	}
	if err := in.checkTools(plan); err != nil {
		return nil, err
	}
	switch t.SectorSize {
	case 0, 512, 4096:
	default:
		return nil, fmt.Errorf("imaging: sector size %d: want 512 or 4096", t.SectorSize)
	}
	path, err := filepath.EvalSymlinks(t.Path)
	if err != nil {
		return nil, fmt.Errorf("imaging: target: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("imaging: target: %w", err)
	}
	isDev := fi.Mode()&os.ModeDevice != 0
	switch {
	case isDev:
		d, err := in.Host.disk(filepath.Base(path))
		if err != nil {
			return nil, err
		}
		if err := in.Host.CheckIdle(d); err != nil {
			return nil, err
		}
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("imaging: target %s is neither a block device nor a regular file", path)
	}

	// O_EXCL on a block device fails with EBUSY while anything holds it,
	// and keeps others (udev probes, automounters) out while we write.
	b, err := file.OpenFromPathWithExclusive(path, false, true)
	if err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("%w: %v", ErrDiskBusy, err)
		}
		return nil, fmt.Errorf("imaging: open target: %w", err)
	}
	d, err := diskfs.OpenBackend(b, diskfs.WithOpenMode(diskfs.ReadWriteExclusive), diskfs.WithSectorSize(diskfs.SectorSize(t.SectorSize)))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("imaging: open target: %w", err)
	}
	defer d.Close()
	ss := int(d.LogicalBlocksize)
	if d.Size < int64(plan.Disk.MinSize) {
		return nil, fmt.Errorf("%w: %s is %s, the plan wants at least %v", ErrDiskTooSmall, path, agentapi.HumanBytes(d.Size), plan.Disk.MinSize)
	}
	if t.SectorSize != 0 && ss != t.SectorSize {
		return nil, fmt.Errorf("imaging: %s has %d-byte sectors, not %d", path, ss, t.SectorSize)
	}
	f, err := d.Backend.Sys()
	if err != nil {
		return nil, fmt.Errorf("imaging: open target: %w", err)
	}
	df := &diskFile{File: f}
	if !in.Buffered {
		df = openDirect(f, path)
	}
	defer df.Close()

	j := &job{in: in, plan: plan, path: path, d: d, f: f, df: df, ss: ss, log: log.With("sector_size", ss)}
	if j.g, err = newGeometry(d.Size, ss); err != nil {
		return nil, err
	}
	existing, err := readGPT(d.Backend, d.Size, ss)
	if err != nil {
		// Either copy may have listed preserved partitions.
		if hasPreserved(plan) || !plan.WipeData {
			return nil, fmt.Errorf("%w: %v; the installer cannot tell which partitions it must preserve; "+
				"to replace the table and everything on the disk: rackboot reinstall --wipe-data --reason WHY HOST", ErrLayoutChanged, err)
		}
		log.Warn("replacing damaged partition table: the reinstall allows wiping data", "err", err)
	}
	if err := j.protect(existing); err != nil {
		return nil, err
	}
	if plan.WholeDisk() {
		err = j.wholeDisk(ctx)
	} else {
		err = j.partitioned(ctx)
	}
	if err != nil {
		return nil, err
	}

	in.progress(Progress{Phase: agentapi.PhaseSync})
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("imaging: sync: %w", err)
	}
	return j.result(path), nil
}

func hasPreserved(p *agentapi.Plan) bool {
	for _, part := range p.Partitions {
		if part.Preserve {
			return true
		}
	}
	return false
}

func (in *Installer) logger() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.Default()
}

func (in *Installer) progress(p Progress) {
	if in.Progress != nil {
		in.Progress(p)
	}
}

// job is one Install in progress.
type job struct {
	in   *Installer
	plan *agentapi.Plan
	path string // the target, symlinks resolved
	d    *disk.Disk
	f    *os.File  // the disk, shared with go-diskfs
	df   *diskFile // the same, with O_DIRECT for image writes
	ss   int
	g    geometry
	keep map[string]*gpt.Partition
	// givenUp names the preserved partitions the plan's WipeData lets
	// this install destroy.
	givenUp map[string]bool
	log     *slog.Logger

	image   *StreamResult
	chunked *AssembleResult
}

// partitioned installs a plan whose image (if any) goes into a partition:
// the whole layout is known up front.
func (j *job) partitioned(ctx context.Context) error {
	slots, err := j.place(func(keep map[string]*gpt.Partition) ([]slot, error) {
		return place(j.plan.Partitions, j.g, j.g.first, 1, keep)
	})
	if err != nil {
		return err
	}
	if err := j.checkSlots(slots); err != nil {
		return err
	}
	var imageSlot *slot
	for i := range slots {
		if slots[i].Content == agentapi.ContentImage {
			imageSlot = &slots[i]
			if n := j.plan.Image.RawSize; n > imageSlot.bytes(j.g) {
				return fmt.Errorf("%w: %s does not fit partition %q of %s",
					ErrImageTooLarge, agentapi.HumanBytes(n), imageSlot.Name, agentapi.HumanBytes(imageSlot.bytes(j.g)))
			}
		}
	}

	j.in.progress(Progress{Phase: agentapi.PhasePartition})
	t := &gpt.Table{
		LogicalSectorSize:  j.ss,
		PhysicalSectorSize: int(j.d.PhysicalBlocksize),
		Partitions:         gptPartitions(slots),
	}
	if err := writeProtectiveMBR(j.f, j.g.sectors); err != nil {
		return err
	}
	if err := writeGPT(j.d, t, j.log); err != nil {
		return err
	}
	j.log.Info("partition table written", "partitions", len(slots))
	if imageSlot != nil {
		res, err := j.stream(ctx, j.df, imageSlot.offset(j.g), imageSlot.bytes(j.g))
		if err != nil {
			return err
		}
		j.image = res
	}
	return j.fill(ctx, slots)
}

// checkSlots refuses an ESP too small for firmware to read as FAT32, and
// an xfs partition too small for mkfs.xfs.
func (j *job) checkSlots(slots []slot) error {
	for _, s := range slots {
		if s.kept {
			continue
		}
		if s.Filesystem == agentapi.FilesystemXFS && s.bytes(j.g) < agentapi.MinXFSSize {
			return fmt.Errorf("%w: xfs partition %q of %s: mkfs.xfs makes no file system below %v",
				ErrInvalidPlan, s.Name, agentapi.HumanBytes(s.bytes(j.g)), agentapi.Size(agentapi.MinXFSSize))
		}
		if s.Type != "esp" || s.EffectiveContent() != agentapi.ContentFAT32 {
			continue
		}
		if min := minESPSize(j.ss); s.bytes(j.g) < int64(min) {
			return fmt.Errorf("%w: ESP %q of %s is too small for FAT32 on %d-byte sectors; firmware needs %d clusters, at least %v",
				ErrInvalidPlan, s.Name, agentapi.HumanBytes(s.bytes(j.g)), j.ss, minFAT32Clusters, min)
		}
	}
	return nil
}

// fill writes what the plan puts in each new partition other than the
// image. Partitions without content get their first and last MiB zeroed:
// old file system, RAID and LVM signatures live there, and a new swap or
// data partition must not be mistaken for what was on the disk before.
func (j *job) fill(ctx context.Context, slots []slot) error {
	j.in.progress(Progress{Phase: agentapi.PhaseFilesystems})
	for _, s := range slots {
		off, n := s.offset(j.g), s.bytes(j.g)
		log := j.log.With("partition", s.Name)
		if s.kept {
			log.Info("partition preserved", "start", off, "size", n)
			continue
		}
		var err error
		switch s.EffectiveContent() {
		case agentapi.ContentNone:
			err = zeroRange(j.f, off, min(n, alignBytes))
			if err == nil && n > alignBytes {
				tail := min(n-alignBytes, alignBytes)
				err = zeroRange(j.f, off+n-tail, tail)
			}
			if err == nil && s.Filesystem != "" {
				err = j.makeFilesystem(ctx, off, n, s.Filesystem, s.Name)
				if err == nil {
					log.Info("file system created", "filesystem", s.Filesystem, "size", n)
				}
			}
		case agentapi.ContentFAT32:
			err = makeFAT32(j.d.Backend, off, n, j.ss, s.EffectiveLabel(), nil, s.Type == "esp")
		case agentapi.ContentConfigDrive:
			err = makeFAT32(j.d.Backend, off, n, j.ss, s.EffectiveLabel(), j.plan.ConfigDrive, false)
		}
		if err != nil {
			return fmt.Errorf("imaging: partition %q: %w", s.Name, err)
		}
	}
	return nil
}

// stream writes the plan's image to dst at off.
func (j *job) stream(ctx context.Context, dst io.WriterAt, off, limit int64) (*StreamResult, error) {
	img := j.plan.Image
	if img.Format == agentapi.FormatChunked {
		return j.assemble(ctx, dst, off, limit)
	}
	opt := j.in.Stream
	opt.Format, opt.SHA256, opt.Offset, opt.Limit, opt.Total = img.Format, img.SHA256, off, limit, img.RawSize
	opt.Progress = j.in.Progress
	opt.Logger = j.log
	open := j.in.Source
	if open == nil {
		open = func(img agentapi.Image) Opener { return (&HTTPSource{URL: img.URL}).Open }
	}
	j.log.Info("streaming image", "url", img.URL, "offset", off)
	res, err := Stream(ctx, open(*img), dst, opt)
	if err != nil {
		return nil, err
	}
	if img.RawSize > 0 && res.Written != img.RawSize {
		j.log.Warn("image size differs from the plan", "written", res.Written, "planned", img.RawSize)
	}
	j.log.Info("image written", "bytes", res.Written, "received", res.Received, "format", res.Format,
		"resumes", res.Resumes, "seconds", res.Duration.Seconds())
	return &res, nil
}

// result describes the table as it is on the disk now.
func (j *job) result(path string) *Result {
	r := &Result{Path: path, Size: j.d.Size, SectorSize: j.ss, Image: j.image, Chunked: j.chunked}
	t, ok := j.d.Table.(*gpt.Table)
	if !ok {
		return r
	}
	for _, p := range t.Partitions {
		r.Partitions = append(r.Partitions, PartitionInfo{
			Index:     p.Index,
			Name:      p.Name,
			Type:      string(p.Type),
			GUID:      p.GUID,
			Start:     p.GetStart(),
			Size:      p.GetSize(),
			Preserved: j.keep[p.Name] != nil && j.keep[p.Name].GUID == p.GUID,
		})
	}
	return r
}
