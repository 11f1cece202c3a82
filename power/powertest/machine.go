package powertest

import (
	"errors"
	"sync"
	"time"
)

// Machine is what a BMC double controls: a QEMU machine in the e2e lab, a
// FakeMachine in unit tests. Implementations must be safe for concurrent
// use.
type Machine interface {
	IsOn() bool
	// PowerOn powers the machine on. netboot: a one-time network boot was
	// asked for before this power-on (and is now used up).
	PowerOn(netboot bool) error
	// PowerOff is a hard power off.
	PowerOff() error
	// Reset is an in-place reset of a running machine (Redfish
	// ForceRestart or PowerCycle, IPMI power cycle or hard reset).
	Reset(netboot bool) error
}

// Record is one thing a BMC double did to a machine.
type Record struct {
	System string // Redfish system Id; IPMIBMC: its Name
	// Action is what the BMC was asked: a Redfish ResetType ("On",
	// "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle") or an
	// IPMI chassis control ("power up", "power down", "power cycle",
	// "hard reset", "soft shutdown"). Only requests that reached the
	// Machine are recorded (not On of a machine already on).
	Action  string
	NetBoot bool // a one-time network boot was pending and went with it
	Time    time.Time
}

// Call is one call a FakeMachine received.
type Call struct {
	Op      string // "on", "off" or "reset"
	NetBoot bool
	Time    time.Time
}

// FakeMachine is an in-memory Machine that records its calls.
type FakeMachine struct {
	// OffDelay, when set before use, makes IsOn stay true that long after
	// PowerOff, like BMCs whose power off is asynchronous.
	OffDelay time.Duration
	// Err, when set before use, is returned by every PowerOn, PowerOff and
	// Reset (a broken machine; the call is still recorded).
	Err error

	mu    sync.Mutex
	on    bool
	offAt time.Time // when a delayed off completes
	calls []Call
}

// NewFakeMachine returns a FakeMachine that is on or off.
func NewFakeMachine(on bool) *FakeMachine { return &FakeMachine{on: on} }

// ErrBroken is a FakeMachine.Err for tests.
var ErrBroken = errors.New("powertest: machine broken")

func (m *FakeMachine) IsOn() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.isOnLocked()
}

func (m *FakeMachine) isOnLocked() bool {
	if m.on && !m.offAt.IsZero() && !time.Now().Before(m.offAt) {
		m.on, m.offAt = false, time.Time{}
	}
	return m.on
}

func (m *FakeMachine) record(op string, netboot bool) {
	m.calls = append(m.calls, Call{Op: op, NetBoot: netboot, Time: time.Now()})
}

func (m *FakeMachine) PowerOn(netboot bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("on", netboot)
	if m.Err != nil {
		return m.Err
	}
	m.on, m.offAt = true, time.Time{}
	return nil
}

func (m *FakeMachine) PowerOff() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("off", false)
	if m.Err != nil {
		return m.Err
	}
	if m.OffDelay > 0 && m.isOnLocked() {
		if m.offAt.IsZero() {
			m.offAt = time.Now().Add(m.OffDelay)
		}
		return nil
	}
	m.on = false
	return nil
}

func (m *FakeMachine) Reset(netboot bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("reset", netboot)
	if m.Err != nil {
		return m.Err
	}
	m.on, m.offAt = true, time.Time{}
	return nil
}

// Calls returns the calls so far, in order.
func (m *FakeMachine) Calls() []Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Call(nil), m.calls...)
}

// SetOn sets the power state without recording a call.
func (m *FakeMachine) SetOn(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on, m.offAt = on, time.Time{}
}

// recorder is a concurrency-safe list of Records shared by the doubles.
type recorder struct {
	mu      sync.Mutex
	records []Record
}

func (l *recorder) add(r Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
}

func (l *recorder) all() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Record(nil), l.records...)
}
