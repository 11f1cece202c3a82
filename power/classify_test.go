package power

import (
	"errors"
	"testing"
)

// TestPortIsNotStatus: a BMC on a port ending in 401 or 403 that refuses
// connections is unreachable, not an authentication failure.
func TestPortIsNotStatus(t *testing.T) {
	err := errors.New(`Get "http://127.0.0.1:45403/redfish/v1/": dial tcp 127.0.0.1:45403: connect: connection refused`)
	if k := classify(err); k != KindUnreachable {
		t.Errorf("kind %s, want unreachable", k)
	}
	if k := classify(errors.New(`list systems: failed to retrieve some items: [{"link":"/redfish/v1/Systems","error":"401: {}"}]`)); k != KindAuth {
		t.Errorf("a 401 in a collection error: kind %s, want auth", k)
	}
}
