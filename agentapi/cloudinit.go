package agentapi

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NoCloud is what the config drive tells cloud-init (data source NoCloud,
// label ConfigDriveLabel) about the installed machine on its first boot.
// Render is the one renderer of those files: the appliance serves what it
// returns, `rackboot render` shows it, and the tests' demo OS reads it.
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
	// network-config, so the image's own applies.
	Network *Network
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

// Network is the configuration of the interface with the given MAC.
type Network struct {
	// MAC is the boot interface's address, in lower case: the kernel's
	// name for it (eth0, enp1s0, …) is not known to the appliance.
	MAC string
	// Address is a static address with its prefix length ("10.0.1.11/24");
	// empty means DHCP.
	Address string
	// Gateway is the default route's next hop, for a static address.
	Gateway string
	DNS     []string
	Search  []string
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

// networkConfig is network config version 2 (the netplan format that
// cloud-init reads from the NoCloud network-config file).
type networkConfig struct {
	Version   int                 `yaml:"version"`
	Ethernets map[string]ethernet `yaml:"ethernets"`
}

type ethernet struct {
	Match       map[string]string `yaml:"match"`
	DHCP4       bool              `yaml:"dhcp4,omitempty"`
	Addresses   []string          `yaml:"addresses,omitempty"`
	Routes      []route           `yaml:"routes,omitempty"`
	Nameservers *nameservers      `yaml:"nameservers,omitempty"`
}

type route struct {
	To  string `yaml:"to"`
	Via string `yaml:"via"`
}

type nameservers struct {
	Addresses []string `yaml:"addresses,omitempty"`
	Search    []string `yaml:"search,omitempty"`
}

// Render returns the config drive's files: "meta-data", "user-data" (a
// #cloud-config document) and, when Network is set, "network-config".
// They are marshalled from structures, never pasted together from
// strings, so no value can add a key of its own.
func (c NoCloud) Render() ([]File, error) {
	if c.InstanceID == "" {
		return nil, errors.New("agentapi: nocloud: missing instance id")
	}
	md, err := marshalYAML("", metaData{InstanceID: c.InstanceID, LocalHostname: c.Hostname})
	if err != nil {
		return nil, fmt.Errorf("agentapi: nocloud meta-data: %w", err)
	}
	files := []File{{Name: "meta-data", Content: md}}

	cc := cloudConfig{Hostname: c.Hostname, SSHAuthorizedKeys: c.SSHKeys}
	if len(c.Users) > 0 {
		// A users list replaces the image's default user unless it names
		// "default"; the top-level ssh_authorized_keys go to that user.
		cc.Users = append(cc.Users, "default")
	}
	for _, u := range c.Users {
		if u.Name == "" {
			return nil, errors.New("agentapi: nocloud: user without a name")
		}
		if u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, "$") {
			return nil, fmt.Errorf("agentapi: nocloud: user %s: password must be a crypt(3) hash, not plain text", u.Name)
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
			return nil, fmt.Errorf("agentapi: nocloud: file path %q is not absolute", f.Path)
		}
		mode := f.Mode
		if len(mode) == 3 {
			mode = "0" + mode
		}
		cc.WriteFiles = append(cc.WriteFiles, cloudFile{Path: f.Path, Content: f.Content, Permissions: mode, Owner: f.Owner})
	}
	// cloud-init recognises cloud-config user-data by its first line.
	ud, err := marshalYAML("#cloud-config\n", cc)
	if err != nil {
		return nil, fmt.Errorf("agentapi: nocloud user-data: %w", err)
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

func (n *Network) render() (string, error) {
	if n.MAC == "" {
		return "", errors.New("agentapi: nocloud network: missing MAC")
	}
	// cloud-init compares MACs case-sensitively in places: lower case, as
	// the kernel shows them.
	e := ethernet{Match: map[string]string{"macaddress": strings.ToLower(n.MAC)}}
	if n.Address == "" {
		e.DHCP4 = true
	} else {
		p, err := netip.ParsePrefix(n.Address)
		if err != nil {
			return "", fmt.Errorf("agentapi: nocloud network: address %q: %w", n.Address, err)
		}
		e.Addresses = []string{n.Address}
		if n.Gateway != "" {
			to := "0.0.0.0/0"
			if !p.Addr().Is4() {
				to = "::/0"
			}
			e.Routes = []route{{To: to, Via: n.Gateway}}
		}
	}
	if len(n.DNS) > 0 || len(n.Search) > 0 {
		e.Nameservers = &nameservers{Addresses: n.DNS, Search: n.Search}
	}
	s, err := marshalYAML("", networkConfig{Version: 2, Ethernets: map[string]ethernet{"boot": e}})
	if err != nil {
		return "", fmt.Errorf("agentapi: nocloud network-config: %w", err)
	}
	return s, nil
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
