package registry

import (
	"encoding/json"
	"fmt"
)

// Stores keep records as JSON: readable with standard tools, and tolerant
// of fields added later (an old record decodes with their zero values).
//
// The exported helpers here and in logbatch.go are for Store
// implementations (Bolt, Memory, registry/etcdstore), so that every backend
// stores the same bytes: DecodeHost, DecodeAttempt and EncodeUpdate for
// records, EncodeBatch, DecodeBatch and LogOverflow for agent logs. Code
// outside a Store has no use for them.

// DecodeHost decodes a stored host record.
func DecodeHost(b []byte) (HostRecord, error) {
	var h HostRecord
	if err := json.Unmarshal(b, &h); err != nil {
		return HostRecord{}, fmt.Errorf("registry: decode host record: %w", err)
	}
	return h, nil
}

// DecodeAttempt decodes a stored attempt of mac.
func DecodeAttempt(mac string, b []byte) (Attempt, error) {
	var a Attempt
	if err := json.Unmarshal(b, &a); err != nil {
		return Attempt{}, fmt.Errorf("registry: decode attempt of %s: %w", mac, err)
	}
	return a, nil
}

// startUpdate decodes the stored record for an update (through the cache:
// an update mostly follows a read of the same record), or makes the zero
// record of mac. before is the encoding fn's result is compared with.
func (c *decodedCache) startUpdate(mac string, stored []byte, exists bool) (h HostRecord, before []byte, err error) {
	if exists {
		h, err = c.decode(mac, stored)
		if err != nil {
			return HostRecord{}, nil, err
		}
		return h, stored, nil
	}
	h = HostRecord{MAC: mac}
	before, _, err = EncodeUpdate(mac, h, nil)
	if err != nil {
		return HostRecord{}, nil, err
	}
	return h, before, nil
}

// EncodeUpdate encodes the record and attempt an update produced (the
// attempt's encoding is nil when a is). The key wins over whatever fn did
// to h.MAC, and an attempt's log is never stored with it. A Store writes
// the record only when host differs from the bytes it read (for an absent
// record: from EncodeUpdate of the zero record with MAC set), which is how
// "a record that fn leaves as it was is not written" is decided.
func EncodeUpdate(mac string, h HostRecord, a *Attempt) (host, attempt []byte, err error) {
	h.MAC = mac
	host, err = json.Marshal(h)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: encode host record: %w", err)
	}
	if a == nil {
		return host, nil, nil
	}
	c := *a
	c.MAC, c.Log = mac, nil
	if c.ID <= 0 {
		return nil, nil, fmt.Errorf("registry: attempt of %s has no ID", mac)
	}
	attempt, err = json.Marshal(c)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: encode attempt: %w", err)
	}
	return host, attempt, nil
}
