package profiles

// The YAML shape of a profiles file. These types are decoded strictly, with
// KnownFields, straight from a file's bytes; the JSON Schema printed by
// `rackboot schema` is generated from them (schema.go), so the schema and
// the decoder cannot disagree about which keys exist.

// file is one profiles file. Every key is optional; a fleet may be split
// over as many files as the admin likes. Names (of versions, layouts,
// groups) and MACs are global across files.
type file struct {
	Defaults *settings  `yaml:"defaults,omitempty" desc:"settings of every host, overridden by groups and hosts; in one file only"`
	Versions []Version  `yaml:"versions,omitempty" desc:"the catalog of operating-system versions"`
	Layouts  []Layout   `yaml:"layouts,omitempty" desc:"disk selection and partitioning schemes"`
	Groups   []groupDoc `yaml:"groups,omitempty" desc:"hosts sharing settings, chosen by selectors or by name"`
	Hosts    []hostDoc  `yaml:"hosts,omitempty" desc:"the machines, by MAC"`
}

// settings are what defaults, groups and hosts may set. A host's effective
// value of each is resolved over defaults ← matching groups ← host.
type settings struct {
	Version string `yaml:"version,omitempty" schema:"pattern=name" desc:"a version name; excludes channel"`
	Channel string `yaml:"channel,omitempty" schema:"pattern=name" desc:"the highest-numbered version of this channel; excludes version"`
	Layout  string `yaml:"layout,omitempty" schema:"pattern=name" desc:"a layout name"`
	// Installer overrides the version's installer.
	Installer  *Installer `yaml:"installer,omitempty"`
	KernelArgs string     `yaml:"kernel_args,omitempty" desc:"installer kernel arguments, appended in order defaults, groups, host"`
	Network    *Network   `yaml:"network,omitempty"`
	Users      []User     `yaml:"users,omitempty" desc:"accounts, merged by name"`
	SSHKeys    []string   `yaml:"ssh_keys,omitempty" desc:"authorized_keys lines for the image's default user, accumulated"`
	Files      []File     `yaml:"files,omitempty" desc:"extra files for the config drive, merged by path"`
	// CloudConfig is decoded as nodes, so that its values reach
	// cloud-init as written.
	CloudConfig CloudConfig `yaml:"cloud_config,omitempty" desc:"extra cloud-config (packages, runcmd, ntp, …) merged into the config drive's user-data, by top-level key; keys rackboot writes are refused"`
	BMC         *BMC        `yaml:"bmc,omitempty" desc:"the machine's BMC, for power control and a one-time network boot; merged by key over defaults, groups, host"`
}

type groupDoc struct {
	Name     string `yaml:"name" schema:"required,pattern=name"`
	Match    Match  `yaml:"match,omitempty"`
	settings `yaml:",inline"`
}

type hostDoc struct {
	MAC      string            `yaml:"mac" schema:"required,pattern=mac" desc:"any common spelling: 52:54:00:aa:bb:cc, 52-54-00-AA-BB-CC, 5254.00aa.bbcc"`
	Hostname string            `yaml:"hostname,omitempty" schema:"pattern=hostname" desc:"RFC 1123 host name"`
	Group    string            `yaml:"group,omitempty" schema:"pattern=name" desc:"a group that applies to this host whatever its selectors"`
	Labels   map[string]string `yaml:"labels,omitempty" desc:"labels that group selectors match, e.g. rack: r1"`
	settings `yaml:",inline"`
}
