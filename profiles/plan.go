package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Plan is what the installer agent does to one machine: the disk to choose,
// the partitions to create, the image to write and the config drive's
// files. It is built from a resolved Host and is what the appliance serves
// the agent, as JSON.
type Plan struct {
	MAC        string          `json:"mac"`
	Hostname   string          `json:"hostname"`
	Version    string          `json:"version"`
	Number     int             `json:"number"`
	Image      Image           `json:"image"`
	Disk       PlanDisk        `json:"disk"`
	Partitions []PlanPartition `json:"partitions"`
	// ConfigDrive holds the NoCloud files (meta-data, user-data,
	// network-config) for the partition with content config, labelled
	// CIDATA. It is empty when the layout has no such partition.
	ConfigDrive []ConfigFile `json:"config_drive,omitempty"`
}

// PlanDisk is the disk selection rule, with sizes in bytes.
type PlanDisk struct {
	Path    string `json:"path,omitempty"`
	Select  string `json:"select,omitempty"` // smallest | largest
	MinSize uint64 `json:"min_size,omitempty"`
	Type    string `json:"type,omitempty"` // ssd | hdd | nvme
}

// PlanPartition is one GPT partition, in table order.
type PlanPartition struct {
	Name       string `json:"name"`
	Size       uint64 `json:"size,omitempty"` // bytes; 0 with Rest
	Rest       bool   `json:"rest,omitempty"`
	Type       string `json:"type"`
	Content    string `json:"content"`
	Filesystem string `json:"filesystem,omitempty"`
	Preserve   bool   `json:"preserve,omitempty"`
}

// ConfigFile is one file of the config drive.
type ConfigFile struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// ConfigDriveLabel is the filesystem label cloud-init's NoCloud data
// source looks for.
const ConfigDriveLabel = "CIDATA"

// ErrNoPlan is returned by Plan for a host without a version and layout:
// it can boot its installer, but there is nothing to install.
var ErrNoPlan = errors.New("profiles: host has no version and layout to install")

// Plan returns the host's install plan.
func (h *Host) Plan() (*Plan, error) {
	if h.Version == nil || h.Layout == nil {
		return nil, ErrNoPlan
	}
	ly := h.Layout
	p := &Plan{
		MAC:      MACKey(h.MAC),
		Hostname: h.Hostname,
		Version:  h.Version.Name,
		Number:   h.Version.Number,
		Image:    h.Version.Image,
		Disk:     PlanDisk{Path: ly.Disk.Path, Select: ly.Disk.Select, Type: ly.Disk.Type},
	}
	if ly.Disk.MinSize != "" {
		p.Disk.MinSize, _ = parseSize(ly.Disk.MinSize)
	}
	config := false
	for _, lp := range ly.Partitions {
		n, rest := lp.Bytes()
		p.Partitions = append(p.Partitions, PlanPartition{Name: lp.Name, Size: n, Rest: rest, Type: lp.Type,
			Content: lp.Content, Filesystem: lp.Filesystem, Preserve: lp.Preserve})
		config = config || lp.Content == ContentConfig
	}
	if config {
		files, err := h.ConfigDrive()
		if err != nil {
			return nil, err
		}
		p.ConfigDrive = files
	}
	return p, nil
}

// ConfigDrive renders the host's cloud-init NoCloud files: meta-data,
// user-data (#cloud-config) and network-config (version 2). They are
// marshalled from structures, never pasted together from strings, so no
// profile value can add a key of its own.
func (h *Host) ConfigDrive() ([]ConfigFile, error) {
	hex := strings.ReplaceAll(MACKey(h.MAC), ":", "")
	version := ""
	if h.Version != nil {
		version = "-" + h.Version.Name
	}
	meta := struct {
		// A new instance-id makes cloud-init run its first-boot modules
		// again: it changes with the version installed.
		InstanceID    string `yaml:"instance-id"`
		LocalHostname string `yaml:"local-hostname,omitempty"`
	}{"rackboot-" + hex + version, h.Hostname}

	type cloudUser struct {
		Name              string   `yaml:"name"`
		Groups            string   `yaml:"groups,omitempty"`
		LockPasswd        bool     `yaml:"lock_passwd"`
		HashedPasswd      string   `yaml:"hashed_passwd,omitempty"`
		SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
		Sudo              string   `yaml:"sudo,omitempty"`
		Shell             string   `yaml:"shell,omitempty"`
	}
	type writeFile struct {
		Path        string `yaml:"path"`
		Content     string `yaml:"content"`
		Permissions string `yaml:"permissions,omitempty"`
		Owner       string `yaml:"owner,omitempty"`
	}
	user := struct {
		Hostname          string      `yaml:"hostname,omitempty"`
		Users             []any       `yaml:"users,omitempty"`
		SSHAuthorizedKeys []string    `yaml:"ssh_authorized_keys,omitempty"`
		WriteFiles        []writeFile `yaml:"write_files,omitempty"`
	}{Hostname: h.Hostname, SSHAuthorizedKeys: h.SSHKeys}
	if len(h.Users) > 0 {
		// "default" keeps the image's default user, to which the
		// top-level ssh_authorized_keys go.
		user.Users = append(user.Users, "default")
	}
	for _, u := range h.Users {
		cu := cloudUser{Name: u.Name, Groups: strings.Join(u.Groups, ","), LockPasswd: u.Password == "",
			HashedPasswd: u.Password, SSHAuthorizedKeys: u.SSHKeys, Shell: u.Shell}
		if u.Sudo {
			cu.Sudo = "ALL=(ALL) NOPASSWD:ALL"
		}
		user.Users = append(user.Users, cu)
	}
	for _, f := range h.Files {
		mode := f.Mode
		if mode != "" && len(mode) == 3 {
			mode = "0" + mode
		}
		user.WriteFiles = append(user.WriteFiles, writeFile{Path: f.Path, Content: f.Content, Permissions: mode, Owner: f.Owner})
	}

	type nameservers struct {
		Addresses []string `yaml:"addresses,omitempty"`
		Search    []string `yaml:"search,omitempty"`
	}
	type route struct {
		To  string `yaml:"to"`
		Via string `yaml:"via"`
	}
	type ethernet struct {
		Match       map[string]string `yaml:"match"`
		DHCP4       bool              `yaml:"dhcp4,omitempty"`
		Addresses   []string          `yaml:"addresses,omitempty"`
		Routes      []route           `yaml:"routes,omitempty"`
		Nameservers *nameservers      `yaml:"nameservers,omitempty"`
	}
	// The interface is matched by the MAC the machine booted from: its
	// kernel name (eth0, enp1s0, …) is not known here.
	eth := ethernet{Match: map[string]string{"macaddress": MACKey(h.MAC)}}
	nw := h.Network
	if nw.Static() {
		eth.Addresses = []string{nw.Address}
		if nw.Gateway != "" {
			to := "0.0.0.0/0"
			if !nw.Prefix().Addr().Is4() {
				to = "::/0"
			}
			eth.Routes = []route{{To: to, Via: nw.Gateway}}
		}
	} else {
		eth.DHCP4 = true
	}
	if len(nw.DNS) > 0 || len(nw.Search) > 0 {
		eth.Nameservers = &nameservers{Addresses: nw.DNS, Search: nw.Search}
	}
	network := struct {
		Version   int                 `yaml:"version"`
		Ethernets map[string]ethernet `yaml:"ethernets"`
	}{2, map[string]ethernet{"boot": eth}}

	var files []ConfigFile
	for _, f := range []struct {
		name, header string
		v            any
	}{
		{"meta-data", "", meta},
		{"user-data", "#cloud-config\n", user},
		{"network-config", "", network},
	} {
		var buf bytes.Buffer
		buf.WriteString(f.header)
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(f.v); err != nil {
			return nil, fmt.Errorf("profiles: config drive %s: %w", f.name, err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("profiles: config drive %s: %w", f.name, err)
		}
		files = append(files, ConfigFile{Name: f.name, Content: buf.String()})
	}
	return files, nil
}
