package powertest

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/clock"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/types"
)

// IPMIBMC is an IPMI-over-LAN BMC double in the process: go-ipmi's
// reference BMC (RMCP+ and IPMI 1.5 sessions, the chassis commands) with a
// chassis that drives a Machine. Unlike ipmi_sim, which passes only the
// boot device on to its chassis program, it sees the full boot flags
// (valid, persistent, EFI, device): BootFlags returns the last ones set.
//
// A one-time network boot is pending after Set System Boot Options boot
// flags {valid, next boot only, force PXE}, and is used up by the next
// power up, power cycle or hard reset (netboot=true).
type IPMIBMC struct {
	Name           string // the System of its Records
	User, Password string // user 2, administrator on channel 1
	Machine        Machine

	mu      sync.Mutex
	flags   *types.BootOptionParam_BootFlags
	pending bool
	log     recorder
}

// Log returns what the double did to its machine, in order.
func (b *IPMIBMC) Log() []Record { return b.log.all() }

// BootFlags returns the boot flags last set, or nil.
func (b *IPMIBMC) BootFlags() *types.BootOptionParam_BootFlags {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.flags == nil {
		return nil
	}
	f := *b.flags
	return &f
}

// NetBootPending reports whether a one-time network boot is pending.
func (b *IPMIBMC) NetBootPending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending
}

// Serve answers IPMI on conn until ctx ends; it closes conn.
func (b *IPMIBMC) Serve(ctx context.Context, conn net.PacketConn) error {
	info := bmc.DeviceInfo{
		DeviceID: 32, DeviceRevision: 1, FirmwareMajor: 1, IPMIVersion: 0x20,
		ManufacturerID: 0x000157, ProductID: 1,
	}
	var guid [16]byte
	copy(guid[:], "rackboot-powertest")
	h := &ipmiHAL{HAL: mock.New(), chassis: &ipmiChassis{Chassis: &mock.Chassis{}, b: b}}
	m := bmc.New(info, guid, h, bmc.WithClock(clock.Real))
	user, err := m.Users.Add(2, b.User)
	if err != nil {
		conn.Close()
		return err
	}
	user.SetPassword([]byte(b.Password))
	user.Enabled = true
	user.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}
	srv := server.NewServer(m, conn)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	err = srv.Serve(ctx)
	conn.Close()
	if errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

type ipmiHAL struct {
	*mock.HAL
	chassis *ipmiChassis
}

func (h *ipmiHAL) Chassis() hal.ChassisHAL { return h.chassis }

// ipmiChassis is the hal.ChassisHAL over a Machine; identify, intrusion
// and boot info acknowledge stay the mock's.
type ipmiChassis struct {
	*mock.Chassis
	b *IPMIBMC
}

func (c *ipmiChassis) take() bool {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	p := c.b.pending
	c.b.pending = false
	if p && c.b.flags != nil {
		c.b.flags.BootFlagsValid = false // IPMI 2.0 Table 28-14: cleared once used
	}
	return p
}

func (c *ipmiChassis) record(action string, netboot bool) {
	c.b.log.add(Record{System: c.b.Name, Action: action, NetBoot: netboot, Time: time.Now()})
}

func (c *ipmiChassis) PowerState(context.Context) (bool, error) { return c.b.Machine.IsOn(), nil }

func (c *ipmiChassis) SetPower(_ context.Context, on bool) error {
	m := c.b.Machine
	switch {
	case on && !m.IsOn():
		nb := c.take()
		c.record("power up", nb)
		return m.PowerOn(nb)
	case !on && m.IsOn():
		c.record("power down", false)
		return m.PowerOff()
	}
	return nil
}

// PowerCycle of a machine that is off powers it on, as ipmi_sim does (many
// real BMCs refuse instead; clients read the state first).
func (c *ipmiChassis) PowerCycle(context.Context) error { return c.reset("power cycle") }
func (c *ipmiChassis) ColdReset(context.Context) error  { return c.reset("hard reset") }

func (c *ipmiChassis) WarmReset(context.Context) error { return c.reset("soft reset") }

func (c *ipmiChassis) reset(action string) error {
	nb := c.take()
	c.record(action, nb)
	if c.b.Machine.IsOn() {
		return c.b.Machine.Reset(nb)
	}
	return c.b.Machine.PowerOn(nb)
}

func (c *ipmiChassis) SetBootFlags(_ context.Context, f *types.BootOptionParam_BootFlags) error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	cp := *f
	c.b.flags = &cp
	c.b.pending = f.BootFlagsValid && f.BootDeviceSelector == types.BootDeviceSelectorForcePXE
	return nil
}

func (c *ipmiChassis) GetBootFlags(context.Context) (*types.BootOptionParam_BootFlags, error) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.b.flags == nil {
		return &types.BootOptionParam_BootFlags{}, nil
	}
	f := *c.b.flags
	return &f, nil
}
