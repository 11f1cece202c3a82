package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzDecodeHost holds the stored host record's decoder to a round trip:
// a record that decodes encodes (as EncodeUpdate stores it) to bytes that
// decode to the same record and encode to the same bytes, keyed by the
// MAC EncodeUpdate was given whatever the record said.
func FuzzDecodeHost(f *testing.F) {
	for _, s := range []string{
		`{"mac":"52:54:00:77:00:01","hostname":"r1-n01","state":"installed","since":"2026-11-25T10:00:00Z","version":{"name":"demo-1.0","number":10},"attempt":1,"last_id":3}`,
		`{"mac":"x","state":"installing","current":{"id":2,"number":1,"started":"2026-11-25T10:00:00+01:00"},"token":{}}`,
		`{"state":"pending","reinstall":{"at":"2026-11-25T10:00:00Z","reason":"CVE\u0000","by":"root"},"pending_version":"demo-1.1"}`,
		`{"mac":"\xff","last_error":"\u202e","attempt":-1}`,
		`{"since":"0001-01-01T00:00:00Z"}`, `null`, `{}`, `[]`, `{"mac":1}`,
	} {
		f.Add([]byte(s))
	}
	const key = "52:54:00:77:00:01"
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4096 {
			return
		}
		h, err := DecodeHost(b)
		if err != nil {
			return
		}
		enc, _, err := EncodeUpdate(key, h, nil)
		if err != nil {
			t.Fatalf("decoded record %+v does not encode: %v", h, err)
		}
		again, err := DecodeHost(enc)
		if err != nil {
			t.Fatalf("encoded record %s does not decode: %v", enc, err)
		}
		if again.MAC != key {
			t.Fatalf("stored under %s, decodes as %q", key, again.MAC)
		}
		h.MAC = key
		if diff := cmp.Diff(h, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip of %q (-decoded +again):\n%s", b, diff)
		}
		enc2, _, err := EncodeUpdate(key, again, nil)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %s then %s (%v)", enc, enc2, err)
		}
	})
}

// FuzzBatch holds the log batch codec to its bounds: lines that encode
// decode again, the stored batch never exceeds MaxLogBytes, and a batch
// that fits is kept whole. The input is split into lines at newlines and
// repeated to reach past the bound.
func FuzzBatch(f *testing.F) {
	f.Add("one\ntwo\n\x1b[31mred", uint16(1))
	f.Add("\"\\\u2028<>&", uint16(4000))
	f.Add("x", uint16(0))
	f.Add("\xff\xfe", uint16(60000))
	f.Fuzz(func(t *testing.T, s string, repeat uint16) {
		if len(s) > 512 {
			return
		}
		var lines []string
		for range int(repeat)%2048 + 1 {
			lines = append(lines, strings.Split(s, "\n")...)
		}
		b, err := EncodeBatch(lines)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MaxLogBytes {
			t.Fatalf("batch of %d lines stored in %d bytes, limit %d", len(lines), len(b), MaxLogBytes)
		}
		got, err := DecodeBatch(b)
		if err != nil {
			t.Fatalf("stored batch does not decode: %v", err)
		}
		if whole, _ := json.Marshal(lines); len(whole) <= MaxLogBytes {
			want, _ := DecodeBatch(whole) // invalid UTF-8 comes back replaced
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("a batch that fits changed (-want +got):\n%s", diff)
			}
		}
		// Whatever decodes from the store fits, and is kept whole when
		// stored again.
		b2, err := EncodeBatch(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeBatch(b2)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("stored batch not stable (-first +second):\n%s", diff)
		}
	})
}
