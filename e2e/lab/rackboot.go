package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RackbootConfig says how to run `rackboot serve` in the lab. Binary,
// Profiles, Data, Artifacts and Log are required; zero values of the
// others mean the defaults named on each field.
type RackbootConfig struct {
	Binary    string // the rackboot command to run
	Profiles  string // --profiles
	Data      string // --data: registry, admin.token; kept across restarts
	Artifacts string // --artifacts
	// Log receives rackboot's JSON log. It is appended to, so the log of
	// a restarted server continues the one of the server it replaces.
	Log       string
	HTTPPort  int      // --http-port; 8080 when zero
	HTTPSPort int      // --https-port, the admin and agent APIs; 8443 when zero
	Args      []string // more flags, such as "--max-attempts", "2"
	// BMCCredentials, when set, is --bmc-credentials: the directory of
	// the BMC password files the profiles' bmc.credential names.
	BMCCredentials string
	// Host is where rackboot runs and listens: a host of the lab
	// (Net.AddHost), for a second appliance on the same segment; the
	// server namespace on the bridge (Net.Server) when zero.
	Host Host
}

// Rackboot is `rackboot serve` running in the server namespace on the
// lab's bridge, or in another host's namespace on its link
// (RackbootConfig.Host): proxy-DHCP on 67 and 4011, TFTP on 69, HTTP on HTTPPort,
// the APIs over HTTPS on HTTPSPort, and a null IPv6 router advertisement, which spares iPXE its ~16 s wait
// for IPv6 autoconfiguration on every DHCP (docs/DESIGN.md, fact 6). It logs JSON at debug
// level, so the log also shows the packets it saw and did not answer.
type Rackboot struct {
	cfg RackbootConfig
	net *Net

	mu   sync.Mutex
	proc *Process
}

// servingTimeout bounds a start: rackboot opens every socket before it
// logs that it serves, in well under a second; the first artifact check
// reads every image once (about a second per GiB, longer on a loaded
// host).
const servingTimeout = 60 * time.Second

// StartRackboot starts rackboot and waits until it serves.
func (n *Net) StartRackboot(ctx context.Context, cfg RackbootConfig) (*Rackboot, error) {
	if cfg.Binary == "" || cfg.Profiles == "" || cfg.Data == "" || cfg.Artifacts == "" || cfg.Log == "" {
		return nil, errors.New("lab: RackbootConfig needs Binary, Profiles, Data, Artifacts and Log")
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 8080
	}
	if cfg.HTTPSPort == 0 {
		cfg.HTTPSPort = 8443
	}
	if cfg.Host == (Host{}) {
		cfg.Host = n.Server()
	}
	r := &Rackboot{cfg: cfg, net: n}
	if err := r.Restart(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// URL is where the lab's namespaces reach rackboot's HTTP server.
func (r *Rackboot) URL() string {
	return "http://" + r.cfg.Host.IP + ":" + strconv.Itoa(r.cfg.HTTPPort)
}

// APIURL is where they reach its admin and agent APIs, over HTTPS.
func (r *Rackboot) APIURL() string {
	return "https://" + r.cfg.Host.IP + ":" + strconv.Itoa(r.cfg.HTTPSPort)
}

// Config returns the configuration rackboot runs with, defaults applied.
func (r *Rackboot) Config() RackbootConfig { return r.cfg }

// Process returns the running (or last) rackboot process.
func (r *Rackboot) Process() *Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// Kill ends rackboot with SIGKILL, as a power cut or the OOM killer
// would: no shutdown, no flush, sockets closed by the kernel.
func (r *Rackboot) Kill() { r.Process().Kill() }

// Stop ends rackboot with SIGTERM, as systemd would.
func (r *Rackboot) Stop() { r.Process().Stop() }

// Restart starts rackboot with the same configuration, and so the same
// data directory, once the previous process has ended (a running one is
// stopped first), and waits until it serves.
func (r *Rackboot) Restart(ctx context.Context) error {
	if p := r.Process(); p != nil {
		p.Stop()
	}
	logf, err := os.OpenFile(r.cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lab: rackboot log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	fi, err := logf.Stat()
	if err != nil {
		return fmt.Errorf("lab: rackboot log: %w", err)
	}
	args := []string{"serve",
		"--profiles", r.cfg.Profiles,
		"--data", r.cfg.Data,
		"--artifacts", r.cfg.Artifacts,
		"--ipxe-dir", IPXEDir,
		"--interface", r.cfg.Host.Link,
		"--http-port", strconv.Itoa(r.cfg.HTTPPort), "--https-port", strconv.Itoa(r.cfg.HTTPSPort),
		"--tftp-port", "69", "--dhcp-port", "67",
		"--ipv6-ra",
		"--log-format", "json",
		"--log-level", "debug"}
	if r.cfg.BMCCredentials != "" {
		args = append(args, "--bmc-credentials", r.cfg.BMCCredentials)
	}
	cmd := r.net.Command(r.cfg.Host.NS, r.cfg.Binary, append(args, r.cfg.Args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := r.net.Start(cmd)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
	return r.waitServing(ctx, p, fi.Size())
}

// waitServing waits for the "rackboot serving" and "catalog checked"
// lines that p logged after offset: every socket is open and the first
// check of the catalog's artifacts is done (/readyz would answer 200), so
// no machine is held only because its image was not checked yet.
func (r *Rackboot) waitServing(ctx context.Context, p *Process, offset int64) error {
	deadline := time.After(servingTimeout)
	for {
		entries, err := readLogFrom(r.cfg.Log, offset)
		if err != nil {
			return err
		}
		if Ready(entries) {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("lab: rackboot serve exited (%v):\n%s", p.Err(), tailFile(r.cfg.Log, 20))
		case <-deadline:
			p.Stop()
			return fmt.Errorf("lab: rackboot serve not serving after %v:\n%s", servingTimeout, tailFile(r.cfg.Log, 20))
		case <-ctx.Done():
			p.Stop()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ready reports whether a rackboot log holds the lines of a daemon ready
// to install: "rackboot serving" and "catalog checked".
func Ready(entries []LogEntry) bool {
	var serving, checked bool
	for _, e := range entries {
		serving = serving || e.Msg == "rackboot serving"
		checked = checked || e.Msg == "catalog checked"
	}
	return serving && checked
}

// AdminToken returns the admin API's bearer token, which rackboot created
// in its data directory on its first start.
func (r *Rackboot) AdminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(r.cfg.Data, "admin.token"))
	if err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Command returns an admin command of the same rackboot binary (hosts,
// history, reinstall, watch…) that runs in namespace ns (Cli, usually)
// and talks to this server over HTTPS: --server and --data are added
// after args, and the command trusts DATA/tls/ca.pem as on the appliance.
func (r *Rackboot) Command(ns string, args ...string) *exec.Cmd {
	args = append(append([]string(nil), args...), "--server", r.APIURL(), "--data", r.cfg.Data)
	return r.net.Command(ns, r.cfg.Binary, args...)
}

// readLogFrom reads the JSON log entries written after offset.
func readLogFrom(name string, offset int64) ([]LogEntry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return ParseLog(f)
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(name string, n int) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
