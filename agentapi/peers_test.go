package agentapi

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBitmap(t *testing.T) {
	b := NewBitmap(11)
	if len(b) != 2 || b.Count() != 0 || b.Check(11) != nil {
		t.Fatalf("NewBitmap(11) = %v", b)
	}
	for _, i := range []int{0, 7, 8, 10} {
		b.Set(i)
	}
	b.Clear(7)
	if diff := cmp.Diff(Bitmap{0x80, 0xa0}, b); diff != "" {
		t.Errorf("bits (-want +got):\n%s", diff)
	}
	for i, want := range map[int]bool{0: true, 1: false, 7: false, 8: true, 10: true, 11: false, 16: false, -1: false} {
		if b.Has(i) != want {
			t.Errorf("Has(%d) = %v", i, !want)
		}
	}
	if b.Count() != 3 {
		t.Errorf("Count = %d", b.Count())
	}
	for _, tc := range []struct {
		name string
		b    Bitmap
		n    int
		ok   bool
	}{
		{"exact", Bitmap{0xff}, 8, true},
		{"empty", Bitmap{}, 0, true},
		{"short", Bitmap{0xff}, 9, false},
		{"long", Bitmap{0, 0}, 8, false},
		{"bit-past-end", Bitmap{0x80, 0x20}, 10, false},
		{"last-bit", Bitmap{0x80, 0x20}, 11, true},
		{"negative", Bitmap{}, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.b.Check(tc.n); (err == nil) != tc.ok {
				t.Errorf("Check(%d) of %x = %v", tc.n, []byte(tc.b), err)
			}
		})
	}
	// The wire form is base64.
	j, err := json.Marshal(Holdings{Image: "ab", Port: 8081, Have: b})
	if err != nil || string(j) != `{"image":"ab","port":8081,"have":"gKA="}` {
		t.Errorf("JSON %s, %v", j, err)
	}
}

func TestWhereURL(t *testing.T) {
	got := WhereURL("http://192.0.2.1:8080/artifacts/chunks?mac=52-54-00-00-00-01", []string{"ab", "cd"}, "ef")
	want := "http://192.0.2.1:8080/artifacts/chunks?where=ab,cd&peers=ef&mac=52-54-00-00-00-01"
	if got != want {
		t.Errorf("WhereURL = %s, want %s", got, want)
	}
}
