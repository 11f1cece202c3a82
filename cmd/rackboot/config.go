package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/tftp"
)

// serveConfig holds every setting of `rackboot serve`. Each field is both a
// flag and a key of the optional YAML file given with --config; flags given
// on the command line win over the file.
type serveConfig struct {
	Profiles   string   `yaml:"profiles"`
	Data       string   `yaml:"data"`
	Interfaces []string `yaml:"interfaces"`
	Advertise  string   `yaml:"advertise"`
	HTTPPort   int      `yaml:"http-port"`
	// HTTPSPort serves the admin and agent APIs over TLS; the plain port
	// refuses them (docs/DESIGN.md, section 7, "TLS").
	HTTPSPort int `yaml:"https-port"`
	// TLSCert and TLSKey are an operator's certificate chain and key
	// (PEM) for HTTPSPort; both or neither. Neither: the appliance's own,
	// generated in DATA/tls.
	TLSCert  string `yaml:"tls-cert"`
	TLSKey   string `yaml:"tls-key"`
	TFTPPort int    `yaml:"tftp-port"`
	DHCPPort int    `yaml:"dhcp-port"`
	// PXEPort is the PXE boot-server port (4011), opened beside DHCPPort.
	// Tests move it with the DHCP port; 0 disables it.
	PXEPort   int    `yaml:"pxe-port"`
	IPXEDir   string `yaml:"ipxe-dir"`
	EFIFile   string `yaml:"efi-file"`
	ARM64File string `yaml:"arm64-file"`
	Artifacts string `yaml:"artifacts"`
	Discovery bool   `yaml:"discovery"`
	IPv6RA    bool   `yaml:"ipv6-ra"`
	// MaxAttempts is how many install attempts in a row may fail before a
	// machine is marked failed.
	MaxAttempts int    `yaml:"max-attempts"`
	LogFormat   string `yaml:"log-format"`
	LogLevel    string `yaml:"log-level"`
	// HTTPMaxConns caps the HTTP server's open connections; 0 derives it
	// from the open-file limit (see autoMaxConns). At the cap the
	// longest-idle connection is closed for a new one.
	HTTPMaxConns int `yaml:"http-max-conns"`
	// HTTPMaxPerClient caps the HTTP connections one client address may
	// hold (connLimit); 0: no cap.
	HTTPMaxPerClient int `yaml:"http-max-per-client"`
	// TFTPMaxPerClient caps the concurrent TFTP transfers of one client
	// address (tftp.Server.MaxPerClient); 0: no cap.
	TFTPMaxPerClient int `yaml:"tftp-max-per-client"`
	// MaxDiscovered caps the discovered records (registry.Registry.
	// MaxDiscovered): at the cap a new unknown MAC evicts the least
	// recently seen one.
	MaxDiscovered int `yaml:"max-discovered"`
	// DiscoveredTTL is how long a discovered record not seen again is
	// kept (registry.Registry.DiscoveredTTL).
	DiscoveredTTL time.Duration `yaml:"discovered-ttl"`
	// TrustRouted lists source prefixes (CIDR) whose requests are believed
	// by the MAC they name without a link-layer check: routed segments
	// behind a DHCP relay, where the appliance cannot see link-layer
	// addresses, and 127.0.0.0/8 for tools on the appliance itself.
	// Requests from anywhere else must come from the machine they name
	// (see neigh.go and docs/DESIGN.md §7).
	TrustRouted []string `yaml:"trust-routed"`
	// Peers is peer distribution of chunked images (docs/DESIGN.md,
	// "Peer distribution"): "off", "subnet" (agents fetch only from
	// peers in their own subnet) or "all".
	Peers string `yaml:"peers"`
	// PeerPort is the TCP port installing agents serve chunks on.
	PeerPort int `yaml:"peer-port"`
	// PeerLinger is how long an agent may go on serving its peers after
	// its install is done; it stops sooner once no peer has asked for
	// a while (the wave has ended).
	PeerLinger time.Duration `yaml:"peer-linger"`
	// BMCCredentials is the directory of the files holding BMC passwords,
	// which host profiles name with bmc.credential (docs/DESIGN.md,
	// "Power"). Empty means systemd's $CREDENTIALS_DIRECTORY when set
	// (LoadCredential=), else /etc/rackboot/bmc.
	BMCCredentials string `yaml:"bmc-credentials"`
	// PowerStagger is the least time between two machines' power actions
	// of one request or rollout wave; PowerConcurrency caps the machines
	// handled at once; PowerTimeout bounds one machine's operation.
	PowerStagger     time.Duration `yaml:"power-stagger"`
	PowerConcurrency int           `yaml:"power-concurrency"`
	PowerTimeout     time.Duration `yaml:"power-timeout"`
	// Store is where the registry lives: "bolt" (DATA/registry.db, the
	// default) or "etcd://HOST:PORT[,HOST:PORT…][/PREFIX]", an etcd
	// cluster several appliances share (docs/DESIGN.md, "Several
	// appliances"). StoreCA, StoreCert and StoreKey are the PEM files of
	// TLS to etcd: the CA that signed the members' certificates, and this
	// appliance's client certificate and key.
	Store     string `yaml:"store"`
	StoreCA   string `yaml:"store-ca"`
	StoreCert string `yaml:"store-cert"`
	StoreKey  string `yaml:"store-key"`
	// ApplianceID names this appliance among those sharing an etcd store;
	// empty means its advertised address and HTTPS port.
	ApplianceID string `yaml:"appliance-id"`
}

// defaultBMCCredentials is the credentials directory outside systemd.
const defaultBMCCredentials = "/etc/rackboot/bmc"

// bmcCredentials is the credentials directory in effect.
func (c serveConfig) bmcCredentials(getenv func(string) string) string {
	switch {
	case c.BMCCredentials != "":
		return c.BMCCredentials
	case getenv("CREDENTIALS_DIRECTORY") != "":
		return getenv("CREDENTIALS_DIRECTORY")
	}
	return defaultBMCCredentials
}

// Peer distribution's modes (serveConfig.Peers).
const (
	peersOff    = "off"
	peersSubnet = "subnet"
	peersAll    = "all"
)

func defaultServeConfig() serveConfig {
	return serveConfig{
		Profiles:  "/etc/rackboot/profiles",
		Data:      "/var/lib/rackboot",
		HTTPPort:  8080,
		HTTPSPort: 8443,
		TFTPPort:  69,
		DHCPPort:  67,
		PXEPort:   4011,
		IPXEDir:   "/usr/lib/ipxe",
		// snponly.efi drives the NIC through the firmware's own network
		// stack. Debian's ipxe.efi brings its own drivers and, chained from
		// EDK2's PXE, never returns from `exit`: the local-boot script of an
		// installed UEFI machine would hang instead of falling through to
		// the disk (seen in the e2e lab; snponly.efi returns at once).
		EFIFile:     "snponly.efi",
		ARM64File:   "",
		Artifacts:   "/var/lib/rackboot/artifacts",
		Store:       storeBolt,
		LogFormat:   "auto",
		LogLevel:    "info",
		MaxAttempts: 3,
		// Each PXE client has its own address and runs one transfer at a
		// time (tftp.DefaultMaxPerClient explains the margin).
		TFTPMaxPerClient: tftp.DefaultMaxPerClient,
		HTTPMaxPerClient: defaultHTTPMaxPerClient,
		MaxDiscovered:    registry.DefaultMaxDiscovered,
		DiscoveredTTL:    registry.DefaultDiscoveredTTL,
		Peers:            peersOff,
		PeerPort:         8090,
		PeerLinger:       5 * time.Minute,
		PowerStagger:     2 * time.Second,
		PowerConcurrency: 8,
		PowerTimeout:     30 * time.Second,
	}
}

// listFlag is a repeatable string flag. The first use on the command line
// replaces what the config file said instead of appending to it.
type listFlag struct {
	list *[]string
	set  bool
}

func (f *listFlag) String() string {
	if f.list == nil {
		return ""
	}
	return strings.Join(*f.list, ",")
}

func (f *listFlag) Set(v string) error {
	if !f.set {
		*f.list = nil
		f.set = true
	}
	*f.list = append(*f.list, v)
	return nil
}

func serveFlags(c *serveConfig, configFile *string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: rackboot serve [--config FILE] [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(configFile, "config", "", "YAML `file` with the same keys as these flags (flags win)")
	fs.StringVar(&c.Profiles, "profiles", c.Profiles, "`dir`ectory of YAML host profiles")
	fs.StringVar(&c.Data, "data", c.Data, "`dir`ectory for rackboot's state")
	fs.Var(&listFlag{list: &c.Interfaces}, "interface", "boot `interface` to serve (repeatable; default: every up, non-loopback IPv4 interface)")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "`ip` clients are told to use (default: the interface's address)")
	fs.IntVar(&c.HTTPPort, "http-port", c.HTTPPort, "HTTP `port` for scripts and artifacts")
	fs.IntVar(&c.HTTPSPort, "https-port", c.HTTPSPort, "HTTPS `port` for the admin and agent APIs (the HTTP port refuses them)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM `file` of the HTTPS certificate chain, its trust anchor last (default: generated in DATA/tls)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM `file` of the key of --tls-cert")
	fs.IntVar(&c.TFTPPort, "tftp-port", c.TFTPPort, "TFTP `port`")
	fs.IntVar(&c.DHCPPort, "dhcp-port", c.DHCPPort, "proxy-DHCP `port`")
	fs.IntVar(&c.PXEPort, "pxe-port", c.PXEPort, "PXE boot-server `port` answered beside the DHCP port (0: off)")
	fs.StringVar(&c.IPXEDir, "ipxe-dir", c.IPXEDir, "`dir`ectory of the iPXE binaries (the distribution's ipxe package)")
	fs.StringVar(&c.EFIFile, "efi-file", c.EFIFile, "iPXE `file` for x86-64 UEFI clients (ipxe.efi brings its own NIC drivers but cannot exit back to the firmware)")
	fs.StringVar(&c.ARM64File, "arm64-file", c.ARM64File, "iPXE `file` for arm64 UEFI clients (empty: arm64 not served)")
	fs.StringVar(&c.Artifacts, "artifacts", c.Artifacts, "`dir`ectory served under /artifacts/")
	fs.BoolVar(&c.Discovery, "discovery", c.Discovery, "answer machines missing from the profiles with the default installer")
	fs.BoolVar(&c.IPv6RA, "ipv6-ra", c.IPv6RA, "answer IPv6 router solicitations with a null advertisement (ends iPXE's ~16 s IPv6 wait)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "install `attempts` in a row before a machine is marked failed")
	fs.IntVar(&c.HTTPMaxConns, "http-max-conns", c.HTTPMaxConns, "most open HTTP `connections`; at the cap the longest-idle one is closed (0: from the open-file limit, at most 4096)")
	fs.IntVar(&c.HTTPMaxPerClient, "http-max-per-client", c.HTTPMaxPerClient, "most open HTTP `connections` of one client address; more are closed at once (0: no cap)")
	fs.IntVar(&c.TFTPMaxPerClient, "tftp-max-per-client", c.TFTPMaxPerClient, "most concurrent TFTP `transfers` of one client address (0: no cap)")
	fs.IntVar(&c.MaxDiscovered, "max-discovered", c.MaxDiscovered, "most discovered `records` kept (with --discovery); at the cap a new unknown MAC evicts the least recently seen")
	fs.DurationVar(&c.DiscoveredTTL, "discovered-ttl", c.DiscoveredTTL, "forget a discovered record not seen for this `duration`")
	fs.Var(&listFlag{list: &c.TrustRouted}, "trust-routed", "source `prefix` (CIDR) whose /ipxe and agent requests are believed by the MAC they name without a link-layer check: a routed segment behind a DHCP relay, or 127.0.0.0/8 for local tools (repeatable)")
	fs.StringVar(&c.Peers, "peers", c.Peers, "peer `mode` of chunked images: off, subnet (installing machines serve chunks to machines of their own subnet) or all")
	fs.IntVar(&c.PeerPort, "peer-port", c.PeerPort, "TCP `port` installing machines serve chunks to their peers on (with --peers)")
	fs.DurationVar(&c.PeerLinger, "peer-linger", c.PeerLinger, "longest `duration` a machine serves its peers after its install is done (it stops sooner once no peer asked for 30s)")
	fs.StringVar(&c.BMCCredentials, "bmc-credentials", c.BMCCredentials, "`dir`ectory of the files holding BMC passwords that profiles name with bmc.credential (default: $CREDENTIALS_DIRECTORY, else "+defaultBMCCredentials+")")
	fs.DurationVar(&c.PowerStagger, "power-stagger", c.PowerStagger, "least `duration` between two machines' power actions of one request or rollout wave (inrush current)")
	fs.IntVar(&c.PowerConcurrency, "power-concurrency", c.PowerConcurrency, "most `machines` whose BMCs are handled at once")
	fs.DurationVar(&c.PowerTimeout, "power-timeout", c.PowerTimeout, "longest `duration` of one machine's power action against a BMC that does not answer, its retries included (each try gets a third)")
	fs.StringVar(&c.Store, "store", c.Store, "where the registry lives: `bolt` (DATA/registry.db) or etcd://HOST:PORT[,HOST:PORT...][/PREFIX], an etcd cluster several appliances share")
	fs.StringVar(&c.StoreCA, "store-ca", c.StoreCA, "PEM `file` of the CA of the etcd members' certificates (TLS to etcd)")
	fs.StringVar(&c.StoreCert, "store-cert", c.StoreCert, "PEM `file` of this appliance's etcd client certificate")
	fs.StringVar(&c.StoreKey, "store-key", c.StoreKey, "PEM `file` of the key of --store-cert")
	fs.StringVar(&c.ApplianceID, "appliance-id", c.ApplianceID, "`name` of this appliance among those sharing an etcd store (default: its advertised address and HTTPS port)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: auto (text on a terminal, JSON otherwise), text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn or error")
	return fs
}

// parseServeConfig applies defaults, then the --config file if any, then the
// flags given on the command line.
func parseServeConfig(args []string, stderr io.Writer) (serveConfig, error) {
	c := defaultServeConfig()
	var file string
	fs := serveFlags(&c, &file, stderr)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if file == "" {
		return c, c.check()
	}
	c = defaultServeConfig()
	b, err := os.ReadFile(file)
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("%s: %w", file, err)
	}
	fs = serveFlags(&c, &file, stderr)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.check()
}

// peerSettings is what plans of chunked images carry with --peers on;
// nil when off.
func (c *serveConfig) peerSettings() *agentapi.PeerSettings {
	if c.Peers == peersOff || c.Peers == "" {
		return nil
	}
	return &agentapi.PeerSettings{Port: c.PeerPort, LingerMS: c.PeerLinger.Milliseconds()}
}

func (c *serveConfig) check() error {
	for _, p := range []struct {
		name string
		v    int
	}{{"http-port", c.HTTPPort}, {"https-port", c.HTTPSPort}, {"tftp-port", c.TFTPPort}, {"dhcp-port", c.DHCPPort}, {"pxe-port", c.PXEPort}} {
		if p.v < 0 || p.v > 65535 {
			return fmt.Errorf("%s %d: not a port", p.name, p.v)
		}
	}
	// The API is served over HTTPS only: there is no port 0 for it.
	if c.HTTPSPort == 0 {
		return errors.New("https-port 0: the admin and agent APIs need an HTTPS port")
	}
	if c.HTTPSPort == c.HTTPPort && c.HTTPPort != 0 {
		return fmt.Errorf("https-port %d: the same as http-port", c.HTTPSPort)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key go together: give both, or neither for the appliance's own certificate")
	}
	if c.HTTPMaxConns < 0 {
		return fmt.Errorf("http-max-conns %d: want 0 (automatic) or more", c.HTTPMaxConns)
	}
	if c.HTTPMaxPerClient < 0 {
		return fmt.Errorf("http-max-per-client %d: want 0 (no cap) or more", c.HTTPMaxPerClient)
	}
	if c.TFTPMaxPerClient < 0 {
		return fmt.Errorf("tftp-max-per-client %d: want 0 (no cap) or more", c.TFTPMaxPerClient)
	}
	if c.MaxDiscovered < 1 {
		return fmt.Errorf("max-discovered %d: want at least 1", c.MaxDiscovered)
	}
	if c.DiscoveredTTL < time.Minute {
		return fmt.Errorf("discovered-ttl %s: want at least 1m", c.DiscoveredTTL)
	}
	if _, err := c.trustedPrefixes(); err != nil {
		return err
	}
	switch c.Peers {
	case peersOff, peersSubnet, peersAll:
	default:
		return fmt.Errorf("peers %q: want off, subnet or all", c.Peers)
	}
	if c.PeerPort < 1 || c.PeerPort > 65535 {
		return fmt.Errorf("peer-port %d: not a port", c.PeerPort)
	}
	if c.PeerLinger < 0 {
		return fmt.Errorf("peer-linger %s: want 0 (stop at done) or more", c.PeerLinger)
	}
	if c.PowerStagger < 0 || c.PowerStagger > 5*time.Minute {
		return fmt.Errorf("power-stagger %s: want 0 to 5m", c.PowerStagger)
	}
	if c.PowerConcurrency < 1 || c.PowerConcurrency > 256 {
		return fmt.Errorf("power-concurrency %d: want 1 to 256", c.PowerConcurrency)
	}
	if c.PowerTimeout < time.Second {
		return fmt.Errorf("power-timeout %s: want at least 1s", c.PowerTimeout)
	}
	if _, err := c.storeTarget(); err != nil {
		return err
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("max-attempts %d: want at least 1", c.MaxAttempts)
	}
	if c.Advertise != "" {
		if ip := net.ParseIP(c.Advertise); ip == nil || ip.To4() == nil {
			return fmt.Errorf("advertise %q: not an IPv4 address", c.Advertise)
		}
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		return fmt.Errorf("log-format %q: want auto, text or json", c.LogFormat)
	}
	return nil
}

// trustedPrefixes parses TrustRouted.
func (c *serveConfig) trustedPrefixes() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range c.TrustRouted {
		for _, f := range strings.Split(s, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(f))
			if err != nil {
				return nil, fmt.Errorf("trust-routed %q: want a prefix such as 10.20.0.0/16 or 127.0.0.0/8", f)
			}
			ps = append(ps, p.Masked())
		}
	}
	return ps, nil
}
