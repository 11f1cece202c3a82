package initrd

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/google/go-cmp/cmp"
)

func TestOverlay(t *testing.T) {
	var b bytes.Buffer
	if err := Overlay(&b, map[string][]byte{"etc/rackboot/ca.pem": []byte("PEM\n")}); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&b)
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	r := cpio.NewReader(zr)
	var got []string
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r)
		got = append(got, h.Name+" "+h.Mode.String()+" "+string(body))
	}
	want := []string{"etc 040755 ", "etc/rackboot 040755 ", "etc/rackboot/ca.pem 0100644 PEM\n"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("archive (-want +got):\n%s", d)
	}
}
