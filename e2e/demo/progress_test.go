package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/e2e/lab"
)

func TestEntryIP(t *testing.T) {
	tests := []struct {
		name, ip, want string
	}{
		{"address", "192.168.77.108", "192.168.77.108"},
		{"with port", "192.168.77.109:4011", "192.168.77.109"},
		{"unspecified with port", "0.0.0.0:68", ""},
		{"absent", "", ""},
		{"garbage", "nope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := lab.LogEntry{Attrs: map[string]any{"ip": tt.ip}}
			if got := entryIP(e); got != tt.want {
				t.Errorf("entryIP(ip=%q) = %q, want %q", tt.ip, got, tt.want)
			}
		})
	}
}

// TestIdentify checks that a line carrying only an address (/boot.ipxe, a
// TFTP transfer) is attributed to the MAC learned for that address.
func TestIdentify(t *testing.T) {
	log := `{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"answered","mac":"52:54:00:77:00:01","ip":"0.0.0.0:68","kind":"offer","path":"http://192.168.77.1:8080/boot.ipxe","dst":"255.255.255.255:68"}
{"time":"2026-01-01T00:00:02Z","level":"INFO","msg":"boot script served","ip":"192.168.77.108","path":"/boot.ipxe"}
{"time":"2026-01-01T00:00:03Z","level":"INFO","msg":"script served","ip":"192.168.77.108","path":"/ipxe","mac":"52-54-00-77-00-01","host":"r1-n01","outcome":"installer"}
`
	entries, err := lab.ParseLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	p := newProgress(nil, entries[0].Time, nil, "")
	for _, e := range entries {
		p.learn(e)
	}
	var got []string
	for _, e := range entries {
		got = append(got, p.identify(e))
	}
	want := []string{"52:54:00:77:00:01", "52:54:00:77:00:01", "52:54:00:77:00:01"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identify (-want +got):\n%s", diff)
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{
			"proxy offer on 4011",
			`{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"answered","kind":"ack","path":"ipxe.efi","dst":"192.168.77.109:4011"}`,
			"rackboot: proxyDHCP ack on the PXE port 4011, boot file ipxe.efi",
		},
		{
			"tftp",
			`{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"tftp transfer done","path":"ipxe.efi","bytes":850528}`,
			"rackboot: TFTP sent ipxe.efi (831 KiB)",
		},
		{
			"artifact",
			`{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"artifact request","path":"vmlinuz","status":200,"bytes":8247232}`,
			"rackboot: HTTP sent vmlinuz (7.9 MiB)",
		},
		{
			"artifact not found",
			`{"time":"2026-01-01T00:00:01Z","level":"WARN","msg":"artifact request","path":"vmlinuz","status":404,"bytes":19}`,
			"rackboot WARN: artifact request path=vmlinuz status=404",
		},
		{
			"debug noise",
			`{"time":"2026-01-01T00:00:01Z","level":"DEBUG","msg":"not answered","err":"dhcp: request addressed to another server"}`,
			"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := lab.ParseLog(strings.NewReader(tt.line))
			if err != nil || len(entries) != 1 {
				t.Fatalf("ParseLog: %v, %d entries", err, len(entries))
			}
			got, _ := describe(entries[0])
			if got != tt.want {
				t.Errorf("describe = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestLogTail checks that a line still being written is read only once
// complete, and every line exactly once.
func TestLogTail(t *testing.T) {
	name := filepath.Join(t.TempDir(), "rackboot.log")
	tail := logTail{name: name}
	writes := []string{
		`{"time":"2026-01-01T00:00:01Z","msg":"a"}` + "\n" + `{"time":"2026-01-01T00:00:02Z","ms`,
		`g":"b"}` + "\n",
		"",
	}
	var got [][]string
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range writes {
		if _, err := f.WriteString(w); err != nil {
			t.Fatal(err)
		}
		entries, err := tail.next()
		if err != nil {
			t.Fatal(err)
		}
		msgs := []string{}
		for _, e := range entries {
			msgs = append(msgs, e.Msg)
		}
		got = append(got, msgs)
	}
	want := [][]string{{"a"}, {"b"}, {}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages per read (-want +got):\n%s", diff)
	}
}
