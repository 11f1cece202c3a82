package power

import (
	"context"
	"fmt"
	"time"
)

// Do runs one action on one machine. With netboot (on and cycle only)
// NetBootOnce comes first. After on, off or cycle it polls Status every
// cfg.PollInterval until the machine reads the expected state (on after on
// and cycle, off after off) or cfg.Timeout has passed: off is asynchronous
// on real BMCs and in ipmi_sim. It returns the last state read
// (StateUnknown when none was) and nil or an *Error.
//
// An operation that fails with KindTimeout or KindUnreachable is repeated
// up to cfg.Retries times; auth errors never are (BMCs lock users out).
// A cycle is repeated only when unreachable: after a timeout nobody knows
// whether the BMC acted, and a second cycle would cut a boot that has
// begun.
func Do(ctx context.Context, c Controller, a Action, netboot bool, cfg Config) (State, error) {
	cfg = cfg.withDefaults()
	op := "power " + string(a)
	switch a {
	case ActionStatus, ActionOff:
		if netboot {
			return StateUnknown, &Error{Op: op, Kind: KindConfig, Err: fmt.Errorf("a network boot goes with on or cycle, not %s", a)}
		}
	case ActionOn, ActionCycle:
	default:
		return StateUnknown, &Error{Op: op, Kind: KindConfig, Err: fmt.Errorf("unknown action %q (want status, on, off or cycle)", a)}
	}

	if a == ActionStatus {
		state := StateUnknown
		err := retry(ctx, cfg, false, func() error {
			var err error
			state, err = c.Status(ctx)
			return err
		})
		if err != nil {
			return StateUnknown, err
		}
		return state, nil
	}

	if netboot {
		if err := retry(ctx, cfg, false, func() error { return c.NetBootOnce(ctx) }); err != nil {
			return StateUnknown, err
		}
	}
	var act func(context.Context) error
	want := StateOn
	switch a {
	case ActionOn:
		act = c.On
	case ActionOff:
		act, want = c.Off, StateOff
	case ActionCycle:
		act = c.Cycle
	}
	if err := retry(ctx, cfg, a == ActionCycle, func() error { return act(ctx) }); err != nil {
		return StateUnknown, err
	}
	return poll(ctx, c, op, want, cfg)
}

// retry runs fn, then again while it fails with timeout or unreachable
// (unreachable only, when onlyUnreachable) and retries remain, pausing
// briefly between attempts.
func retry(ctx context.Context, cfg Config, onlyUnreachable bool, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || attempt >= cfg.Retries || ctx.Err() != nil {
			return err
		}
		switch KindOf(err) {
		case KindUnreachable:
		case KindTimeout:
			if onlyUnreachable {
				return err
			}
		default:
			return err
		}
		pause := min(cfg.PollInterval, time.Second)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// poll reads Status until it is want or cfg.Timeout has passed. Errors of
// single reads do not end it (a BMC may be busy right after a cycle); the
// last one is returned when the deadline comes.
func poll(ctx context.Context, c Controller, op string, want State, cfg Config) (State, error) {
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	last := StateUnknown
	var lastErr error
	for {
		state, err := c.Status(pctx)
		if err == nil {
			last, lastErr = state, nil
			if state == want {
				return state, nil
			}
		} else {
			lastErr = err
			if k := KindOf(err); k == KindAuth || k == KindConfig || k == KindTLS {
				return last, err
			}
		}
		t := time.NewTimer(cfg.PollInterval)
		select {
		case <-pctx.Done():
			t.Stop()
			if lastErr != nil {
				return last, lastErr
			}
			if ctx.Err() != nil {
				return last, &Error{Op: op, Kind: KindTimeout, Err: ctx.Err()}
			}
			return last, &Error{Op: op, Kind: KindTimeout, Err: fmt.Errorf("the machine still reads %s %s after the command, want %s", last, cfg.Timeout, want)}
		case <-t.C:
		}
	}
}
