package profiles

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
)

// ErrNoPlan is returned by Planner.Plan for a host without a version or a layout:
// it can boot its installer, but there is nothing to install.
var ErrNoPlan = errors.New("profiles: nothing to install")

// Planner turns hosts into the plans their agents execute: it is the
// agent API's planner (api.Planner) in the daemon, and what `rackboot
// render` prints, so the preview is what the machine gets. The zero value
// plans with the image sizes unknown.
type Planner struct {
	// ImageSizes returns the stored and decompressed sizes of an image
	// given as a path under the artifacts directory (artifacts.Sizes.Image
	// in the daemon). Nil leaves the sizes unknown; an error fails the
	// plan.
	ImageSizes func(path, format string) (stored, raw int64, err error)
	// ChunkIndex reads the index of a chunked image, given as a path
	// under the artifacts directory (artifacts.Indexes in the daemon):
	// the compressed size of its stored chunks, the image's size and
	// the hex SHA-256 of the whole image. Nil leaves the sizes unknown,
	// the catalog's digest unchecked and the plans without a seed; an
	// error fails the plan.
	ChunkIndex func(path string) (stored, raw int64, sha256 string, err error)
	// Twin returns the index (a path under the artifacts directory) of
	// an image imported from the file whose SHA-256 is source, if any
	// (artifacts.Indexes.Twin over IndexDir in the daemon). A host that
	// runs a streamed version whose file was also imported gets that
	// index as the seed of a chunked install: the machines installed
	// before a catalog moved to chunks take their first chunked
	// install from their disks too. Nil: no such seeds.
	Twin func(source string) (path string, ok bool)
	// Peers, when set, is copied into every chunked image's plan
	// (agentapi.Image.Peers): the daemon's --peers. Nil: peer
	// distribution off.
	Peers *agentapi.PeerSettings
}

// IndexDir is where `rackboot image add` writes the indexes in the
// artifacts directory, and where Planner.Twin looks.
const IndexDir = "images"

// Plan returns the plan that installs version v (nil: the host's own) on
// the host: its layout's disk rule and partitions, v's image with its URL
// and sizes, and, when the layout has a config partition, the config
// drive's files. base is the appliance's URL as the agent reaches it, such
// as "http://192.0.2.1:8080": an image given as a path is downloaded from
// base/artifacts/PATH.
//
// installed is the version the host's disk holds according to the
// registry, or nil: when both it and v are chunked, its index is the
// plan's seed (agentapi.Seed), and the agent copies the chunks the two
// images share from the disk instead of fetching them.
func (pl Planner) Plan(h *Host, v, installed *Version, base string) (agentapi.Plan, error) {
	p, err := pl.plan(h, v, installed, base)
	if err != nil {
		return agentapi.Plan{}, err
	}
	return *p, nil
}

// plan builds the plan behind a pointer, so that its steps fill it in
// place.
func (pl Planner) plan(h *Host, v, installed *Version, base string) (*agentapi.Plan, error) {
	if v == nil {
		v = h.Version
	}
	switch {
	case v == nil:
		return nil, fmt.Errorf("%w: the profiles give the host no version", ErrNoPlan)
	case h.Layout == nil:
		return nil, fmt.Errorf("%w: the profiles give the host no layout", ErrNoPlan)
	}
	ly := h.Layout
	p := &agentapi.Plan{
		Disk: agentapi.DiskRule{Path: ly.Disk.Path, Select: ly.Disk.Select, Type: ly.Disk.Type},
		Image: &agentapi.Image{URL: v.Image.URL, SHA256: strings.ToLower(v.Image.SHA256),
			Format: v.Image.Format, Kind: v.Image.Kind},
	}
	img := p.Image
	var err error
	if img.URL, err = imageURL(base, v.Image.URL, h.MAC); err != nil {
		return nil, fmt.Errorf("profiles: version %s: %w", v.Name, err)
	}
	if img.Format == agentapi.FormatChunked {
		if err := pl.chunked(img, h, v, installed, base); err != nil {
			return nil, err
		}
	} else if pl.ImageSizes != nil && !strings.Contains(v.Image.URL, "://") {
		// An image missing from the artifacts directory fails here, with
		// its name, rather than as a 404 in the middle of an install.
		if img.Size, img.RawSize, err = pl.ImageSizes(v.Image.URL, img.Format); err != nil {
			return nil, fmt.Errorf("profiles: version %s: %w", v.Name, err)
		}
	}
	if ly.Disk.MinSize != "" {
		n, _ := parseSize(ly.Disk.MinSize) // validated when loaded
		if n > math.MaxInt64 {
			return nil, fmt.Errorf("profiles: layout %s: min_size %d too large", ly.Name, n)
		}
		p.Disk.MinSize = agentapi.Size(n)
	}
	drive := h.NoCloud(v)
	config := false
	for _, lp := range ly.Partitions {
		part, err := planPartition(lp)
		if err != nil {
			return nil, fmt.Errorf("profiles: layout %s: %w", ly.Name, err)
		}
		if lp.Content == ContentConfig {
			config = true
			if l := drive.Label(); l != agentapi.ConfigDriveLabel {
				part.Label = l
			}
		}
		p.Partitions = append(p.Partitions, part)
	}
	if config {
		files, err := drive.Render()
		if err != nil {
			return nil, fmt.Errorf("profiles: config drive of %s: %w", MACKey(h.MAC), err)
		}
		p.ConfigDrive = files
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("profiles: plan of %s: %w", MACKey(h.MAC), err)
	}
	return p, nil
}

// ChunkDir is the chunk store of chunked images in the artifacts
// directory: the chunk whose SHA-256 is ID is ChunkDir/XXXX/ID.zst, XXXX
// its first four hex digits (`rackboot image add` writes them; the agent
// fetches them through agentapi.ChunkURL).
const ChunkDir = "chunks"

// chunked completes the image of a chunked version v: the chunk store's
// URL beside the index's, the sizes the index states, and the seed when
// the host runs a chunked version, or a streamed one whose file was
// imported too (Twin). The catalog's digest must be the
// index's: the agent verifies the image it assembles against the plan's,
// and a catalog entry pasted for another import would fail every install
// only after writing the disk.
func (pl Planner) chunked(img *agentapi.Image, h *Host, v, installed *Version, base string) error {
	if strings.Contains(v.Image.URL, "://") {
		// Refused when the profiles load; kept for Versions built by hand.
		return fmt.Errorf("profiles: version %s: a chunked image must be an index in the artifacts directory, not %s", v.Name, v.Image.URL)
	}
	var err error
	if img.Chunks, err = imageURL(base, ChunkDir, h.MAC); err != nil {
		return fmt.Errorf("profiles: version %s: %w", v.Name, err)
	}
	if pl.ChunkIndex != nil {
		var sum string
		if img.Size, img.RawSize, sum, err = pl.ChunkIndex(v.Image.URL); err != nil {
			return fmt.Errorf("profiles: version %s: %w", v.Name, err)
		}
		if !strings.EqualFold(sum, img.SHA256) {
			return fmt.Errorf("profiles: version %s: the catalog says sha256 %s, but its index %s describes an image of sha256 %s (paste the entry rackboot image add printed)", v.Name, img.SHA256, v.Image.URL, sum)
		}
	}
	if pl.Peers != nil {
		ps := *pl.Peers
		img.Peers = &ps
	}
	if s := installed; s != nil && s.Image.Format == agentapi.FormatChunked && s.Image.Kind == v.Image.Kind && !strings.Contains(s.Image.URL, "://") {
		// Of the same kind only: the agent looks for the old image's
		// chunks where the new one goes (the disk, or the image
		// partition), which is where the old one went only then.
		if pl.ChunkIndex != nil {
			if _, _, _, err := pl.ChunkIndex(s.Image.URL); err != nil {
				// An old index removed from the artifacts directory
				// costs bandwidth, not the install: no seed.
				return nil
			}
		}
		u, err := imageURL(base, s.Image.URL, h.MAC)
		if err != nil {
			return nil // the catalog's own check refuses such a path
		}
		img.Seed = &agentapi.Seed{Version: s.Name, URL: u}
	} else if s != nil && s.Image.Format != agentapi.FormatChunked && s.Image.Kind == v.Image.Kind && pl.Twin != nil {
		// A streamed version whose file was imported too: its index
		// says where each chunk of the old image is.
		if path, ok := pl.Twin(s.Image.SHA256); ok {
			if u, err := imageURL(base, path, h.MAC); err == nil {
				img.Seed = &agentapi.Seed{Version: s.Name, URL: u}
			}
		}
	}
	return nil
}

// imageURL makes a catalog image location absolute: an http(s) URL stays,
// a path is served under /artifacts/ of the appliance, with ?mac= so the
// artifacts log says which machine downloads it (as the iPXE scripts do
// for kernels).
func imageURL(base, loc string, mac net.HardwareAddr) (string, error) {
	if loc == "" {
		return "", errors.New("image has no url")
	}
	if strings.Contains(loc, "://") {
		u, err := url.Parse(loc)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("image url %q: want http(s)", loc)
		}
		return loc, nil
	}
	if strings.HasPrefix(loc, "/") {
		return "", fmt.Errorf("image path %q: want a path relative to the artifacts directory", loc)
	}
	segs := strings.Split(loc, "/")
	for i, s := range segs {
		if s == ".." || s == "." || s == "" {
			return "", fmt.Errorf("image path %q: want a clean path inside the artifacts directory", loc)
		}
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimSuffix(base, "/") + "/artifacts/" + strings.Join(segs, "/") + "?mac=" + strings.ReplaceAll(MACKey(mac), ":", "-"), nil
}

// planPartition maps a layout partition onto the agent's. An empty
// partition with a vfat file system is created as FAT32 by the agent;
// ext4, xfs and swap travel in the plan (Partition.Filesystem), and the
// agent creates them unless the partition is preserved and exists.
func planPartition(lp Partition) (agentapi.Partition, error) {
	n, rest := lp.Bytes()
	if n > math.MaxInt64 {
		return agentapi.Partition{}, fmt.Errorf("partition %s: size %d too large", lp.Name, n)
	}
	part := agentapi.Partition{Name: lp.Name, Type: lp.Type, Size: agentapi.Size(n), Preserve: lp.Preserve}
	if rest {
		part.Size = agentapi.Rest
	}
	switch lp.Content {
	case ContentImage:
		part.Content = agentapi.ContentImage
	case ContentConfig:
		part.Content = agentapi.ContentConfigDrive
	case ContentEmpty, "":
		part.Filesystem = lp.Filesystem
		if lp.Filesystem == agentapi.FilesystemVFAT && !lp.Preserve {
			part.Content = agentapi.ContentFAT32
		}
	default:
		return agentapi.Partition{}, fmt.Errorf("partition %s: unknown content %q", lp.Name, lp.Content)
	}
	return part, nil
}

// NoCloud is what the host's config drive tells cloud-init when version v
// is installed, in the format v's OS reads: hostname, users, keys, files,
// the boot interface's network (matched by its MAC), the layout's mounts
// and the extra cloud-config.
func (h *Host) NoCloud(v *Version) agentapi.NoCloud {
	mac := MACKey(h.MAC)
	id := "rackboot-" + strings.ReplaceAll(mac, ":", "")
	if v != nil {
		// A new instance-id makes cloud-init run its first-boot modules
		// again: it changes with the version installed.
		id += "-" + v.Name
	}
	c := agentapi.NoCloud{InstanceID: id, Hostname: h.Hostname, SSHKeys: h.SSHKeys}
	for _, u := range h.Users {
		c.Users = append(c.Users, agentapi.User{Name: u.Name, PasswordHash: u.Password, SSHKeys: u.SSHKeys,
			Sudo: u.Sudo, Groups: u.Groups, Shell: u.Shell})
	}
	for _, f := range h.Files {
		c.Files = append(c.Files, agentapi.WriteFile{Path: f.Path, Content: f.Content, Mode: f.Mode, Owner: f.Owner})
	}
	nw := h.Network
	c.Network = &agentapi.Network{MAC: mac, Address: nw.Address, Gateway: nw.Gateway, DNS: nw.DNS, Search: nw.Search}
	if v != nil && v.ConfigDrive == DriveOpenStack {
		c.Format = agentapi.DriveOpenStack
	}
	if h.Layout != nil {
		for _, p := range h.Layout.Partitions {
			switch p.Mount {
			case "":
			case MountSwap:
				c.Mounts = append(c.Mounts, agentapi.Mount{PartLabel: p.Name, Filesystem: agentapi.FilesystemSwap})
			default:
				c.Mounts = append(c.Mounts, agentapi.Mount{PartLabel: p.Name, Path: p.Mount, Filesystem: p.Filesystem})
			}
		}
	}
	if len(h.CloudConfig) > 0 {
		c.CloudConfig = h.CloudConfig
	}
	return c
}
