package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmp is one connection to QEMU's machine protocol (QMP) on a unix socket.
// QEMU's `-qmp unix:…,server=on,wait=off` serves one client at a time: a
// second connection gets no greeting while the first is open
// (docs/bmc-groundwork.md §6.2b, trap b), so a qmp is opened for one
// operation and closed at its end, never kept between operations.
type qmp struct {
	conn net.Conn
	r    *bufio.Reader
}

// qmpMessage is any message QEMU sends: a greeting, a command's return or
// error, or an asynchronous event.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

// dialQMP connects to the socket, reads the greeting and leaves
// capabilities negotiation mode, all within timeout.
func dialQMP(path string, timeout time.Duration) (*qmp, error) {
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("lab: qmp: %w", err)
	}
	q := &qmp{conn: conn, r: bufio.NewReader(conn)}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	m, err := q.read()
	if err == nil && m.QMP == nil {
		err = fmt.Errorf("lab: qmp: no greeting")
	}
	if err == nil {
		_, err = q.execute("qmp_capabilities", nil)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return q, nil
}

func (q *qmp) Close() error { return q.conn.Close() }

func (q *qmp) read() (qmpMessage, error) {
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return qmpMessage{}, fmt.Errorf("lab: qmp: %w", err)
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return qmpMessage{}, fmt.Errorf("lab: qmp: %w: %q", err, line)
	}
	return m, nil
}

// execute sends a command and returns its result, skipping the events that
// arrive before it.
func (q *qmp) execute(cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("lab: qmp %s: %w", cmd, err)
	}
	for {
		m, err := q.read()
		if err != nil {
			return nil, fmt.Errorf("lab: qmp %s: %w", cmd, err)
		}
		if m.Event != "" {
			continue
		}
		if m.Error != nil {
			return nil, fmt.Errorf("lab: qmp %s: %s: %s", cmd, m.Error.Class, m.Error.Desc)
		}
		return m.Return, nil
	}
}

// qmpRun opens a connection, runs fn with it and closes it: every QMP
// operation of a BMC machine is one short connection.
func qmpRun(path string, timeout time.Duration, fn func(q *qmp) error) error {
	q, err := dialQMP(path, timeout)
	if err != nil {
		return err
	}
	defer q.Close()
	_ = q.conn.SetDeadline(time.Now().Add(timeout))
	return fn(q)
}
