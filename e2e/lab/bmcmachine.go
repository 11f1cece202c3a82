package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// bmcMachine is a BMC-driven QEMU machine as its state directory holds it:
// what to start (machine.json), the running QEMU's pid (qemu.pid) and its
// QMP socket. It has no state in memory, so the test process (a *BMCVM,
// a Redfish double) and ipmi_sim's chassis_control program (the test
// binary re-executed, ChassisMain) operate the same machine, one after the
// other. What docs/bmc-groundwork.md §6.2 and §6.2b measured:
//
//   - the NIC has bootindex=1 only in a power-on that boots from the
//     network, the disk bootindex=2, and `-boot strict=on`, so that a
//     normal power-on never tries the network (a crisp negative control);
//   - right after a network power-on, QMP `qom-set nic0 bootindex -1`:
//     the running boot keeps the NIC first (fw_cfg bootorder was built at
//     start), every later reset, such as the installer's reboot, boots the
//     disk only. QMP is served only once QEMU's initial reset built the
//     bootorder, so this is race-free; a reset with a network boot is an
//     off and such a power-on;
//   - no -no-reboot: a guest reboot stays within the power-on, as on a
//     real server; a guest power-off ends QEMU (the machine is off);
//   - QEMU is started detached (its own session, output to a file, never
//     to the chassis program's stdout, which ipmi_sim reads to EOF).
type bmcMachine struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	NS   string `json:"netns"` // the namespace QEMU runs in, with the tap
	// Args is QEMU's command line without the NIC device (NIC) and the
	// IPMI devices (IPMIPort).
	Args []string `json:"args"`
	NIC  string   `json:"nic"` // -device value, without bootindex
	QMP  string   `json:"qmp"` // QMP unix socket
	// IPMIPort, when not zero, is the TCP port on 127.0.0.1 in NS where
	// ipmi_sim takes QEMU's in-band IPMI connection (ipmi-bmc-extern).
	IPMIPort int `json:"ipmi_port,omitempty"`
}

const (
	machineFile = "machine.json"
	pidFile     = "qemu.pid"
	pxeFile     = "boot-pxe" // a network boot ipmi_sim asked for, pending
	// qemuStartTimeout bounds QEMU's start until its QMP answers (a
	// loaded two-core host, TCG).
	qemuStartTimeout = 30 * time.Second
	qmpTimeout       = 10 * time.Second
)

func loadMachine(dir string) (*bmcMachine, error) {
	b, err := os.ReadFile(filepath.Join(dir, machineFile))
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	var m bmcMachine
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("lab: %s: %w", machineFile, err)
	}
	return &m, nil
}

func (m *bmcMachine) save() error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(m.Dir, machineFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return os.Rename(tmp, filepath.Join(m.Dir, machineFile))
}

// pid returns the running QEMU's pid, 0 when the machine is off. A pid
// counts only while its process is not a zombie (PID 1 here reaps orphans
// lazily, and kill(pid, 0) succeeds on a zombie) and is this machine's
// QEMU (its command line names our QMP socket), not a reused pid.
func (m *bmcMachine) pid() int {
	b, err := os.ReadFile(filepath.Join(m.Dir, pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !processAlive(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(m.QMP)) {
		return 0
	}
	return pid
}

// processAlive: the process exists and is not a zombie (or dead).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE …; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

func (m *bmcMachine) isOn() bool { return m.pid() != 0 }

// qemuArgs is the command line of one power-on.
func (m *bmcMachine) qemuArgs(netboot bool) []string {
	nic := m.NIC
	if netboot {
		nic += ",bootindex=1"
	}
	args := append(append([]string(nil), m.Args...), "-device", nic)
	if m.IPMIPort != 0 {
		args = append(args,
			"-chardev", fmt.Sprintf("socket,id=ipmi0,host=127.0.0.1,port=%d,reconnect=10", m.IPMIPort),
			"-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0",
			"-device", "isa-ipmi-kcs,bmc=bmc0")
	}
	return args
}

// on powers the machine on unless it is on already, and reports whether
// it started QEMU. reap, in a long-lived process, waits for QEMU's exit so
// that no zombie stays; the chassis program exits at once and leaves QEMU
// to init.
func (m *bmcMachine) on(netboot, reap bool) (bool, error) {
	if m.isOn() {
		return false, nil
	}
	_ = os.Remove(m.QMP) // a killed QEMU's socket
	args := m.qemuArgs(netboot)
	logf, err := os.OpenFile(filepath.Join(m.Dir, m.Name+".qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, fmt.Errorf("lab: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s power on (netboot %v): qemu-system-x86_64 %s\n", time.Now().Format(time.RFC3339Nano), netboot, strings.Join(args, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", m.NS, "qemu-system-x86_64"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, logf, logf
	// Its own session, and no parent-death signal: QEMU outlives the
	// chassis program that started it, as a server outlives its BMC's
	// request.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("lab: start qemu: %w", err)
	}
	pid := cmd.Process.Pid // ip netns exec execs QEMU: the same pid
	exited := make(chan struct{})
	if reap {
		go func() { _ = cmd.Wait(); close(exited) }()
	} else {
		_ = cmd.Process.Release() // (its Pid is -1 from here on)
	}
	if err := os.WriteFile(filepath.Join(m.Dir, pidFile), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return false, fmt.Errorf("lab: %w", err)
	}
	// Wait for QMP: QEMU is then running its guest. For a network boot,
	// take the NIC out of the boot order of every later reset.
	deadline := time.Now().Add(qemuStartTimeout)
	for {
		err := qmpRun(m.QMP, qmpTimeout, func(q *qmp) error {
			if !netboot {
				_, err := q.execute("query-status", nil)
				return err
			}
			_, err := q.execute("qom-set", map[string]any{"path": "/machine/peripheral/nic0", "property": "bootindex", "value": -1})
			return err
		})
		if err == nil {
			return true, nil
		}
		select {
		case <-exited:
			return false, fmt.Errorf("lab: qemu exited at start:\n%s", tailFile(logf.Name(), 5))
		default:
		}
		if !processAlive(pid) {
			time.Sleep(200 * time.Millisecond) // its last words
			return false, fmt.Errorf("lab: qemu exited at start:\n%s", tailFile(logf.Name(), 5))
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return false, fmt.Errorf("lab: qemu's QMP not ready after %v: %w", qemuStartTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// off powers the machine off at once: QMP quit, else SIGTERM, else
// SIGKILL; it returns once QEMU is gone.
func (m *bmcMachine) off() error {
	pid := m.pid()
	if pid == 0 {
		return nil
	}
	_ = qmpRun(m.QMP, 3*time.Second, func(q *qmp) error { _, err := q.execute("quit", nil); return err })
	for _, sig := range []syscall.Signal{0, syscall.SIGTERM, syscall.SIGKILL} {
		if sig != 0 {
			_ = syscall.Kill(pid, sig)
		}
		for range 50 {
			if !processAlive(pid) {
				_ = os.Remove(filepath.Join(m.Dir, pidFile))
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return fmt.Errorf("lab: qemu %d still running after SIGKILL", pid)
}

// reset resets a running machine in place (the same QEMU process), or
// powers an off one on. A network reset is an off and a network power-on:
// the in-place variant of docs/bmc-groundwork.md §6.2b (qom-set 1,
// system_reset, wait for the RESET event, qom-set -1) raced here: SeaBIOS
// booted the disk in one run of three, and under OVMF the RESET event came
// before system_reset's return. A new QEMU process boots exactly as a
// network power-on does, and the console goes on across it.
func (m *bmcMachine) reset(netboot, reap bool) error {
	if !m.isOn() {
		_, err := m.on(netboot, reap)
		return err
	}
	if netboot {
		if err := m.off(); err != nil {
			return err
		}
		_, err := m.on(true, reap)
		return err
	}
	return qmpRun(m.QMP, qmpTimeout, func(q *qmp) error {
		_, err := q.execute("system_reset", nil)
		return err
	})
}

// pendingPXE reports whether a network boot is pending, and clear removes
// it: ipmi_sim's `set boot pxe` is consumed by the next power-on or reset.
func (m *bmcMachine) pendingPXE() bool {
	_, err := os.Stat(filepath.Join(m.Dir, pxeFile))
	return err == nil
}

func (m *bmcMachine) setPXE(on bool) error {
	p := filepath.Join(m.Dir, pxeFile)
	if on {
		return os.WriteFile(p, nil, 0o644)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
