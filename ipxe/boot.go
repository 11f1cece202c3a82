package ipxe

import "fmt"

// bootAttempts and bootWaits bound how /boot.ipxe retries: a flaky network
// or a restarting appliance gets three chances over about fifteen seconds,
// then the machine says why and moves on instead of hanging silently.
const bootAttempts = 3

func bootWait(attempt int) string { return fmt.Sprint(5 * attempt) }

// BootScript returns /boot.ipxe for a server reached at base (see Render):
// the same two-stage script for every machine, which makes iPXE ask for its
// own script and report its facts in the query (matchbox's pattern), so the
// per-machine decision needs no DHCP state.
//
// It uses "chain --replace": the per-machine script then takes this one's
// place instead of running as a subroutine, so its "exit 1" (nothing to
// boot) ends iPXE with that status instead of looking like a failed fetch
// that would be retried. Only a failed fetch (no connection, HTTP error) is
// retried. Debian's 2019 iPXE has --replace, sleep and goto.
func BootScript(base string) (string, error) {
	if err := checkBase(base); err != nil {
		return "", fmt.Errorf("ipxe: server URL: %w", err)
	}
	chain := "chain --replace " + base + "/ipxe?mac=${mac:hexhyp}&arch=${buildarch}&platform=${platform}&uuid=${uuid}"
	s := "#!ipxe\n" +
		"echo rackboot: asking " + base + " for the boot script of ${mac}\n"
	for i := 1; i <= bootAttempts; i++ {
		next := fmt.Sprintf("retry%d", i+1)
		if i == bootAttempts {
			next = "failed"
		}
		if i > 1 {
			s += fmt.Sprintf(":retry%d\n", i) +
				fmt.Sprintf("echo rackboot: no boot script yet, retrying in %s seconds (attempt %d of %d)\n", bootWait(i-1), i, bootAttempts) +
				"sleep " + bootWait(i-1) + "\n"
		}
		s += chain + " || goto " + next + "\n"
	}
	s += ":failed\n" +
		fmt.Sprintf("echo rackboot: giving up, %s gave no boot script in %d attempts\n", base, bootAttempts) +
		"echo rackboot: check that rackboot is running and reachable from this network\n"
	for _, l := range giveUp(failurePause) {
		s += l + "\n"
	}
	return s, nil
}
