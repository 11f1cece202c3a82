package profiles

import (
	"fmt"
	"strconv"
	"strings"
)

// Settings lists the host's resolved settings, each with the level it came
// from, in a stable order: what `rackboot render` shows an admin who wants
// to know why a machine gets what it gets.
func (h *Host) Settings() []Setting {
	out := make([]Setting, 0, len(h.origins))
	for _, o := range h.origins {
		out = append(out, Setting{Field: o.field, Value: h.value(o.field), From: o.from})
	}
	return out
}

// From returns where the resolved field came from ("host", "group NAME",
// "defaults", "version NAME"), or "" when nothing set it. Fields are named
// as in Settings: version, layout, installer, network, network.dns,
// users[NAME], files[PATH], …
func (h *Host) From(field string) string {
	for _, o := range h.origins {
		if o.field == field {
			return o.from
		}
	}
	return ""
}

// value formats one resolved field for people.
func (h *Host) value(field string) string {
	name, key, _ := strings.Cut(strings.TrimSuffix(field, "]"), "[")
	switch name {
	case "hostname":
		return h.Hostname
	case "version":
		if v := h.Version; v != nil {
			s := fmt.Sprintf("%s (number %d", v.Name, v.Number)
			if v.Channel != "" {
				s += ", channel " + v.Channel
			}
			return s + ")"
		}
		return "(unknown)"
	case "layout":
		if h.Layout != nil {
			return h.Layout.Name
		}
		return "(unknown)"
	case "installer":
		if in := h.Installer; in != nil {
			if in.Initrd == "" {
				return in.Kernel
			}
			return in.Kernel + ", " + in.Initrd
		}
	case "kernel_args":
		return h.KernelArgs
	case "network":
		if h.Network.Static() {
			return "static " + h.Network.Address
		}
		return "dhcp"
	case "bmc.protocol", "bmc.address", "bmc.username", "bmc.credential", "bmc.system", "bmc.insecure_tls":
		return bmcValue(h.BMC, strings.TrimPrefix(name, "bmc."))
	case "network.gateway":
		return h.Network.Gateway
	case "network.dns":
		return strings.Join(h.Network.DNS, ", ")
	case "network.search":
		return strings.Join(h.Network.Search, ", ")
	case "ssh_keys":
		return fmt.Sprintf("%d key%s", len(h.SSHKeys), plural(len(h.SSHKeys)))
	case "users":
		for _, u := range h.Users {
			if u.Name == key {
				return describeUser(u)
			}
		}
	case "cloud_config":
		if v, ok := h.CloudConfig[key]; ok {
			return flowLine(v)
		}
		return "(removed)"
	case "files":
		for _, f := range h.Files {
			if f.Path == key {
				mode := f.Mode
				if mode == "" {
					mode = "0644"
				}
				return fmt.Sprintf("%d bytes, mode %s", len(f.Content), mode)
			}
		}
	}
	return ""
}

func describeUser(u User) string {
	var parts []string
	if len(u.Groups) > 0 {
		parts = append(parts, "groups "+strings.Join(u.Groups, ","))
	}
	if u.Password != "" {
		parts = append(parts, "password hash "+u.Password[:strings.IndexByte(u.Password[1:], '$')+2]+"…")
	} else {
		parts = append(parts, "password locked")
	}
	if len(u.SSHKeys) > 0 {
		parts = append(parts, fmt.Sprintf("%d ssh key%s", len(u.SSHKeys), plural(len(u.SSHKeys))))
	}
	if u.Sudo {
		parts = append(parts, "sudo")
	}
	return strings.Join(parts, ", ")
}

// bmcValue is one resolved key of a BMC, for `rackboot render`: the
// credential is a file's name, never its contents.
func bmcValue(b *BMC, key string) string {
	if b == nil {
		return ""
	}
	switch key {
	case "protocol":
		return b.Protocol
	case "address":
		return b.Address
	case "username":
		return b.Username
	case "credential":
		return b.Credential + " (a file of the credentials directory)"
	case "system":
		return b.System
	case "insecure_tls":
		return strconv.FormatBool(b.InsecureTLS)
	}
	return ""
}
