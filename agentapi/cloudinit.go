package agentapi

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NoCloud is what the config drive tells cloud-init about the installed
// machine on its first boot. Render is the one renderer of those files: the
// appliance serves what it returns, `rackboot render` shows it, and the
// tests' demo OS reads it. The name is the default format's, cloud-init's
// NoCloud data source; Format selects the OpenStack config drive instead,
// rendered from the same fields.
type NoCloud struct {
	// InstanceID names the installed instance. cloud-init runs its
	// first-boot modules when it changes: profiles makes it change with
	// the version installed. (A reinstall of the same version writes a
	// fresh root file system from the image, which holds no cloud-init
	// state, so the modules run again anyway.)
	InstanceID string
	Hostname   string
	// SSHKeys are authorized_keys lines for the image's default user.
	SSHKeys []string
	// Users are accounts created besides the image's default user.
	Users []User
	// Files are written on first boot (write_files).
	Files []WriteFile
	// Network configures the interface with the boot MAC; nil writes no
	// network configuration, so the image's own applies.
	Network *Network
	// Mounts are the layout's partitions that the installed system mounts
	// or uses as swap (see Mount).
	Mounts []Mount
	// CloudConfig is extra cloud-config, by top-level key, merged into
	// user-data after rackboot's own keys: the nodes are written as they
	// were parsed (style and tags kept), so a value means to cloud-init
	// what it would mean in a user-data file. A key of
	// ReservedCloudConfigKeys is an error; a bootcmd list follows
	// rackboot's own boot commands (the mounts').
	CloudConfig map[string]*yaml.Node
	// Format is the drive's layout: DriveNoCloud (the default when empty)
	// or DriveOpenStack.
	Format string
}

// Config drive formats (NoCloud.Format). cloud-init reads both; Clear
// Linux's micro-config-drive reads only the OpenStack one.
const (
	// DriveNoCloud is cloud-init's NoCloud seed: meta-data, user-data and
	// network-config in the root of a volume labelled ConfigDriveLabel.
	DriveNoCloud = "nocloud"
	// DriveOpenStack is the OpenStack config drive: openstack/latest/
	// meta_data.json, user_data and network_data.json on a volume
	// labelled OpenStackDriveLabel.
	DriveOpenStack = "openstack"
)

// OpenStackDriveLabel is the volume label of an OpenStack config drive.
// cloud-init accepts "CONFIG-2" too, micro-config-drive only this
// spelling, which is why it is lower case unlike every other FAT label of
// a plan.
const OpenStackDriveLabel = "config-2"

// Label is the volume label of the drive in c's format.
func (c NoCloud) Label() string {
	if c.Format == DriveOpenStack {
		return OpenStackDriveLabel
	}
	return ConfigDriveLabel
}

// User is an account created on first boot.
type User struct {
	Name string
	// PasswordHash is a crypt(3) hash ("$6$...", "$y$..."); empty locks the
	// password. Plain text is refused.
	PasswordHash string
	SSHKeys      []string // authorized_keys lines
	Sudo         bool     // passwordless sudo for everything
	Groups       []string
	Shell        string
}

// WriteFile is a file written on first boot.
type WriteFile struct {
	Path    string // absolute
	Content string
	// Mode is octal, e.g. "0644" or "644"; empty means cloud-init's 0644.
	Mode string
	// Owner is "user:group"; empty means root:root.
	Owner string
}

// ReservedCloudConfigKeys are the top-level cloud-config keys that
// NoCloud.CloudConfig may not set: rackboot writes them from the profile
// (the host name and the keys that replace or keep it, the accounts, the
// keys of the default user, the files), or cloud-init ignores them in
// user-data (network, which it reads from the data source only).
var ReservedCloudConfigKeys = []string{
	"hostname", "fqdn", "preserve_hostname", "prefer_fqdn_over_hostname",
	"users", "ssh_authorized_keys", "write_files", "network",
}

// The YAML shapes, in the order written.

type metaData struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname,omitempty"`
}

type cloudConfig struct {
	Hostname          string      `yaml:"hostname,omitempty"`
	Users             []any       `yaml:"users,omitempty"`
	SSHAuthorizedKeys []string    `yaml:"ssh_authorized_keys,omitempty"`
	WriteFiles        []cloudFile `yaml:"write_files,omitempty"`
}

type cloudUser struct {
	Name   string `yaml:"name"`
	Groups string `yaml:"groups,omitempty"`
	// LockPasswd is written even when false: cloud-init's default is true,
	// which would lock an account given a password hash.
	LockPasswd bool `yaml:"lock_passwd"`
	// passwd holds a hash in every cloud-init version; hashed_passwd is
	// an alias only since 22.3.
	Passwd            string   `yaml:"passwd,omitempty"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
	Sudo              string   `yaml:"sudo,omitempty"`
	Shell             string   `yaml:"shell,omitempty"`
}

type cloudFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Permissions string `yaml:"permissions,omitempty"`
	Owner       string `yaml:"owner,omitempty"`
}

// Render returns the config drive's files in c's format. NoCloud:
// "meta-data", "user-data" (a #cloud-config document) and, when Network is
// set, "network-config". OpenStack: "openstack/latest/meta_data.json",
// "openstack/latest/user_data" and, when Network is set,
// "openstack/latest/network_data.json". They are marshalled from
// structures, never pasted together from strings, so no value can add a
// key of its own.
func (c NoCloud) Render() ([]File, error) {
	if c.InstanceID == "" {
		return nil, errors.New("agentapi: nocloud: missing instance id")
	}
	switch c.Format {
	case "", DriveNoCloud:
		return c.renderNoCloud()
	case DriveOpenStack:
		return c.renderOpenStack()
	}
	return nil, fmt.Errorf("agentapi: config drive format %q: want %q or %q", c.Format, DriveNoCloud, DriveOpenStack)
}

func (c NoCloud) renderNoCloud() ([]File, error) {
	md, err := marshalYAML("", metaData{InstanceID: c.InstanceID, LocalHostname: c.Hostname})
	if err != nil {
		return nil, fmt.Errorf("agentapi: nocloud meta-data: %w", err)
	}
	files := []File{{Name: "meta-data", Content: md}}
	// cloud-init reads the default user's keys from user-data here; the
	// OpenStack drive carries them in its metadata instead.
	ud, err := c.userData(c.SSHKeys)
	if err != nil {
		return nil, err
	}
	files = append(files, File{Name: "user-data", Content: ud})
	if n := c.Network; n != nil {
		nc, err := n.render()
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: "network-config", Content: nc})
	}
	return files, nil
}

// userData is the #cloud-config document: rackboot's keys in a fixed
// order, then bootcmd (the mounts' commands, then the profile's), then the
// profile's other keys sorted.
func (c NoCloud) userData(sshKeys []string) (string, error) {
	cc := cloudConfig{Hostname: c.Hostname, SSHAuthorizedKeys: sshKeys}
	if len(c.Users) > 0 {
		// A users list replaces the image's default user unless it names
		// "default"; the top-level ssh_authorized_keys go to that user.
		cc.Users = append(cc.Users, "default")
	}
	for _, u := range c.Users {
		if u.Name == "" {
			return "", errors.New("agentapi: nocloud: user without a name")
		}
		if u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, "$") {
			return "", fmt.Errorf("agentapi: nocloud: user %s: password must be a crypt(3) hash, not plain text", u.Name)
		}
		cu := cloudUser{Name: u.Name, Groups: strings.Join(u.Groups, ","), LockPasswd: u.PasswordHash == "",
			Passwd: u.PasswordHash, SSHAuthorizedKeys: u.SSHKeys, Shell: u.Shell}
		if u.Sudo {
			cu.Sudo = "ALL=(ALL) NOPASSWD:ALL"
		}
		cc.Users = append(cc.Users, cu)
	}
	for _, f := range c.Files {
		if !strings.HasPrefix(f.Path, "/") {
			return "", fmt.Errorf("agentapi: nocloud: file path %q is not absolute", f.Path)
		}
		mode := f.Mode
		if len(mode) == 3 {
			mode = "0" + mode
		}
		cc.WriteFiles = append(cc.WriteFiles, cloudFile{Path: f.Path, Content: f.Content, Permissions: mode, Owner: f.Owner})
	}
	doc := &yaml.Node{}
	if err := doc.Encode(cc); err != nil {
		return "", fmt.Errorf("agentapi: nocloud user-data: %w", err)
	}
	// An empty mapping encodes as "{}", in flow style: block style for
	// the keys added below.
	doc.Style = 0
	boot, err := c.bootCommands()
	if err != nil {
		return "", err
	}
	keys := make([]string, 0, len(c.CloudConfig))
	for k := range c.CloudConfig {
		if slices.Contains(ReservedCloudConfigKeys, k) {
			return "", fmt.Errorf("agentapi: nocloud: cloud-config key %q is rackboot's", k)
		}
		if k == "bootcmd" && boot != nil {
			continue
		}
		keys = append(keys, k)
	}
	if boot != nil {
		doc.Content = append(doc.Content, scalar("bootcmd"), boot)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := c.CloudConfig[k]
		if v == nil {
			return "", fmt.Errorf("agentapi: nocloud: cloud-config key %q without a value", k)
		}
		doc.Content = append(doc.Content, scalar(k), v)
	}
	// cloud-init recognises cloud-config user-data by its first line.
	ud, err := marshalYAML("#cloud-config\n", doc)
	if err != nil {
		return "", fmt.Errorf("agentapi: nocloud user-data: %w", err)
	}
	return ud, nil
}

// scalar is a plain string node.
func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// marshalYAML encodes v after header with the two-space indentation of
// cloud-init's documentation. go.yaml.in/yaml/v3 quotes every string a
// YAML 1.1 parser such as cloud-init's PyYAML would read as something
// else: "yes", "0644", and MAC addresses of digits only, which YAML 1.1
// reads as base-60 integers.
func marshalYAML(header string, v any) (string, error) {
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}
