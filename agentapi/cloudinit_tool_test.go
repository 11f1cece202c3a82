package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The checks with cloud-init itself (Debian's cloud-init package, 22.4 on
// Debian 12): `cloud-init schema` on user-data, and `cloud-init devel
// net-convert` rendering the network configuration the way Debian
// (ifupdown), Fedora (systemd-networkd) and Ubuntu (netplan) would. Both
// read only the files given and write only under the output directory
// (-d): nothing of this host's network configuration, no /var/lib/cloud or
// /run/cloud-init. Neither needs root (net-convert's networkd renderer
// chowns its file; as another user the tests run it without the chown).

// cloudInit is the cloud-init command, or skips the test.
func cloudInit(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Skip("cloud-init is not installed (apt-get install cloud-init; e2e/test.sh installs it): the config drive is not checked with cloud-init itself")
	}
	return p
}

// runCloudInit runs cloud-init with args in dir and returns its output.
func runCloudInit(t *testing.T, ci, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ci, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// writeDrive writes the drive's files under a new directory.
func writeDrive(t *testing.T, files []File) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.Content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// renderers are net-convert's distributions and output kinds: one per
// network renderer cloud-init has on Linux besides sysconfig and
// NetworkManager.
var renderers = []struct{ distro, kind string }{
	{"debian", "eni"},
	{"fedora", "networkd"},
	{"ubuntu", "netplan"},
}

// checkWithCloudInit checks the drive in's files with cloud-init: the
// user-data is valid cloud-config, and every renderer configures the
// interface with in's MAC as in.Network says.
func checkWithCloudInit(t *testing.T, in NoCloud, files []File) {
	t.Helper()
	ci := cloudInit(t)
	dir := writeDrive(t, files)
	userData, network, kind := "user-data", "network-config", "yaml"
	if in.Format == DriveOpenStack {
		userData, network, kind = openStackDir+"user_data", openStackDir+"network_data.json", "network_data.json"
	}
	var wg sync.WaitGroup
	wg.Go(func() { checkDataSource(t, ci, dir, in, files) })
	wg.Go(func() {
		out, err := runCloudInit(t, ci, dir, "schema", "-c", userData)
		if err != nil || !strings.HasPrefix(out, "Valid cloud-config") {
			annotated, _ := runCloudInit(t, ci, dir, "schema", "-c", userData, "--annotate")
			t.Errorf("cloud-init schema -c %s: %v\n%s\n%s", userData, err, out, annotated)
		}
	})
	if in.Network != nil {
		for _, r := range renderers {
			wg.Go(func() {
				outDir := filepath.Join(dir, "out-"+r.kind)
				args := []string{"-p", network, "-k", kind, "-d", outDir, "-D", r.distro, "-O", r.kind}
				var out string
				var err error
				if r.kind == "networkd" && os.Geteuid() != 0 {
					out, err = runNetConvertUnprivileged(t, ci, dir, args)
				} else {
					out, err = runCloudInit(t, ci, dir, append([]string{"devel", "net-convert"}, args...)...)
				}
				if err != nil {
					t.Errorf("cloud-init devel net-convert -O %s: %v\n%s", r.kind, err, out)
					return
				}
				n := *in.Network
				if r.kind == "netplan" && in.Format == DriveOpenStack && n.Address == "" {
					// cloud-init 22.4's netplan renderer drops the name
					// servers and search domains of a DHCP interface read
					// from network_data.json (netplan.py
					// _extract_addresses reads them for static subnets
					// only, and adds the global ones to interfaces with
					// addresses only). DHCP brings its own.
					n.DNS, n.Search = nil, nil
				}
				checkRendered(t, r.kind, n, readTree(t, outDir))
			})
		}
	}
	wg.Wait()
}

// netConvertScript is `cloud-init devel net-convert` without chown: the
// networkd renderer gives its files to the systemd-network user, which
// only root may do. The rest is net-convert's own code.
const netConvertScript = `
import sys
from cloudinit import util
from cloudinit.cmd.devel import net_convert
util.chownbyname = lambda *args, **kwargs: None
net_convert.handle_args("net-convert", net_convert.get_parser().parse_args(sys.argv[1:]))
`

// runNetConvertUnprivileged runs net-convert with args as a user who may
// not chown.
func runNetConvertUnprivileged(t *testing.T, ci, dir string, args []string) (string, error) {
	t.Helper()
	python, err := interpreter(ci)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"-c", netConvertScript}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// interpreter is the Python of the cloud-init script, which has its
// modules (it need not be the first python3 on PATH).
func interpreter(ci string) (string, error) {
	script, err := os.ReadFile(ci)
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(string(script), "\n")
	python, ok := strings.CutPrefix(first, "#!")
	if !ok {
		return "", fmt.Errorf("%s: no interpreter line", ci)
	}
	return strings.TrimSpace(python), nil
}

// dataSourceScript reads a drive with cloud-init's own data source code,
// NoCloud's seed reader or ConfigDrive's, and prints what they found.
const dataSourceScript = `
import json, sys
from cloudinit import util
from cloudinit.sources import DataSourceConfigDrive
d, fmt = sys.argv[1], sys.argv[2]
if fmt == "openstack":
    r = DataSourceConfigDrive.read_config_drive(d)
    md, ud, nd = r["metadata"], r["userdata"], r.get("networkdata")
    keys = list(md.get("public_keys", {}).values())
else:
    md, ud, _ = util.read_seeded(base=d + "/")
    nd, keys = None, []
json.dump({"instance_id": md.get("instance-id"), "hostname": md.get("local-hostname"), "keys": keys,
    "user_data": ud.decode(), "network_data": nd is not None}, sys.stdout)
`

// checkDataSource reads the drive in dir as cloud-init's data source would
// and checks the instance id, host name, keys and user-data it finds.
func checkDataSource(t *testing.T, ci, dir string, in NoCloud, files []File) {
	t.Helper()
	python, err := interpreter(ci)
	if err != nil {
		t.Error(err)
		return
	}
	format := in.Format
	if format == "" {
		format = DriveNoCloud
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", dataSourceScript, dir, format)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("cloud-init's %s data source: %v\n%s", format, err, stderr.String())
		return
	}
	var got struct {
		InstanceID  string   `json:"instance_id"`
		Hostname    *string  `json:"hostname"`
		Keys        []string `json:"keys"`
		UserData    string   `json:"user_data"`
		NetworkData bool     `json:"network_data"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Errorf("cloud-init's %s data source: %v\n%s", format, err, out)
		return
	}
	ud := "user-data"
	wantKeys := []string(nil)
	if format == DriveOpenStack {
		ud, wantKeys = openStackDir+"user_data", in.SSHKeys
	}
	hostname := ""
	if got.Hostname != nil {
		hostname = *got.Hostname
	}
	var wantUD string
	for _, f := range files {
		if f.Name == ud {
			wantUD = f.Content
		}
	}
	if got.InstanceID != in.InstanceID || hostname != in.Hostname || strings.Join(got.Keys, "\n") != strings.Join(wantKeys, "\n") ||
		got.UserData != wantUD || format == DriveOpenStack && got.NetworkData != (in.Network != nil) {
		t.Errorf("cloud-init's %s data source read %+v from the drive of %+v", format, got, in)
	}
}

// readTree returns the files under dir by slash path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Error(err)
	}
	return files
}

// checkRendered checks that what a renderer wrote configures the
// interface with n's MAC, named BootInterface, as n says.
func checkRendered(t *testing.T, kind string, n Network, files map[string]string) {
	t.Helper()
	mac := strings.ToLower(n.MAC)
	var want []string
	var file string
	switch kind {
	case "eni":
		file = "etc/network/interfaces.d/50-cloud-init"
		rule := `ATTR{address}=="` + mac + `", NAME="` + BootInterface + `"`
		if !strings.Contains(files["etc/udev/rules.d/70-persistent-net.rules"], rule) {
			t.Errorf("eni: no udev rule %s among %v", rule, files)
		}
		want = append(want, "auto "+BootInterface)
		switch {
		case n.Address == "":
			want = append(want, "iface "+BootInterface+" inet dhcp")
		case strings.Contains(n.Address, ":"):
			want = append(want, "iface "+BootInterface+" inet6 static", "address "+n.Address)
		default:
			want = append(want, "iface "+BootInterface+" inet static", "address "+n.Address)
		}
		if n.Gateway != "" {
			want = append(want, "gateway "+n.Gateway)
		}
		if len(n.DNS) > 0 {
			want = append(want, "dns-nameservers "+strings.Join(n.DNS, " "))
		}
		if len(n.Search) > 0 {
			want = append(want, "dns-search "+strings.Join(n.Search, " "))
		}
		// A route as `post-up route add` needs net-tools, which Debian
		// does not install: it would fail unseen (|| true).
		if strings.Contains(files[file], "route add") {
			t.Errorf("eni: routes need net-tools:\n%s", files[file])
		}
	case "networkd":
		file = "etc/systemd/network/10-cloud-init-" + BootInterface + ".network"
		want = append(want, "MACAddress="+mac, "Name="+BootInterface)
		if n.Address == "" {
			want = append(want, "DHCP=ipv4")
		} else {
			want = append(want, "Address="+n.Address)
		}
		if n.Gateway != "" {
			want = append(want, "Gateway="+n.Gateway)
		}
		if len(n.DNS) > 0 {
			want = append(want, "DNS="+strings.Join(n.DNS, " "))
		}
		if len(n.Search) > 0 {
			want = append(want, "Domains="+strings.Join(n.Search, " "))
		}
	case "netplan":
		file = "etc/netplan/50-cloud-init.yaml"
		var np struct {
			Network struct {
				Ethernets map[string]struct {
					Match       map[string]string `yaml:"match"`
					SetName     string            `yaml:"set-name"`
					DHCP4       bool              `yaml:"dhcp4"`
					Addresses   []string          `yaml:"addresses"`
					Gateway4    string            `yaml:"gateway4"`
					Gateway6    string            `yaml:"gateway6"`
					Nameservers struct {
						Addresses []string `yaml:"addresses"`
						Search    []string `yaml:"search"`
					} `yaml:"nameservers"`
				} `yaml:"ethernets"`
			} `yaml:"network"`
		}
		if err := yaml.Unmarshal([]byte(files[file]), &np); err != nil {
			t.Errorf("netplan: %v\n%s", err, files[file])
			return
		}
		e, ok := np.Network.Ethernets[BootInterface]
		switch {
		case !ok || len(np.Network.Ethernets) != 1 || e.Match["macaddress"] != mac || e.SetName != BootInterface,
			e.DHCP4 != (n.Address == ""),
			n.Address != "" && (len(e.Addresses) != 1 || e.Addresses[0] != n.Address || e.Gateway4+e.Gateway6 != n.Gateway),
			strings.Join(e.Nameservers.Addresses, " ") != strings.Join(n.DNS, " "),
			strings.Join(e.Nameservers.Search, " ") != strings.Join(n.Search, " "):
			t.Errorf("netplan: %+v does not configure %+v:\n%s", np.Network.Ethernets, n, files[file])
		}
		return
	}
	got, ok := files[file]
	if !ok {
		t.Errorf("%s: no %s among %v", kind, file, files)
		return
	}
	lines := map[string]bool{}
	for l := range strings.Lines(got) {
		lines[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("%s: %s lacks the line %q:\n%s", kind, file, w, got)
		}
	}
}
