package power

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/common"
	"github.com/stmcginnis/gofish/redfish"
)

// Redfish with gofish.
//
// Each operation connects (service root, then a session: POST
// SessionService/Sessions), does its work and deletes the session. gofish
// quirks handled here (docs/bmc-groundwork.md §3):
//   - The context given to ConnectContext is kept in the client and used for
//     every later request: one client per operation, with the operation's
//     context.
//   - Our own http.Client replaces gofish's transport entirely, so TLS
//     verification and every timeout are set on it (no proxy either: a
//     BMC network is not reached through an HTTP proxy).
//   - Reading the Systems collection turns member errors into one
//     *common.CollectionError; the first member error is taken back out so
//     it classifies by type.
//   - ComputerSystem.Reset checks the type against
//     ResetType@Redfish.AllowableValues client-side: that list chooses
//     PowerCycle or ForceRestart.
//   - DumpWriter would write the session request with the password: never
//     set.
//
// gofish v0.20.0, not v0.21.0: v0.21.0's ComputerSystem.Reset posts to the
// RemoveResourceBlock action's target instead of the Reset target (an empty
// URL for every BMC without that action), so no reset ever reaches the BMC
// (measured: "unable to execute request, no target provided").
const (
	redfishDialTimeout = 5 * time.Second
	redfishTLSTimeout  = 5 * time.Second
)

type redfishController struct {
	t        Target
	endpoint string // scheme://host[:port]
	cfg      Config
}

func (c *redfishController) httpClient() *http.Client {
	return &http.Client{
		Timeout: c.cfg.Timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: redfishDialTimeout}).DialContext,
			TLSHandshakeTimeout:   redfishTLSTimeout,
			ResponseHeaderTimeout: c.cfg.Timeout,
			TLSClientConfig: &tls.Config{
				MinVersion:         tls.VersionTLS12,
				InsecureSkipVerify: c.t.InsecureTLS, //nolint:gosec // self-signed BMCs, by explicit configuration only
			},
			MaxIdleConnsPerHost: 1,
		},
	}
}

// session runs fn on the machine's ComputerSystem inside one Redfish
// session bounded by cfg.Timeout.
func (c *redfishController) session(ctx context.Context, op string, fn func(sys *redfish.ComputerSystem) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	hc := c.httpClient()
	defer hc.CloseIdleConnections()
	api, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint:   c.endpoint,
		Username:   c.t.Username,
		Password:   c.t.Password,
		HTTPClient: hc,
		BasicAuth:  false,
	})
	if err != nil {
		return wrap(op, err, c.t.Password)
	}
	defer c.logout(ctx, hc, api)
	sys, err := c.system(api)
	if err != nil {
		return wrap(op, err, c.t.Password)
	}
	return wrap(op, fn(sys), c.t.Password)
}

// logout deletes the session with a cleanup deadline (gofish's Logout
// would reuse the operation's context, perhaps expired).
func (c *redfishController) logout(ctx context.Context, hc *http.Client, api *gofish.APIClient) {
	s, err := api.GetSession()
	if err != nil || s.ID == "" {
		return
	}
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	target := s.ID
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		target = c.endpoint + target
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, target, nil)
	if err != nil {
		return
	}
	req.Header.Set("X-Auth-Token", s.Token)
	resp, err := hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
}

// system picks the Target's ComputerSystem: by Id, or the only one.
func (c *redfishController) system(api *gofish.APIClient) (*redfish.ComputerSystem, error) {
	systems, err := api.GetService().Systems()
	if err != nil {
		return nil, firstCollectionError(err)
	}
	ids := make([]string, 0, len(systems))
	for _, s := range systems {
		if c.t.System != "" && s.ID == c.t.System {
			return s, nil
		}
		ids = append(ids, s.ID)
	}
	sort.Strings(ids)
	switch {
	case c.t.System != "":
		return nil, &Error{Kind: KindConfig, Err: fmt.Errorf("the BMC has no system %q (it has %s)", c.t.System, strings.Join(ids, ", "))}
	case len(systems) == 1:
		return systems[0], nil
	case len(systems) == 0:
		return nil, &Error{Kind: KindBMC, Err: errors.New("the BMC lists no system")}
	}
	return nil, &Error{Kind: KindConfig, Err: fmt.Errorf("the BMC has several systems (%s): say which", strings.Join(ids, ", "))}
}

// firstCollectionError returns the first (by link) member error of a
// gofish collection error, which keeps its type, or err itself.
func firstCollectionError(err error) error {
	var ce *common.CollectionError
	if !errors.As(err, &ce) || len(ce.Failures) == 0 {
		return err
	}
	links := make([]string, 0, len(ce.Failures))
	for l := range ce.Failures {
		links = append(links, l)
	}
	sort.Strings(links)
	return fmt.Errorf("%s: %w", links[0], ce.Failures[links[0]])
}

func redfishState(s redfish.PowerState) State {
	switch s {
	case redfish.OnPowerState:
		return StateOn
	case redfish.OffPowerState:
		return StateOff
	}
	return StateUnknown
}

func (c *redfishController) Status(ctx context.Context) (State, error) {
	state := StateUnknown
	err := c.session(ctx, "power status", func(sys *redfish.ComputerSystem) error {
		state = redfishState(sys.PowerState)
		return nil
	})
	return state, err
}

// control reads the state from the system just fetched, then resets it
// the way that fits: On when not on (on, cycle), ForceOff when not off
// (off), PowerCycle — or ForceRestart where PowerCycle is not allowed —
// when on (cycle). Nothing when the machine already is where it should be:
// real BMCs answer 409 to On when on.
func (c *redfishController) control(ctx context.Context, op string, a Action) error {
	return c.session(ctx, op, func(sys *redfish.ComputerSystem) error {
		state := redfishState(sys.PowerState)
		var rt redfish.ResetType
		switch {
		case a == ActionOn && state == StateOn, a == ActionOff && state == StateOff:
			return nil
		case a == ActionOff:
			rt = redfish.ForceOffResetType
		case a == ActionOn, state == StateOff:
			rt = redfish.OnResetType
		case len(sys.SupportedResetTypes) == 0 || slices.Contains(sys.SupportedResetTypes, redfish.PowerCycleResetType):
			rt = redfish.PowerCycleResetType
		default:
			rt = redfish.ForceRestartResetType
		}
		return sys.Reset(rt)
	})
}

func (c *redfishController) On(ctx context.Context) error {
	return c.control(ctx, "power on", ActionOn)
}
func (c *redfishController) Off(ctx context.Context) error {
	return c.control(ctx, "power off", ActionOff)
}
func (c *redfishController) Cycle(ctx context.Context) error {
	return c.control(ctx, "power cycle", ActionCycle)
}

// NetBootOnce PATCHes Boot {BootSourceOverrideTarget: Pxe,
// BootSourceOverrideEnabled: Once}. Some BMCs also want
// BootSourceOverrideMode (Legacy/UEFI); none is sent, so the BMC keeps
// its current mode.
func (c *redfishController) NetBootOnce(ctx context.Context) error {
	return c.session(ctx, "power netboot", func(sys *redfish.ComputerSystem) error {
		return sys.SetBoot(redfish.Boot{
			BootSourceOverrideTarget:  redfish.PxeBootSourceOverrideTarget,
			BootSourceOverrideEnabled: redfish.OnceBootSourceOverrideEnabled,
		})
	})
}
