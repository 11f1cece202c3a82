package lab

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Sweep deletes the namespaces a dead run left behind: those named by
// NewNet with this prefix (DefaultPrefix when empty) whose owner process no
// longer exists. Processes still inside them are killed first. Namespaces of
// live runs are left alone, so parallel runs may sweep at any time. It
// returns the names it deleted.
func Sweep(prefix string) ([]string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPid(prefix, e.Name())
		if !ok || alive(pid) {
			continue
		}
		if err := removeNamespace(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// ownerPid parses a namespace name made by NewNet: PREFIX-PID-HEX-ROLE.
func ownerPid(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return 0, false
	}
	switch role := parts[2]; role {
	case "srv", "site", "cli":
	default:
		if !hostRole.MatchString(role) { // AddHost's
			return 0, false
		}
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// alive reports whether a process with this pid exists. Signal 0 checks
// without sending anything; EPERM means it exists but belongs to another
// user.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
