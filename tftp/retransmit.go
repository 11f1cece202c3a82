package tftp

import "time"

// schedule is when the server sends an unacknowledged DATA or OACK packet
// again: first after first, then after twice as long each time, up to max,
// and after retries retransmissions the transfer is given up.
//
// pin/tftp v3.2.0 offers three knobs, and they interact (sender.go
// sendWithRetry): after every send it reads with a fixed deadline (its
// SetTimeout), and when that passes it sleeps for the backoff of the attempt
// (SetBackoff, called with 0, 1, 2, ...) before it sends again, up to
// SetRetries times. The deadline is fixed per transfer and the backoff gets
// no transfer, so the schedule is built from both: the deadline is the first
// interval, and the backoff is the rest of each longer interval. An ACK that
// arrives during a backoff sleep is not lost: it waits in the transfer's
// socket and is read right after the next send, so a slow client costs a
// spurious retransmission, never the transfer.
//
// Why not a round-trip estimate per transfer (RFC 6298): the library gives
// the read deadline and the backoff no way to tell transfers apart, and on a
// LAN the round trip is far below first anyway: in a storm of 200 clients
// saturating the server's core it stays a few milliseconds.
type schedule struct {
	first   time.Duration // the read deadline after every send
	max     time.Duration // the longest interval between two sends
	retries int           // sends after the first before giving up
}

// interval is the time from send number attempt (0 is the first) of a
// packet to the next one: first doubled attempt times, at most max.
func (s schedule) interval(attempt int) time.Duration {
	d := s.first
	for range attempt {
		if d >= s.max/2 {
			return s.max
		}
		d *= 2
	}
	return min(d, s.max)
}

// backoff is what pin/tftp sleeps after a read deadline passes and before
// it sends again: the part of the interval the deadline did not wait.
func (s schedule) backoff(attempt int) time.Duration {
	return s.interval(attempt) - s.first
}

// giveUp is how long a packet stays unacknowledged before the transfer is
// abandoned: every interval, then one read deadline after the last send.
// It is also how long a transfer to a vanished client holds its slot.
func (s schedule) giveUp() time.Duration {
	d := s.first
	for i := range s.retries {
		d += s.interval(i)
	}
	return d
}
