package profiles

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// resolved is what TestResolve compares of a host.
type resolved struct {
	Version, Layout string
	Groups          []string
	Cmdline         string
	From            map[string]string
}

func summarize(h *Host, fields []string) resolved {
	r := resolved{Groups: h.Groups, From: map[string]string{}}
	if h.Version != nil {
		r.Version = h.Version.Name
	}
	if h.Layout != nil {
		r.Layout = h.Layout.Name
	}
	if h.Installer != nil {
		r.Cmdline = h.Installer.Cmdline
	}
	for _, f := range fields {
		r.From[f] = h.From(f)
	}
	return r
}

func TestResolve(t *testing.T) {
	const mac = "52:54:00:aa:00:01"
	host := "hosts:\n  - mac: " + mac + "\n    hostname: n1\n    labels: {rack: r1, role: db}\n"
	for _, tc := range []struct {
		name   string
		yaml   string // a.yaml, loaded with testCatalog
		fields []string
		want   resolved
	}{
		{"defaults", "defaults: {version: v1, layout: l1}\n" + host, []string{"hostname", "version", "layout", "installer", "network"},
			resolved{Version: "v1", Layout: "l1", Cmdline: "console=ttyS0",
				From: map[string]string{"hostname": "host", "version": "defaults", "layout": "defaults", "installer": "version v1", "network": ""}}},
		{"group overrides defaults", "defaults: {version: v1, layout: l1}\n" +
			"groups:\n  - {name: g, match: {mac_prefix: \"52:54:00\"}, version: v2}\n" + host, []string{"version", "layout"},
			resolved{Version: "v2", Layout: "l1", Groups: []string{"g"}, From: map[string]string{"version": "group g", "layout": "defaults"}}},
		{"longer prefix wins", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: short, match: {mac_prefix: \"52:54\"}, version: v1}\n" +
			"  - {name: long, match: {mac_prefix: \"52:54:00:aa\"}, version: v2}\n" + host, []string{"version"},
			resolved{Version: "v2", Layout: "l1", Groups: []string{"long", "short"}, From: map[string]string{"version": "group long"}}},
		{"mac list beats prefix", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: byprefix, match: {mac_prefix: \"52:54:00:aa:00\"}, version: v1}\n" +
			"  - {name: bymac, match: {mac: [\"" + mac + "\"]}, version: v2}\n" + host, []string{"version"},
			resolved{Version: "v2", Layout: "l1", Groups: []string{"bymac", "byprefix"}, From: map[string]string{"version": "group bymac"}}},
		{"named group beats mac list", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: bymac, match: {mac: [\"" + mac + "\"]}, version: v1}\n" +
			"  - {name: named, version: v2}\n" + host + "    group: named\n", []string{"version"},
			resolved{Version: "v2", Layout: "l1", Groups: []string{"named", "bymac"}, From: map[string]string{"version": "group named"}}},
		{"host beats named group", "defaults: {layout: l1}\ngroups:\n  - {name: named, version: v2}\n" +
			host + "    group: named\n    version: v1\n", []string{"version"},
			resolved{Version: "v1", Layout: "l1", Groups: []string{"named"}, Cmdline: "console=ttyS0", From: map[string]string{"version": "host"}}},
		{"prefix beats labels", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: bylabel, match: {labels: {rack: r1, role: db}}, version: v2}\n" +
			"  - {name: byprefix, match: {mac_prefix: \"52\"}, version: v1}\n" + host, []string{"version"},
			resolved{Version: "v1", Layout: "l1", Groups: []string{"byprefix", "bylabel"}, Cmdline: "console=ttyS0", From: map[string]string{"version": "group byprefix"}}},
		{"more labels win", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: one, match: {labels: {rack: r1}}, version: v1}\n" +
			"  - {name: two, match: {labels: {rack: r1, role: db}}, version: v2}\n" + host, []string{"version"},
			resolved{Version: "v2", Layout: "l1", Groups: []string{"two", "one"}, From: map[string]string{"version": "group two"}}},
		{"prefix and label beat prefix", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: both, match: {mac_prefix: \"52:54\", labels: {role: db}}, version: v2}\n" +
			"  - {name: prefix, match: {mac_prefix: \"52:54\"}, version: v1}\n" + host, []string{"version"},
			resolved{Version: "v2", Layout: "l1", Groups: []string{"both", "prefix"}, From: map[string]string{"version": "group both"}}},
		{"every selector must match", "defaults: {version: v1, layout: l1}\ngroups:\n" +
			"  - {name: web, match: {mac_prefix: \"52:54\", labels: {role: web}}, version: v2}\n" + host, []string{"version"},
			resolved{Version: "v1", Layout: "l1", Cmdline: "console=ttyS0", From: map[string]string{"version": "defaults"}}},
		{"group without selectors applies only by name", "defaults: {version: v1, layout: l1}\ngroups:\n  - {name: lonely, version: v2}\n" + host, []string{"version"},
			resolved{Version: "v1", Layout: "l1", Cmdline: "console=ttyS0", From: map[string]string{"version": "defaults"}}},
		{"equal groups that agree", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: a, match: {labels: {rack: r1}}, version: v2}\n" +
			"  - {name: b, match: {labels: {role: db}}, version: v2}\n" + host, []string{"version"},
			resolved{Version: "v2", Layout: "l1", Groups: []string{"b", "a"}, From: map[string]string{"version": "group b"}}},
		{"a tie the host settles", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: a, match: {labels: {rack: r1}}, version: v1}\n" +
			"  - {name: b, match: {labels: {role: db}}, version: v2}\n" + host + "    version: v2\n", []string{"version"},
			resolved{Version: "v2", Layout: "l1", Groups: []string{"b", "a"}, From: map[string]string{"version": "host"}}},
		{"channel follows its highest number", "defaults: {channel: stable, layout: l1}\n" +
			"versions:\n  - {name: v0, number: 0, channel: stable, image: {url: v0.img, sha256: \"" + testSHA + "\"}}\n" + host, []string{"version", "installer"},
			resolved{Version: "v1", Layout: "l1", Cmdline: "console=ttyS0", From: map[string]string{"version": "defaults", "installer": "version v1"}}},
		{"group installer overrides the version's", "defaults: {version: v1, layout: l1, installer: {kernel: d/vmlinuz}}\ngroups:\n" +
			"  - {name: g, match: {mac_prefix: \"52\"}, installer: {kernel: g/vmlinuz, cmdline: g=1}}\n" + host, []string{"installer"},
			resolved{Version: "v1", Layout: "l1", Groups: []string{"g"}, Cmdline: "g=1", From: map[string]string{"installer": "group g"}}},
		{"defaults installer does not override the version's", "defaults: {version: v1, layout: l1, installer: {kernel: d/vmlinuz, cmdline: d=1}}\n" + host, []string{"installer"},
			resolved{Version: "v1", Layout: "l1", Cmdline: "console=ttyS0", From: map[string]string{"installer": "version v1"}}},
		{"kernel_args add up", "defaults: {version: v1, layout: l1, kernel_args: a=1}\ngroups:\n" +
			"  - {name: g, match: {mac_prefix: \"52\"}, kernel_args: b=2}\n" + host + "    kernel_args: c=3\n", []string{"kernel_args", "installer"},
			resolved{Version: "v1", Layout: "l1", Groups: []string{"g"}, Cmdline: "console=ttyS0 a=1 b=2 c=3",
				From: map[string]string{"kernel_args": "defaults, group g, host", "installer": "version v1"}}},
		{"network merges field by field", "defaults: {version: v1, layout: l1, network: {dns: [10.0.0.53]}}\ngroups:\n" +
			"  - {name: rack, match: {mac_prefix: \"52\"}, network: {gateway: 10.1.0.1}}\n" + host + "    network: {address: 10.1.0.7/24}\n",
			[]string{"network", "network.gateway", "network.dns"},
			resolved{Version: "v1", Layout: "l1", Groups: []string{"rack"}, Cmdline: "console=ttyS0",
				From: map[string]string{"network": "host", "network.gateway": "group rack", "network.dns": "defaults"}}},
		{"dhcp host ignores the rack gateway", "defaults: {version: v1, layout: l1}\ngroups:\n" +
			"  - {name: rack, match: {mac_prefix: \"52\"}, network: {address: 10.1.0.7/24, gateway: 10.1.0.1}}\n" + host + "    network: {dhcp: true}\n",
			[]string{"network", "network.gateway"},
			resolved{Version: "v1", Layout: "l1", Groups: []string{"rack"}, Cmdline: "console=ttyS0",
				From: map[string]string{"network": "host", "network.gateway": ""}}},
		{"users merge by name", "defaults: {version: v1, layout: l1, users: [{name: ops, sudo: true}, {name: bob}]}\n" +
			host + "    users: [{name: ops}, {name: alice}]\n", []string{"users[ops]", "users[bob]", "users[alice]"},
			resolved{Version: "v1", Layout: "l1", Cmdline: "console=ttyS0",
				From: map[string]string{"users[ops]": "host", "users[bob]": "defaults", "users[alice]": "host"}}},
		{"ssh keys add up", "defaults: {version: v1, layout: l1, ssh_keys: [\"" + testKey + "\"]}\n" +
			host + "    ssh_keys: [\"" + testKey + "\", \"" + testKey2 + "\"]\n", []string{"ssh_keys"},
			resolved{Version: "v1", Layout: "l1", Cmdline: "console=ttyS0", From: map[string]string{"ssh_keys": "defaults, host"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := mustLoad(t, map[string]string{"catalog.yaml": testCatalog, "a.yaml": tc.yaml})
			h, ok := set.Lookup(mustMAC(t, mac))
			if !ok {
				t.Fatal("host not found")
			}
			if diff := cmp.Diff(tc.want, summarize(h, tc.fields)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveMerges(t *testing.T) {
	set := mustLoad(t, map[string]string{"catalog.yaml": testCatalog, "a.yaml": `defaults:
  version: v1
  layout: l1
  ssh_keys: ["` + testKey + `"]
  users: [{name: ops, sudo: true}, {name: bob}]
  files: [{path: /etc/motd, content: defaults}, {path: /etc/issue, content: defaults}]
hosts:
  - mac: 52:54:00:aa:00:01
    hostname: n1
    ssh_keys: ["` + testKey + `", "` + testKey2 + `"]
    users: [{name: ops}, {name: alice}]
    files: [{path: /etc/motd, content: host}]
`})
	h, _ := set.Lookup(mustMAC(t, "52:54:00:aa:00:01"))
	want := &Host{
		SSHKeys: []string{testKey, testKey2},
		Users:   []User{{Name: "ops"}, {Name: "bob"}, {Name: "alice"}},
		Files:   []File{{Path: "/etc/motd", Content: "host"}, {Path: "/etc/issue", Content: "defaults"}},
	}
	got := &Host{SSHKeys: h.SSHKeys, Users: h.Users, Files: h.Files}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(Host{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestResolveCloudConfig: cloud_config merges by top-level key, the most
// specific level's value whole; null removes a key; values stay as written.
func TestResolveCloudConfig(t *testing.T) {
	set := mustLoad(t, map[string]string{"catalog.yaml": testCatalog, "a.yaml": `defaults:
  version: v1
  layout: l1
  cloud_config:
    package_update: yes
    packages: [htop]
    ntp: &ntp {enabled: true, servers: [10.0.0.1]}
    timezone: Etc/UTC
groups:
  - name: db
    match: {labels: {role: db}}
    cloud_config:
      packages: [postgresql]
      chrony: *ntp
hosts:
  - mac: 52:54:00:aa:00:01
    hostname: n1
    labels: {role: db}
    cloud_config: {timezone: null, runcmd: [[systemctl, restart, postgresql]]}
  - mac: 52:54:00:aa:00:02
    hostname: n2
  - mac: 52:54:00:aa:00:03
    hostname: n3
`})
	flat := func(h *Host) map[string]string {
		out := map[string]string{}
		for k, v := range h.CloudConfig {
			out[k] = flowLine(v)
		}
		return out
	}
	h1, _ := set.Lookup(mustMAC(t, "52:54:00:aa:00:01"))
	want := map[string]string{
		"package_update": "yes",
		"packages":       "[postgresql]",
		"ntp":            "{enabled: true, servers: [10.0.0.1]}",
		"chrony":         "{enabled: true, servers: [10.0.0.1]}",
		"runcmd":         "[[systemctl, restart, postgresql]]",
	}
	if diff := cmp.Diff(want, flat(h1)); diff != "" {
		t.Errorf("n1 cloud_config (-want +got):\n%s", diff)
	}
	from := map[string]string{}
	for _, s := range h1.Settings() {
		if strings.HasPrefix(s.Field, "cloud_config[") {
			from[s.Field] = s.From + ": " + s.Value
		}
	}
	wantFrom := map[string]string{
		"cloud_config[chrony]":         "group db: {enabled: true, servers: [10.0.0.1]}",
		"cloud_config[ntp]":            "defaults: {enabled: true, servers: [10.0.0.1]}",
		"cloud_config[package_update]": "defaults: yes",
		"cloud_config[packages]":       "group db: [postgresql]",
		"cloud_config[runcmd]":         "host: [[systemctl, restart, postgresql]]",
		"cloud_config[timezone]":       "host: (removed)",
	}
	if diff := cmp.Diff(wantFrom, from); diff != "" {
		t.Errorf("n1 settings (-want +got):\n%s", diff)
	}
	// Hosts only the defaults set it for share their map.
	h2, _ := set.Lookup(mustMAC(t, "52:54:00:aa:00:02"))
	h3, _ := set.Lookup(mustMAC(t, "52:54:00:aa:00:03"))
	if len(h2.CloudConfig) != 4 || fmt.Sprintf("%p", h2.CloudConfig) != fmt.Sprintf("%p", h3.CloudConfig) {
		t.Errorf("n2 cloud_config %v is not shared with n3", flat(h2))
	}
	// The alias is expanded: the value stands alone.
	if n := h1.CloudConfig["chrony"]; n.Kind != yaml.MappingNode || n.Anchor != "" {
		t.Errorf("chrony = %+v", n)
	}
}

func TestResolveConflicts(t *testing.T) {
	host := func(n int) string {
		return "  - {mac: \"52:54:00:aa:00:0" + string(rune('0'+n)) + "\", hostname: n" + string(rune('0'+n)) + ", labels: {rack: r1, role: db}}\n"
	}
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"equal labels disagree on version", "defaults: {layout: l1}\ngroups:\n" +
			"  - {name: a, match: {labels: {rack: r1}}, version: v1}\n" +
			"  - {name: b, match: {labels: {role: db}}, version: v2}\nhosts:\n" + host(1) + host(2),
			[]string{`a.yaml:6:11: host 52:54:00:aa:00:01: group a (a.yaml:3) and group b (a.yaml:4) apply equally specifically (by 1 label) and disagree on version: make one more specific, or set version in the host (and 1 more host)`}},
		{"equal prefixes disagree on a user", "defaults: {version: v1, layout: l1}\ngroups:\n" +
			"  - {name: a, match: {mac_prefix: \"52:54\"}, users: [{name: ops, sudo: true}]}\n" +
			"  - {name: b, match: {mac_prefix: \"52-54\"}, users: [{name: ops}]}\nhosts:\n" + host(1),
			[]string{`a.yaml:6:11: host 52:54:00:aa:00:01: group a (a.yaml:3) and group b (a.yaml:4) apply equally specifically (by a 2-octet mac_prefix) and disagree on users[ops]: make one more specific, or set users[ops] in the host`}},
		{"both list the MAC", "defaults: {version: v1}\ngroups:\n" +
			"  - {name: a, match: {mac: [\"52:54:00:aa:00:01\"]}, layout: l1}\n" +
			"  - {name: b, match: {mac: [\"5254.00aa.0001\"]}, layout: l2}\nhosts:\n" + host(1),
			[]string{`a.yaml:6:11: host 52:54:00:aa:00:01: group a (a.yaml:3) and group b (a.yaml:4) apply equally specifically (by its MAC) and disagree on layout: make one more specific, or set layout in the host`}},
		{"disagree on the network mode", "defaults: {version: v1, layout: l1}\ngroups:\n" +
			"  - {name: a, match: {labels: {rack: r1}}, network: {dhcp: true}}\n" +
			"  - {name: b, match: {labels: {role: db}}, network: {address: 10.0.0.5/24}}\nhosts:\n" + host(1),
			[]string{`a.yaml:6:11: host 52:54:00:aa:00:01: group a (a.yaml:3) and group b (a.yaml:4) apply equally specifically (by 1 label) and disagree on network: make one more specific, or set network in the host`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErrors(t, map[string]string{"catalog.yaml": testCatalog, "a.yaml": tc.yaml})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestResolveIsDeterministic loads the same fleet split over files in
// different orders of definition and expects identical profiles.
func TestResolveIsDeterministic(t *testing.T) {
	groups := []string{
		"  - {name: a, match: {labels: {rack: r1}}, kernel_args: a=1, ssh_keys: [\"" + testKey + "\"]}\n",
		"  - {name: b, match: {labels: {role: db}}, kernel_args: b=1, ssh_keys: [\"" + testKey2 + "\"]}\n",
	}
	hosts := "hosts:\n  - {mac: 52:54:00:aa:00:01, hostname: n1, labels: {rack: r1, role: db}}\n"
	var first []Setting
	for i, order := range [][]int{{0, 1}, {1, 0}} {
		set := mustLoad(t, map[string]string{"catalog.yaml": testCatalog, "a.yaml": "defaults: {version: v1, layout: l1}\ngroups:\n" + groups[order[0]] + groups[order[1]] + hosts})
		h, _ := set.Lookup(mustMAC(t, "52:54:00:aa:00:01"))
		if i == 0 {
			first = h.Settings()
			continue
		}
		if diff := cmp.Diff(first, h.Settings()); diff != "" {
			t.Errorf("order changes the profile (-first +now):\n%s", diff)
		}
	}
}
