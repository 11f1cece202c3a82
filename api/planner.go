package api

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/rackboot/rackboot/imaging"
	"github.com/rackboot/rackboot/profiles"
)

// Planner turns a host of the profiles into the plan its agent executes.
// It is the one place that knows both profiles' model and imaging's wire
// format, so either can change behind it. Implementations must be safe
// for concurrent use.
type Planner interface {
	// Plan returns the plan that installs version v on host. base is the
	// URL the agent reaches the appliance at ("http://192.0.2.1:8080"),
	// for artifacts given as paths.
	Plan(host *profiles.Host, v *profiles.Version, base string) (imaging.Plan, error)
}

// ProfilePlanner is the default Planner: the host's layout and config
// drive from profiles (Host.Plan), with v's image, mapped onto imaging's
// types.
type ProfilePlanner struct{}

// Errors of ProfilePlanner, for a host the profiles cannot install.
var (
	ErrNoVersion = errors.New("api: the profiles give this host no version")
	ErrNoLayout  = errors.New("api: the profiles give this host no layout")
)

// Plan implements Planner.
func (ProfilePlanner) Plan(host *profiles.Host, v *profiles.Version, base string) (imaging.Plan, error) {
	if v == nil {
		return imaging.Plan{}, ErrNoVersion
	}
	if host.Layout == nil {
		return imaging.Plan{}, ErrNoLayout
	}
	h := *host // Host is immutable: plan a copy with the chosen version
	h.Version = v
	pp, err := h.Plan()
	if err != nil {
		return imaging.Plan{}, fmt.Errorf("api: plan of %s: %w", profiles.MACKey(host.MAC), err)
	}
	var p imaging.Plan
	if pp.Disk.MinSize > math.MaxInt64 {
		return imaging.Plan{}, fmt.Errorf("api: disk min_size %d: too large", pp.Disk.MinSize)
	}
	p.Disk = imaging.DiskRule{Path: pp.Disk.Path, Select: pp.Disk.Select, MinSize: imaging.Size(pp.Disk.MinSize), Type: pp.Disk.Type}
	for _, lp := range pp.Partitions {
		part, err := partition(lp)
		if err != nil {
			return imaging.Plan{}, fmt.Errorf("api: layout %s: %w", host.Layout.Name, err)
		}
		p.Partitions = append(p.Partitions, part)
	}
	img, err := imageURL(base, pp.Image.URL, host)
	if err != nil {
		return imaging.Plan{}, fmt.Errorf("api: version %s: %w", v.Name, err)
	}
	p.Image = &imaging.Image{URL: img, SHA256: strings.ToLower(pp.Image.SHA256), Format: pp.Image.Format}
	if len(pp.ConfigDrive) > 0 {
		p.ConfigDrive = make(map[string][]byte, len(pp.ConfigDrive))
		for _, f := range pp.ConfigDrive {
			p.ConfigDrive[f.Name] = []byte(f.Content)
		}
	}
	if err := p.Validate(); err != nil {
		return imaging.Plan{}, fmt.Errorf("api: plan of %s: %w", profiles.MACKey(host.MAC), err)
	}
	return p, nil
}

// partition maps a layout partition. An empty partition with a vfat file
// system gets one; ext4, xfs and swap are left to the installed system
// (imaging creates FAT only).
func partition(lp profiles.PlanPartition) (imaging.Partition, error) {
	if lp.Size > math.MaxInt64 {
		return imaging.Partition{}, fmt.Errorf("partition %s: size %d too large", lp.Name, lp.Size)
	}
	part := imaging.Partition{Name: lp.Name, Type: lp.Type, Size: imaging.Size(lp.Size), Preserve: lp.Preserve}
	if lp.Rest {
		part.Size = imaging.Rest
	}
	switch lp.Content {
	case profiles.ContentImage:
		part.Content = imaging.ContentImage
	case profiles.ContentConfig:
		part.Content = imaging.ContentConfigDrive
	case profiles.ContentEmpty, "":
		if lp.Filesystem == "vfat" && !lp.Preserve {
			part.Content = imaging.ContentFAT32
		}
	default:
		return imaging.Partition{}, fmt.Errorf("partition %s: unknown content %q", lp.Name, lp.Content)
	}
	return part, nil
}

// imageURL makes a catalog image location absolute: an http(s) URL stays,
// a path is served under /artifacts/, with ?mac= so the artifacts log says
// which machine downloads it (as the iPXE scripts do for kernels).
func imageURL(base, loc string, host *profiles.Host) (string, error) {
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
	mac := strings.ReplaceAll(profiles.MACKey(host.MAC), ":", "-")
	return base + "/artifacts/" + strings.Join(segs, "/") + "?mac=" + mac, nil
}
