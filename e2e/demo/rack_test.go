package main

import (
	"testing"

	"github.com/rackboot/rackboot/e2e/lab"
)

func TestCheckMarker(t *testing.T) {
	tests := []struct {
		name, line string
		ok         bool
	}{
		{"booted", lab.Marker + " mac=52:54:00:77:00:01 cmdline_mac=52:54:00:77:00:01 fw=bios uptime=2.1", true},
		{"other spelling", lab.Marker + " mac=52:54:00:77:00:01 cmdline_mac=52-54-00-77-00-01 fw=bios", true},
		{"another machine's script", lab.Marker + " mac=52:54:00:77:00:01 cmdline_mac=52:54:00:77:00:02 fw=bios", false},
		{"no NIC", lab.Marker + " mac=none cmdline_mac=52:54:00:77:00:01 fw=bios", false},
		{"no rackboot.mac", lab.Marker + " mac=52:54:00:77:00:01 cmdline_mac= fw=bios", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := rack()[0]
			m.marker = lab.Line{Text: tt.line}
			if err := m.checkMarker(); (err == nil) != tt.ok {
				t.Errorf("checkMarker(%q) = %v, want ok=%v", tt.line, err, tt.ok)
			}
		})
	}
}
