package rack

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/e2e/lab"
)

func TestLogMatchers(t *testing.T) {
	const log = `{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"answered","mac":"52:54:00:77:00:01","kind":"offer"}
{"time":"2026-01-01T00:00:02Z","level":"INFO","msg":"script served","path":"/ipxe","mac":"52:54:00:77:00:01","outcome":"installer"}
{"time":"2026-01-01T00:00:03Z","level":"INFO","msg":"artifact request","path":"/artifacts/vmlinuz","mac":"52-54-00-77-00-01","status":200}
{"time":"2026-01-01T00:00:04Z","level":"WARN","msg":"artifact request","path":"/artifacts/vmlinuz","mac":"52-54-00-77-00-01","status":404}
{"time":"2026-01-01T00:00:05Z","level":"INFO","msg":"script served","path":"/ipxe","mac":"52:54:00:77:00:01","outcome":"local"}
{"time":"2026-01-01T00:00:06Z","level":"INFO","msg":"answered","mac":"52:54:00:77:00:02","kind":"offer"}
`
	entries, err := lab.ParseLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	mac := mustMAC(t, "52:54:00:77:00:01")
	tests := []struct {
		name  string
		match func(lab.LogEntry) bool
		want  []int // indexes of the matching entries
	}{
		{"answered", Answered(mac), []int{0}},
		{"installer script", ScriptServed(mac, "installer"), []int{1}},
		{"local script", ScriptServed(mac, "local"), []int{4}},
		{"kernel sent (dashed MAC; not the 404)", ArtifactServed(mac, KernelFile), []int{2}},
		{"initrd", ArtifactServed(mac, InitrdFile), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for i, e := range entries {
				if tt.match(e) {
					got = append(got, i)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("matched entries (-want +got):\n%s", diff)
			}
		})
	}
}
