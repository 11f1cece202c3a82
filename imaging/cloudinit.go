package imaging

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// NoCloud is what the config drive tells cloud-init (datasource NoCloud)
// about the installed machine on its first boot. Render turns it into the
// drive's three files.
type NoCloud struct {
	// InstanceID changes with every install, so cloud-init runs its
	// first-boot modules again after a reinstall.
	InstanceID string
	Hostname   string
	Users      []User
	Network    *Network // nil: no network-config, the image's own applies
	Files      []File   // extra files written on first boot (write_files)
}

// User is an account created on first boot.
type User struct {
	Name string
	// PasswordHash is a crypt(3) hash ("$6$...", "$y$..."); empty locks the
	// password. Plain text is refused.
	PasswordHash string
	SSHKeys      []string // authorized_keys lines
	Sudo         string   // sudoers rule, e.g. "ALL=(ALL) NOPASSWD:ALL"
	Groups       []string
	Shell        string
}

// File is a file written on first boot.
type File struct {
	Path        string // absolute
	Content     []byte
	Permissions string // octal, e.g. "0644"; empty means cloud-init's 0644
	Owner       string // "user:group"; empty means root:root
}

// Network is the configuration of the interface with the given MAC.
type Network struct {
	MAC net.HardwareAddr
	// Name is the interface name to set (netplan set-name); empty keeps
	// the kernel's name.
	Name string
	// DHCP4 asks for an address by DHCP; Addresses are static ones. Both
	// may be set.
	DHCP4       bool
	Addresses   []netip.Prefix
	Gateway4    netip.Addr
	Gateway6    netip.Addr
	Nameservers []netip.Addr
	Search      []string
}

// The YAML shapes. Field order is the order written.

type metaData struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname,omitempty"`
}

type cloudConfig struct {
	Hostname   string      `yaml:"hostname,omitempty"`
	Users      []cloudUser `yaml:"users,omitempty"`
	WriteFiles []cloudFile `yaml:"write_files,omitempty"`
}

type cloudUser struct {
	Name string `yaml:"name"`
	// passwd is the hashed password in every cloud-init version;
	// hashed_passwd is only an alias added in 22.3.
	Passwd            string   `yaml:"passwd,omitempty"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
	Sudo              string   `yaml:"sudo,omitempty"`
	Groups            string   `yaml:"groups,omitempty"`
	Shell             string   `yaml:"shell,omitempty"`
}

type cloudFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Encoding    string `yaml:"encoding,omitempty"`
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
	SetName     string            `yaml:"set-name,omitempty"`
	DHCP4       bool              `yaml:"dhcp4"`
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

// Render returns the config drive files: "meta-data", "user-data" (a
// #cloud-config document) and, when Network is set, "network-config".
func (c NoCloud) Render() (map[string][]byte, error) {
	if c.InstanceID == "" {
		return nil, fmt.Errorf("imaging: nocloud: missing instance id")
	}
	files := make(map[string][]byte, 3)
	md, err := marshalYAML(metaData{InstanceID: c.InstanceID, LocalHostname: c.Hostname})
	if err != nil {
		return nil, fmt.Errorf("imaging: nocloud meta-data: %w", err)
	}
	files["meta-data"] = md

	cc := cloudConfig{Hostname: c.Hostname}
	for _, u := range c.Users {
		if u.Name == "" {
			return nil, fmt.Errorf("imaging: nocloud: user without a name")
		}
		if u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, "$") {
			return nil, fmt.Errorf("imaging: nocloud: user %s: password must be a crypt(3) hash, not plain text", u.Name)
		}
		cc.Users = append(cc.Users, cloudUser{
			Name:              u.Name,
			Passwd:            u.PasswordHash,
			LockPasswd:        u.PasswordHash == "",
			SSHAuthorizedKeys: u.SSHKeys,
			Sudo:              u.Sudo,
			Groups:            strings.Join(u.Groups, ", "),
			Shell:             u.Shell,
		})
	}
	for _, f := range c.Files {
		if !strings.HasPrefix(f.Path, "/") {
			return nil, fmt.Errorf("imaging: nocloud: file path %q is not absolute", f.Path)
		}
		cf := cloudFile{Path: f.Path, Permissions: f.Permissions, Owner: f.Owner}
		if utf8.Valid(f.Content) {
			cf.Content = string(f.Content)
		} else {
			cf.Content, cf.Encoding = base64.StdEncoding.EncodeToString(f.Content), "b64"
		}
		cc.WriteFiles = append(cc.WriteFiles, cf)
	}
	ud, err := marshalYAML(cc)
	if err != nil {
		return nil, fmt.Errorf("imaging: nocloud user-data: %w", err)
	}
	// cloud-init recognises cloud-config user-data by this first line.
	files["user-data"] = append([]byte("#cloud-config\n"), ud...)

	if n := c.Network; n != nil {
		nc, err := n.render()
		if err != nil {
			return nil, err
		}
		files["network-config"] = nc
	}
	return files, nil
}

func (n *Network) render() ([]byte, error) {
	if len(n.MAC) == 0 {
		return nil, fmt.Errorf("imaging: nocloud network: missing MAC")
	}
	if !n.DHCP4 && len(n.Addresses) == 0 {
		return nil, fmt.Errorf("imaging: nocloud network: neither dhcp4 nor addresses")
	}
	// cloud-init compares MACs case-sensitively in places (cloud-init
	// issue 3672); net.HardwareAddr prints lower case.
	e := ethernet{Match: map[string]string{"macaddress": n.MAC.String()}, SetName: n.Name, DHCP4: n.DHCP4}
	for _, a := range n.Addresses {
		if !a.IsValid() {
			return nil, fmt.Errorf("imaging: nocloud network: invalid address")
		}
		e.Addresses = append(e.Addresses, a.String())
	}
	// routes replaces gateway4/gateway6, deprecated in netplan.
	for _, gw := range []netip.Addr{n.Gateway4, n.Gateway6} {
		if gw.IsValid() {
			e.Routes = append(e.Routes, route{To: "default", Via: gw.String()})
		}
	}
	if len(n.Nameservers) > 0 || len(n.Search) > 0 {
		ns := &nameservers{Search: n.Search}
		for _, a := range n.Nameservers {
			ns.Addresses = append(ns.Addresses, a.String())
		}
		e.Nameservers = ns
	}
	id := n.Name
	if id == "" {
		id = "boot"
	}
	b, err := marshalYAML(networkConfig{Version: 2, Ethernets: map[string]ethernet{id: e}})
	if err != nil {
		return nil, fmt.Errorf("imaging: nocloud network-config: %w", err)
	}
	return b, nil
}

// marshalYAML encodes v with the two-space indentation of cloud-init's
// documentation. go.yaml.in/yaml/v3 quotes every string a YAML 1.1 parser
// such as cloud-init's PyYAML would read as something else: "yes", "0644",
// and MAC addresses of digits only, which YAML 1.1 reads as base-60
// integers.
func marshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
