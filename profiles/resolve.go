package profiles

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
)

// Resolution: a host's effective profile is its defaults, overridden by the
// groups that apply to it, overridden by the host's own entry. Groups are
// ordered by specificity, from the least to the most specific:
//
//  1. groups matching by labels (more labels is more specific);
//  2. groups matching by mac_prefix (a longer prefix is more specific);
//  3. groups whose match lists the host's MAC;
//  4. the group the host names with `group:`.
//
// A group's specificity is its strongest selector, then the next: a group
// matching by a 3-octet prefix and a label is more specific than one
// matching by the prefix alone. Every selector of a group must match for it
// to apply; a group without selectors applies only to hosts that name it.
//
// Each setting takes the value of the most specific level that sets it.
// When two groups of equal specificity set it to different values and no
// more specific level overrides it, the host is in error: rackboot does not
// pick one silently. Three settings combine instead of overriding:
// kernel_args are appended from the least to the most specific level,
// ssh_keys accumulate, and users and files merge by name and path (each
// name or path resolved like a setting).

// rank orders the levels of a host; compare fields in order.
type rank struct {
	tier   int // 0 defaults, 1 group by selectors, 2 group named by the host, 3 host
	mac    int // 1 when the group's match lists the MAC
	prefix int // octets of the group's matching mac_prefix
	labels int // labels of the group's match
}

func (a rank) compare(b rank) int {
	for _, d := range [4]int{a.tier - b.tier, a.mac - b.mac, a.prefix - b.prefix, a.labels - b.labels} {
		if d != 0 {
			return d
		}
	}
	return 0
}

func (r rank) String() string {
	var by []string
	if r.mac > 0 {
		by = append(by, "its MAC")
	}
	if r.prefix > 0 {
		by = append(by, fmt.Sprintf("a %d-octet mac_prefix", r.prefix))
	}
	if r.labels > 0 {
		by = append(by, fmt.Sprintf("%d label%s", r.labels, plural(r.labels)))
	}
	return "by " + strings.Join(by, " and ")
}

type ranked struct {
	*level
	rank rank
	src  string
}

// matches reports whether the group's selectors all match h, and how
// specifically.
func (g *groupAt) matches(h *hostAt) (rank, bool) {
	if !g.hasMatch {
		return rank{}, false
	}
	r := rank{tier: 1}
	m := g.g.Match
	if len(m.MAC) > 0 {
		if !slices.Contains(g.macs, h.mac) {
			return r, false
		}
		r.mac = 1
	}
	if m.MACPrefix != "" {
		if g.prefix == nil || !bytes.HasPrefix(h.mac[:], g.prefix) {
			return r, false
		}
		r.prefix = len(g.prefix)
	}
	for k, v := range m.Labels {
		if hv, ok := h.doc.Labels[k]; !ok || hv != v {
			return r, false
		}
	}
	r.labels = len(m.Labels)
	return r, true
}

// levels returns the levels of h from the least to the most specific; groups
// of equal rank are ordered by name, so that every choice is deterministic.
func (l *linker) levels(h *hostAt) []ranked {
	var lvs []ranked
	if l.defaults != nil {
		lvs = append(lvs, ranked{level: l.defaults, src: src(l.defaults.file, l.defaults.entry)})
	}
	if h == nil {
		return lvs
	}
	explicit := l.groups[h.doc.Group]
	add := func(g *groupAt, r rank) {
		lvs = append(lvs, ranked{level: &g.lv, rank: r, src: g.g.Source})
	}
	try := func(gs []*groupAt) {
		for _, g := range gs {
			if r, ok := g.matches(h); ok && g != explicit {
				add(g, r)
			}
		}
	}
	try(l.byGroupMAC[h.mac])
	for n := 1; n <= 5; n++ {
		try(l.byPrefix[string(h.mac[:n])])
	}
	for k, v := range h.doc.Labels {
		try(l.byLabel[label{k, v}])
	}
	if explicit != nil {
		add(explicit, rank{tier: 2})
	}
	slices.SortStableFunc(lvs, func(a, b ranked) int {
		if c := a.rank.compare(b.rank); c != 0 {
			return c
		}
		return strings.Compare(a.from, b.from)
	})
	return append(lvs, ranked{level: &h.lv, rank: rank{tier: 3}, src: src(h.lv.file, h.lv.entry)})
}

// pick returns the most specific level for which set is true, and a level
// of equal rank that sets a different value (same reports equality), if
// any.
func pick(lvs []ranked, set func(*settings) bool, same func(a, b *settings) bool) (win, clash *ranked) {
	for i := len(lvs) - 1; i >= 0; i-- {
		if !set(lvs[i].s) {
			continue
		}
		win = &lvs[i]
		for j := i - 1; j >= 0 && lvs[j].rank == win.rank; j-- {
			if set(lvs[j].s) && !same(lvs[j].s, win.s) {
				return win, &lvs[j]
			}
		}
		return win, nil
	}
	return nil, nil
}

// resolution is the state of resolving one host.
type resolution struct {
	l    *linker
	sink *sink
	h    *hostAt
	lvs  []ranked
	host *Host
}

func (r *resolution) origin(field, from string) {
	r.host.origins = append(r.host.origins, origin{field: field, from: from})
}

// choose picks a setting and reports a tie.
func (r *resolution) choose(field string, set func(*settings) bool, same func(a, b *settings) bool) *ranked {
	win, clash := pick(r.lvs, set, same)
	if clash != nil {
		r.sink.errOnce("tie\x00"+field+"\x00"+win.from+"\x00"+clash.from, r.h.lv.file, r.h.macPos,
			"host %s: %s (%s) and %s (%s) apply equally specifically (%s) and disagree on %s: make one more specific, or set %s in the host",
			r.h.hw, clash.from, clash.src, win.from, win.src, win.rank, field, field)
	}
	if win != nil {
		r.origin(field, win.from)
	}
	return win
}

// resolve computes the effective profile of h.
func (l *linker) resolve(sink *sink, h *hostAt) *Host {
	host := &Host{MAC: h.hw, Hostname: h.doc.Hostname, Source: src(h.lv.file, h.lv.entry), Group: h.doc.Group, Labels: h.doc.Labels}
	r := &resolution{l: l, sink: sink, h: h, lvs: l.levels(h), host: host}
	for i := len(r.lvs) - 2; i >= 0; i-- {
		if strings.HasPrefix(r.lvs[i].from, "group ") {
			host.Groups = append(host.Groups, strings.TrimPrefix(r.lvs[i].from, "group "))
		}
	}
	// Origins are gathered in the sink's scratch slice and copied once at
	// their final size: a snapshot holds one per setting of every host.
	host.origins = sink.scratch[:0]
	if host.Hostname != "" {
		r.origin("hostname", "host")
	}
	r.settings()
	r.check()
	r.checkBMC()
	sink.scratch = host.origins
	host.origins = slices.Clone(host.origins)
	return host
}

// defaultInstaller resolves a host that only the defaults apply to.
func (l *linker) defaultInstaller(sink *sink) *Installer {
	r := &resolution{l: l, sink: sink, lvs: l.levels(nil), host: &Host{}}
	r.settings()
	return r.host.Installer
}

// settings resolves every setting of r.host from r.lvs.
func (r *resolution) settings() {
	host, l := r.host, r.l
	if win := r.choose("version", func(s *settings) bool { return s.Version != "" || s.Channel != "" },
		func(a, b *settings) bool { return a.Version == b.Version && a.Channel == b.Channel }); win != nil {
		if win.s.Version != "" {
			if va := l.versions[win.s.Version]; va != nil {
				host.Version = va.v
			}
		} else {
			host.Version = l.channels[win.s.Channel]
		}
	}
	if win := r.choose("layout", func(s *settings) bool { return s.Layout != "" },
		func(a, b *settings) bool { return a.Layout == b.Layout }); win != nil {
		if la := l.layouts[win.s.Layout]; la != nil {
			host.Layout = la.l
		}
	}

	var args, argsFrom []string
	for _, lv := range r.lvs {
		if a := strings.TrimSpace(lv.s.KernelArgs); a != "" {
			args = append(args, a)
			argsFrom = append(argsFrom, lv.from)
		}
	}
	host.KernelArgs = strings.Join(args, " ")
	if len(args) > 0 {
		r.origin("kernel_args", strings.Join(argsFrom, ", "))
	}

	// The installer: an explicit one from a group or the host overrides the
	// version's, which overrides the defaults'.
	var inst *Installer
	has := func(s *settings) bool { return s.Installer != nil }
	same := func(a, b *settings) bool { return *a.Installer == *b.Installer }
	win, _ := pick(r.lvs, has, same)
	switch {
	case win != nil && win.rank.tier > 0:
		inst = r.choose("installer", has, same).s.Installer
	case host.Version != nil && host.Version.Installer != nil:
		inst = host.Version.Installer
		r.origin("installer", "version "+host.Version.Name)
	case win != nil:
		inst = win.s.Installer
		r.origin("installer", win.from)
	}
	if inst != nil && host.KernelArgs != "" {
		k := installerKey{inst, host.KernelArgs}
		if c, ok := r.sink.installers[k]; ok {
			inst = c
		} else {
			c := *inst
			c.Cmdline = strings.TrimSpace(c.Cmdline + " " + host.KernelArgs)
			r.sink.installers[k] = &c
			inst = &c
		}
	}
	host.Installer = inst

	r.network()
	r.users()
	r.sshKeys()
	r.files()
	r.cloudConfig()
	r.bmc()
}

// cloudConfig merges cloud_config by top-level key, each key resolved like
// a setting; a null value removes the key. When one level sets it without
// nulls, its map is shared, not copied: a fleet whose defaults set it
// costs nothing per host.
func (r *resolution) cloudConfig() {
	var only CloudConfig
	n := 0
	for _, lv := range r.lvs {
		if len(lv.s.CloudConfig) > 0 {
			only = lv.s.CloudConfig
			n++
		}
	}
	if n == 0 {
		return
	}
	if n == 1 && !slices.ContainsFunc(slices.Collect(maps.Values(only)), isNull) {
		from := r.fromOf(func(s *settings) bool { return len(s.CloudConfig) > 0 })
		for _, k := range slices.Sorted(maps.Keys(only)) {
			r.origin("cloud_config["+k+"]", from)
		}
		r.host.CloudConfig = only
		return
	}
	keys := map[string]bool{}
	for _, lv := range r.lvs {
		for k := range lv.s.CloudConfig {
			keys[k] = true
		}
	}
	sorted := slices.Sorted(maps.Keys(keys))
	out := CloudConfig{}
	for _, k := range sorted {
		win := r.choose("cloud_config["+k+"]", func(s *settings) bool { _, ok := s.CloudConfig[k]; return ok },
			func(a, b *settings) bool { return sameNode(a.CloudConfig[k], b.CloudConfig[k]) })
		if v := win.s.CloudConfig[k]; !isNull(v) {
			out[k] = v
		}
	}
	if len(out) > 0 {
		r.host.CloudConfig = out
	}
}

func (r *resolution) network() {
	nwOf := func(s *settings) *Network {
		if s.Network == nil {
			return &Network{}
		}
		return s.Network
	}
	nw := &r.host.Network
	mode := r.choose("network", func(s *settings) bool { return nwOf(s).DHCP || nwOf(s).Address != "" },
		func(a, b *settings) bool { return nwOf(a).DHCP == nwOf(b).DHCP && nwOf(a).Address == nwOf(b).Address })
	if mode != nil {
		nw.DHCP, nw.Address = nwOf(mode.s).DHCP, nwOf(mode.s).Address
	}
	// A gateway applies to a static address only: a rack's gateway does
	// not concern its DHCP hosts, which learn theirs from the DHCP server.
	if nw.Static() {
		r.gateway(mode)
	}
	if dns := r.choose("network.dns", func(s *settings) bool { return len(nwOf(s).DNS) > 0 },
		func(a, b *settings) bool { return slices.Equal(nwOf(a).DNS, nwOf(b).DNS) }); dns != nil {
		nw.DNS = nwOf(dns.s).DNS
	}
	if search := r.choose("network.search", func(s *settings) bool { return len(nwOf(s).Search) > 0 },
		func(a, b *settings) bool { return slices.Equal(nwOf(a).Search, nwOf(b).Search) }); search != nil {
		nw.Search = nwOf(search.s).Search
	}
}

// gateway resolves the gateway of a static address set by mode.
func (r *resolution) gateway(mode *ranked) {
	nw := &r.host.Network
	gw := r.choose("network.gateway", func(s *settings) bool { return s.Network != nil && s.Network.Gateway != "" },
		func(a, b *settings) bool { return a.Network.Gateway == b.Network.Gateway })
	if gw == nil {
		return
	}
	nw.Gateway = gw.s.Network.Gateway
	// A gateway and an address of the same level were checked together
	// with the file; one from a group and one from the host meet here.
	if gw.level == mode.level || r.h == nil {
		return
	}
	if p, err := netip.ParsePrefix(nw.Address); err == nil {
		if err := checkGateway(p, nw.Gateway); err != nil {
			r.sink.errOnce("gw\x00"+gw.from+"\x00"+nw.Address, r.h.lv.file, r.h.macPos,
				"host %s: network: %v (gateway from %s, address from %s)", r.h.hw, err, gw.from, mode.from)
		}
	}
}

// keyed merges a list setting by key: each key resolves like a setting.
// When a single level sets the list, its slice is shared, not copied: a
// rack of hosts inheriting a group's users costs nothing per host.
func keyed[T any](r *resolution, field string, list func(*settings) []T, key func(T) string) []T {
	var only []T
	n := 0
	for _, lv := range r.lvs {
		if l := list(lv.s); len(l) > 0 {
			only = l
			n++
		}
	}
	if n <= 1 {
		for _, v := range only {
			r.origin(field+"["+key(v)+"]", r.fromOf(func(s *settings) bool { return len(list(s)) > 0 }))
		}
		return only
	}
	find := func(s *settings, k string) (T, bool) {
		for _, v := range list(s) {
			if key(v) == k {
				return v, true
			}
		}
		var zero T
		return zero, false
	}
	var out []T
	seen := map[string]bool{}
	for _, lv := range r.lvs {
		for _, v := range list(lv.s) {
			k := key(v)
			if seen[k] {
				continue
			}
			seen[k] = true
			win := r.choose(field+"["+k+"]", func(s *settings) bool { _, ok := find(s, k); return ok },
				func(a, b *settings) bool {
					va, _ := find(a, k)
					vb, _ := find(b, k)
					return reflect.DeepEqual(va, vb)
				})
			v, _ := find(win.s, k)
			out = append(out, v)
		}
	}
	return out
}

// fromOf is the most specific level for which set is true.
func (r *resolution) fromOf(set func(*settings) bool) string {
	if win, _ := pick(r.lvs, set, func(a, b *settings) bool { return true }); win != nil {
		return win.from
	}
	return ""
}

func (r *resolution) users() {
	r.host.Users = keyed(r, "users", func(s *settings) []User { return s.Users }, func(u User) string { return u.Name })
}

func (r *resolution) files() {
	r.host.Files = keyed(r, "files", func(s *settings) []File { return s.Files }, func(f File) string { return f.Path })
}

// sshKeys accumulates the keys of every level, the least specific first.
func (r *resolution) sshKeys() {
	var keys []string
	var from []string
	n := 0
	for _, lv := range r.lvs {
		if len(lv.s.SSHKeys) > 0 {
			n++
			keys = lv.s.SSHKeys
			from = append(from, lv.from)
		}
	}
	if n > 1 {
		keys = nil
		seen := map[string]bool{}
		for _, lv := range r.lvs {
			for _, k := range lv.s.SSHKeys {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	r.host.SSHKeys = keys
	if n > 0 {
		r.origin("ssh_keys", strings.Join(from, ", "))
	}
}
