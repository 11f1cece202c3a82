package profiles

import "strings"

// check checks what only the resolved profile shows: a version without
// a layout, an image that does not fit its layout, settings that need a
// config drive the layout lacks.
func (r *resolution) check() {
	h, host, l, sink := r.h, r.host, r.l, r.sink
	from := func(field string) string {
		for _, o := range host.origins {
			if o.field == field {
				return o.from
			}
		}
		return ""
	}
	errOnce := func(key, format string, args ...any) {
		sink.errOnce(key, h.lv.file, h.macPos, "host %s: "+format, append([]any{h.hw}, args...)...)
	}
	if host.Version == nil && host.Layout == nil ||
		host.Version == nil && from("version") != "" || host.Layout == nil && from("layout") != "" {
		// Nothing to install, or an unknown name, reported where it
		// is written.
		return
	}
	// A host-level mistake is the host's own; a group's is reported once.
	scope := func(f string) string {
		if f == "host" {
			return MACKey(host.MAC)
		}
		return f
	}
	switch {
	case host.Version != nil && host.Layout == nil:
		errOnce("nolayout\x00"+scope(from("version")), "version %s (from %s) needs a layout: set layout in the host, a group or the defaults",
			host.Version.Name, from("version"))
		return
	case host.Version == nil:
		errOnce("noversion\x00"+scope(from("layout")), "layout %s (from %s) needs a version: set version or channel in the host, a group or the defaults",
			host.Layout.Name, from("layout"))
		return
	}
	if host.Installer == nil {
		errOnce("noinstaller\x00"+scope(from("version")), "version %s (from %s) has no installer, and none is set for the host: it could not boot to be installed",
			host.Version.Name, from("version"))
	}
	if host.Hostname == "" {
		sink.errAt(h.lv.file, h.lv.entry, "host %s: a host with a version needs a hostname: it names the installed machine", h.hw)
	}
	v, ly := host.Version, host.Layout
	if l.versions[v.Name].bad || l.layouts[ly.Name].bad {
		return
	}
	images, config := 0, false
	for _, p := range ly.Partitions {
		images += b2i(p.Content == ContentImage)
		config = config || p.Content == ContentConfig
	}
	switch {
	case v.Image.Kind == KindPartitions && images != 1:
		errOnce("kind\x00"+v.Name+"\x00"+ly.Name, "version %s (%s) holds the contents of one partition, but layout %s (%s) has %d partitions with content: image",
			v.Name, v.Source, ly.Name, ly.Source, images)
	case v.Image.Kind == KindWholeDisk && images > 0:
		errOnce("kind\x00"+v.Name+"\x00"+ly.Name, "version %s (%s) is a whole-disk image, but layout %s (%s) has a partition with content: image: a whole-disk image brings its own partitions, and the layout's are added after it",
			v.Name, v.Source, ly.Name, ly.Source)
	}
	if !config && v.ConfigDrive != "" {
		errOnce("drive\x00"+v.Name+"\x00"+ly.Name, "version %s (%s) sets config_drive: %s, but layout %s (%s) has no partition with content: config (the config drive)",
			v.Name, v.Source, v.ConfigDrive, ly.Name, ly.Source)
	}
	if !config {
		var need []string
		for _, f := range []string{"users", "ssh_keys", "files", "network", "cloud_config"} {
			if f == "users" && len(host.Users) > 0 || f == "ssh_keys" && len(host.SSHKeys) > 0 ||
				f == "files" && len(host.Files) > 0 || f == "network" && from("network")+from("network.dns") != "" ||
				f == "cloud_config" && len(host.CloudConfig) > 0 {
				need = append(need, f)
			}
		}
		if len(need) > 0 {
			errOnce("config\x00"+ly.Name+"\x00"+strings.Join(need, ","), "%s would not reach the machine: layout %s (%s) has no partition with content: config (the config drive)",
				strings.Join(need, ", "), ly.Name, ly.Source)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
