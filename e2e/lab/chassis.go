package lab

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ChassisArg is the first argument that makes a test binary act as
// ipmi_sim's chassis_control program: TestMain of a package that uses
// StartIPMISim must call ChassisMain when os.Args[1] is ChassisArg, before
// anything else:
//
//	func TestMain(m *testing.M) {
//		if len(os.Args) > 1 && os.Args[1] == lab.ChassisArg {
//			os.Exit(lab.ChassisMain(os.Args[2:], os.Stdout))
//		}
//		os.Exit(m.Run())
//	}
const ChassisArg = "lab-chassis"

// ChassisMain is ipmi_sim's chassis_control program for the BMCVM whose
// state directory is args[0]. ipmi_sim runs "PROG get power", "PROG get
// boot", "PROG set power 1|0", "PROG set reset 1", "PROG set shutdown 1",
// "PROG set boot pxe|default|none|…" through popen and waits for it:
// its event loop is blocked meanwhile, so every operation is quick; a
// get prints "NAME:VALUE" lines on out; a non-zero exit status is an
// IPMI "unspecified error" (docs/bmc-groundwork.md §1.2).
//
// ipmi_sim passes the boot device selector only (no "once" or
// "persistent" bit): a pending network boot is consumed by the next
// power-on or reset, i.e. treated as once. Every call is logged to
// DIR/chassis.log.
func ChassisMain(args []string, out io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: lab-chassis DIR get|set NAME [VALUE]…")
		return 2
	}
	dir, op, rest := args[0], args[1], args[2:]
	logf, _ := os.OpenFile(filepath.Join(dir, "chassis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	logLine := func(format string, a ...any) {
		if logf != nil {
			fmt.Fprintf(logf, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
		}
	}
	defer func() {
		if logf != nil {
			logf.Close()
		}
	}()
	start := time.Now()
	err := chassis(dir, op, rest, out)
	if err != nil {
		logLine("%s %s: %v (%v)", op, strings.Join(rest, " "), err, time.Since(start).Round(time.Millisecond))
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logLine("%s %s: ok (%v)", op, strings.Join(rest, " "), time.Since(start).Round(time.Millisecond))
	return 0
}

func chassis(dir, op string, rest []string, out io.Writer) error {
	m, err := loadMachine(dir)
	if err != nil {
		return err
	}
	switch op {
	case "get":
		for _, name := range rest {
			switch name {
			case "power":
				fmt.Fprintf(out, "power:%d\n", map[bool]int{false: 0, true: 1}[m.isOn()])
			case "boot":
				if m.pendingPXE() {
					fmt.Fprintln(out, "boot:pxe")
				} else {
					fmt.Fprintln(out, "boot:default")
				}
			default:
				return fmt.Errorf("lab-chassis: get %s: unknown", name)
			}
		}
		return nil
	case "set":
		if len(rest)%2 != 0 {
			return fmt.Errorf("lab-chassis: set %q: want NAME VALUE pairs", rest)
		}
		for i := 0; i < len(rest); i += 2 {
			if err := chassisSet(m, rest[i], strings.Trim(rest[i+1], `"`)); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("lab-chassis: unknown operation %q", op)
}

func chassisSet(m *bmcMachine, name, value string) error {
	switch name {
	case "power":
		if value == "0" {
			return m.off()
		}
		if m.isOn() {
			return nil
		}
		pxe := m.pendingPXE()
		if _, err := m.on(pxe, false); err != nil {
			return err
		}
		return m.setPXE(false)
	case "reset":
		pxe := m.pendingPXE()
		if err := m.reset(pxe, false); err != nil {
			return err
		}
		return m.setPXE(false)
	case "shutdown":
		// The ACPI power button: firmware alone ignores it, an OS shuts
		// down.
		if !m.isOn() {
			return nil
		}
		return qmpRun(m.QMP, qmpTimeout, func(q *qmp) error { _, err := q.execute("system_powerdown", nil); return err })
	case "boot":
		return m.setPXE(value == "pxe")
	}
	return fmt.Errorf("lab-chassis: set %s: unknown", name)
}
