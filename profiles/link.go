package profiles

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// linker joins the parsed files into one Set: it rejects names and MACs
// defined twice, resolves references, and resolves every host.
type linker struct {
	sink
	set        *Set
	defaults   *level
	versions   map[string]*versionAt
	numbers    map[string]*versionAt // "channel\x00number"
	channels   map[string]*Version   // channel → its highest number
	layouts    map[string]*layoutAt
	groups     map[string]*groupAt
	hosts      []*hostAt
	byMAC      map[[6]byte]*hostAt
	hostnames  map[string]*hostAt
	byGroupMAC map[[6]byte][]*groupAt // groups whose match lists a MAC
	byPrefix   map[string][]*groupAt  // other groups with a mac_prefix, by prefix
	byLabel    map[label][]*groupAt   // the rest, by their first label
}

type label struct{ key, value string }

// sink collects the errors of one goroutine's share of the work.
type sink struct {
	errs ErrorList
	keys []string // the errOnce key of each error, or ""
	once map[string]*repeat
	// installers shares the Installer of hosts with equal installers and
	// kernel_args, instead of one copy per host.
	installers map[installerKey]*Installer
	scratch    []origin
}

type installerKey struct {
	base *Installer
	args string
}

// repeat counts the hosts an error applies to beyond the first, so that a
// mistake in a group shared by a whole rack is one message, not a thousand.
type repeat struct {
	idx, more int
}

func newSink() sink {
	return sink{once: map[string]*repeat{}, installers: map[installerKey]*Installer{}}
}

func newLinker() *linker {
	return &linker{
		sink:       newSink(),
		set:        &Set{hosts: map[[6]byte]*Host{}},
		versions:   map[string]*versionAt{},
		numbers:    map[string]*versionAt{},
		channels:   map[string]*Version{},
		layouts:    map[string]*layoutAt{},
		groups:     map[string]*groupAt{},
		byMAC:      map[[6]byte]*hostAt{},
		hostnames:  map[string]*hostAt{},
		byGroupMAC: map[[6]byte][]*groupAt{},
		byPrefix:   map[string][]*groupAt{},
		byLabel:    map[label][]*groupAt{},
	}
}

func (s *sink) errAt(file string, p pos, format string, args ...any) {
	s.errs = append(s.errs, Error{File: file, Line: p.line, Column: p.col, Msg: oneLine(fmt.Sprintf(format, args...))})
	s.keys = append(s.keys, "")
}

// errOnce reports an error the first time key is seen, and counts the
// hosts it applies to after that.
func (s *sink) errOnce(key, file string, p pos, format string, args ...any) {
	if r, ok := s.once[key]; ok {
		r.more++
		return
	}
	s.errAt(file, p, format, args...)
	s.keys[len(s.keys)-1] = key
	s.once[key] = &repeat{idx: len(s.errs) - 1}
}

// merge adds the errors of o, which come after s's in host order; an error
// both report once counts o's hosts as more hosts of s's.
func (s *sink) merge(o *sink) {
	for i, e := range o.errs {
		key := o.keys[i]
		if key == "" {
			s.errs = append(s.errs, e)
			s.keys = append(s.keys, "")
			continue
		}
		if r, ok := s.once[key]; ok {
			r.more += 1 + o.once[key].more
			continue
		}
		s.errs = append(s.errs, e)
		s.keys = append(s.keys, key)
		s.once[key] = &repeat{idx: len(s.errs) - 1, more: o.once[key].more}
	}
}

func src(file string, p pos) string { return file + ":" + strconv.Itoa(p.line) }

// add registers what one file defines, rejecting names and MACs that an
// earlier file (or entry) already defined.
func (l *linker) add(pf *parsedFile) {
	if d := pf.defaults; d != nil {
		if l.defaults != nil {
			l.errAt(d.file, d.entry, "defaults already defined at %s", src(l.defaults.file, l.defaults.entry))
		} else {
			l.defaults = d
		}
	}
	for i := range pf.versions {
		va := &pf.versions[i]
		v := va.v
		if prev, dup := l.versions[v.Name]; dup {
			l.errAt(va.file, va.name, "version %s already defined at %s", v.Name, prev.v.Source)
			continue
		}
		l.versions[v.Name] = va
		key := v.Channel + "\x00" + fmt.Sprint(v.Number)
		if prev, dup := l.numbers[key]; dup {
			l.errAt(va.file, va.number, "version %s has number %d, like version %s (%s) of the same channel %q: numbers order a channel",
				v.Name, v.Number, prev.v.Name, prev.v.Source, v.Channel)
			continue
		}
		l.numbers[key] = va
	}
	for i := range pf.layouts {
		la := &pf.layouts[i]
		if prev, dup := l.layouts[la.l.Name]; dup {
			l.errAt(la.file, la.name, "layout %s already defined at %s", la.l.Name, prev.l.Source)
			continue
		}
		l.layouts[la.l.Name] = la
	}
	for _, ga := range pf.groups {
		if prev, dup := l.groups[ga.g.Name]; dup {
			l.errAt(ga.lv.file, ga.name, "group %s already defined at %s", ga.g.Name, prev.g.Source)
			continue
		}
		l.groups[ga.g.Name] = ga
	}
	for _, h := range pf.hosts {
		if prev, dup := l.byMAC[h.mac]; dup {
			l.errAt(h.lv.file, h.macPos, "host %s already defined at %s", h.hw, src(prev.lv.file, prev.lv.entry))
			continue
		}
		l.byMAC[h.mac] = h
		if name := strings.ToLower(h.doc.Hostname); name != "" {
			if prev, dup := l.hostnames[name]; dup {
				l.errAt(h.lv.file, h.hostname, "hostname %s already used by host %s (%s)", h.doc.Hostname, prev.hw, src(prev.lv.file, prev.lv.entry))
			} else {
				l.hostnames[name] = h
			}
		}
		l.hosts = append(l.hosts, h)
	}
}

// link checks references and resolves every host.
func (l *linker) link() {
	for _, va := range l.versions {
		v := va.v
		if v.Channel == "" {
			continue
		}
		if cur := l.channels[v.Channel]; cur == nil || v.Number > cur.Number {
			l.channels[v.Channel] = v
		}
	}
	if l.defaults != nil {
		l.checkRefs(l.defaults)
	}
	for _, ga := range sortedValues(l.groups) {
		l.checkRefs(&ga.lv)
		for i, k := range ga.macs {
			if _, ok := l.byMAC[k]; !ok {
				l.errAt(ga.lv.file, ga.macPos[i], "group %s: MAC %s is not a host: add it under hosts:", ga.g.Name, macString(k))
			}
			l.byGroupMAC[k] = append(l.byGroupMAC[k], ga)
		}
		// Each group is indexed by one selector that every host it
		// applies to must match, so a host is compared with a handful
		// of candidates, not with every group.
		m := ga.g.Match
		switch {
		case len(m.MAC) > 0:
		case m.MACPrefix != "":
			l.byPrefix[string(ga.prefix)] = append(l.byPrefix[string(ga.prefix)], ga)
		case len(m.Labels) > 0:
			k := slices.Min(slices.Collect(maps.Keys(m.Labels)))
			l.byLabel[label{k, m.Labels[k]}] = append(l.byLabel[label{k, m.Labels[k]}], ga)
		}
		l.set.groups = append(l.set.groups, ga.g)
	}
	for _, h := range l.hosts {
		if h.doc.Group != "" && l.groups[h.doc.Group] == nil {
			l.errAt(h.lv.file, h.group, "unknown group %s", h.doc.Group)
		}
		l.checkRefs(&h.lv)
	}

	l.resolveAll()
	l.checkAddresses()
	slices.SortFunc(l.set.sorted, func(a, b *Host) int { return bytes.Compare(a.MAC, b.MAC) })
	l.set.defaultInstaller = l.defaultInstaller(&l.sink)

	for _, va := range sortedValues(l.versions) {
		l.set.versions = append(l.set.versions, va.v)
	}
	slices.SortStableFunc(l.set.versions, func(a, b *Version) int {
		return cmp.Or(strings.Compare(a.Channel, b.Channel), cmp.Compare(a.Number, b.Number))
	})
	for _, la := range sortedValues(l.layouts) {
		l.set.layouts = append(l.set.layouts, la.l)
	}
	for _, r := range l.once {
		if r.more > 0 && r.idx < len(l.errs) {
			l.errs[r.idx].Msg += fmt.Sprintf(" (and %d more host%s)", r.more, plural(r.more))
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// resolveAll resolves the hosts on every core: each worker takes a
// contiguous share and its own sink, merged in host order, so errors are
// the same whatever the number of workers.
func (l *linker) resolveAll() {
	hosts := make([]*Host, len(l.hosts))
	workers := max(1, min(runtime.GOMAXPROCS(0), len(l.hosts)/1000))
	sinks := make([]sink, workers)
	var wg sync.WaitGroup
	for w := range workers {
		sinks[w] = newSink()
		lo, hi := w*len(l.hosts)/workers, (w+1)*len(l.hosts)/workers
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				hosts[i] = l.resolve(&sinks[w], l.hosts[i])
			}
		})
	}
	wg.Wait()
	for w := range sinks {
		l.merge(&sinks[w])
	}
	for i, h := range l.hosts {
		l.set.hosts[h.mac] = hosts[i]
	}
	l.set.sorted = hosts
}

// checkAddresses reports static addresses given to two hosts, which would
// fight over them on the wire. (A static address in a group or the defaults
// is caught here too: it is every host's.)
func (l *linker) checkAddresses() {
	owner := map[netip.Addr]int{}
	for i, h := range l.set.sorted {
		if !h.Network.Static() {
			continue
		}
		a := h.Network.Prefix().Addr()
		j, dup := owner[a]
		if !dup {
			owner[a] = i
			continue
		}
		ha, prev := l.hosts[i], l.set.sorted[j]
		l.errOnce("addr\x00"+a.String(), ha.lv.file, ha.macPos, "host %s: address %s is already host %s's (%s)", h.MAC, a, prev.MAC, prev.Source)
	}
}

// checkRefs reports the versions, channels and layouts a level names that
// do not exist. Resolution then treats them as unset.
func (l *linker) checkRefs(lv *level) {
	s := lv.s
	if s.Version != "" && l.versions[s.Version] == nil {
		l.errAt(lv.file, lv.ver, "unknown version %s", s.Version)
	}
	if s.Channel != "" && l.channels[s.Channel] == nil {
		l.errAt(lv.file, lv.ver, "unknown channel %s: no version has channel: %s", s.Channel, s.Channel)
	}
	if s.Layout != "" && l.layouts[s.Layout] == nil {
		l.errAt(lv.file, lv.layout, "unknown layout %s", s.Layout)
	}
}

func sortedValues[T any](m map[string]T) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

func macString(k [6]byte) string { return MACKey(k[:]) }
