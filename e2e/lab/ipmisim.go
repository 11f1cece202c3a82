package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// IPMISim is OpenIPMI's BMC simulator (ipmi_sim, Debian package openipmi)
// serving one BMCVM over IPMI LAN (1.5 and 2.0/lanplus, cipher suite 3)
// on 127.0.0.1 in the server namespace, where rackboot serve runs (so the
// daemon reaches it as a real BMC's LAN address). It delegates every
// chassis action to ChassisMain (chassis_control): power status, on, off,
// cycle, reset and the boot device, which is how "boot from the network
// once" reaches the machine (docs/bmc-groundwork.md §0, §1.2).
type IPMISim struct {
	Addr string // "127.0.0.1:PORT", in the server namespace
	Dir  string // lan.conf, sim.emu, state/, ipmi_sim.log

	vm   *BMCVM
	proc *Process
}

// ipmiSimReadyTimeout bounds ipmi_sim's start (under a second measured).
const ipmiSimReadyTimeout = 15 * time.Second

// StartIPMISim starts ipmi_sim for vm with one administrator account
// (user, password). The program ipmi_sim runs for chassis actions is this
// process's own executable with ChassisArg and vm's directory: its
// TestMain must dispatch to ChassisMain. QEMU's in-band IPMI devices
// (ipmi-bmc-extern on a KCS interface) connect to ipmi_sim from the next
// power-on on. Close stops ipmi_sim and closes vm.
func StartIPMISim(ctx context.Context, n *Net, vm *BMCVM, user, password string) (*IPMISim, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("lab: ipmi_sim: %w", err)
	}
	dir := filepath.Join(vm.Dir(), "ipmi")
	state := filepath.Join(dir, "state")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	lanPort, err := freePort(n, "udp")
	if err != nil {
		return nil, err
	}
	vmPort, err := freePort(n, "tcp")
	if err != nil {
		return nil, err
	}
	// Users in lan.conf count only while the state directory has no
	// persisted user file: a fresh one per start. The GUID is needed for
	// RMCP+ (lanplus).
	lanConf := fmt.Sprintf(`name "rb-%s"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s %s %s"
  serial 15 127.0.0.1 %d codec VM
  user 2 true "%s" "%s" admin 10 md5
`, vm.Name(), lanPort, self, ChassisArg, vm.Dir(), vmPort, user, password)
	simEmu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"
	conf, emu := filepath.Join(dir, "lan.conf"), filepath.Join(dir, "sim.emu")
	if err := os.WriteFile(conf, []byte(lanConf), 0o600); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := os.WriteFile(emu, []byte(simEmu), 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	vm.mu.Lock()
	vm.m.IPMIPort = vmPort
	err = vm.m.save()
	vm.mu.Unlock()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "ipmi_sim.log"))
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer logf.Close()
	cmd := n.Command(n.Srv, "ipmi_sim", "-c", conf, "-f", emu, "-s", state, "-n")
	cmd.Stdout, cmd.Stderr = logf, logf
	proc, err := n.Start(cmd)
	if err != nil {
		return nil, err
	}
	s := &IPMISim{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(lanPort)), Dir: dir, vm: vm, proc: proc}
	if err := s.waitReady(ctx, n); err != nil {
		proc.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady sends RMCP/ASF presence pings (DMTF ASF 2.0, §3.2.4.1: IANA
// 4542, message type 0x80) to ipmi_sim's LAN port from inside the server
// namespace until it answers with a pong (0x40).
func (s *IPMISim) waitReady(ctx context.Context, n *Net) error {
	conn, err := n.ListenPacket(n.Srv, "udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer conn.Close()
	to, err := net.ResolveUDPAddr("udp", s.Addr)
	if err != nil {
		return err
	}
	ping := []byte{0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x01, 0x00, 0x00}
	deadline := time.Now().Add(ipmiSimReadyTimeout)
	buf := make([]byte, 512)
	for time.Now().Before(deadline) {
		select {
		case <-s.proc.Done():
			return fmt.Errorf("lab: ipmi_sim exited (%v):\n%s", s.proc.Err(), tailFile(filepath.Join(s.Dir, "ipmi_sim.log"), 10))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if _, err := conn.WriteTo(ping, to); err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		k, _, err := conn.ReadFrom(buf)
		if err == nil && k >= 9 && bytes.Equal(buf[4:8], ping[4:8]) && buf[8] == 0x40 {
			return nil
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			time.Sleep(200 * time.Millisecond) // refused: not bound yet
		}
	}
	return fmt.Errorf("lab: ipmi_sim did not answer on %s within %v:\n%s", s.Addr, ipmiSimReadyTimeout, tailFile(filepath.Join(s.Dir, "ipmi_sim.log"), 10))
}

// Port returns the LAN port.
func (s *IPMISim) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	port, _ := strconv.Atoi(p)
	return port
}

// ChassisLog returns the chassis program's log: one line per call.
func (s *IPMISim) ChassisLog() string { return filepath.Join(s.vm.Dir(), "chassis.log") }

// Close stops ipmi_sim and closes the machine (QEMU is not ipmi_sim's
// child: it would outlive it).
func (s *IPMISim) Close() error {
	s.proc.Stop()
	return s.vm.Close()
}

// freePort returns a port that was free on 127.0.0.1 in the server
// namespace a moment ago.
func freePort(n *Net, network string) (int, error) {
	var addr net.Addr
	switch network {
	case "udp":
		c, err := n.ListenPacket(n.Srv, "udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		addr = c.LocalAddr()
		c.Close()
	default:
		l, err := n.Listen(n.Srv, "tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		addr = l.Addr()
		l.Close()
	}
	_, p, err := net.SplitHostPort(addr.String())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}
