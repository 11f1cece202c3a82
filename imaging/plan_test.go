package imaging

import (
	"encoding/json"
	"testing"

	"github.com/rackboot/rackboot/agentapi"
)

const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// FuzzPlan decodes plans as the agent receives them and lays out the valid
// ones: nothing may panic, and a layout that succeeds must stay inside the
// disk without overlaps.
func FuzzPlan(f *testing.F) {
	f.Add(`{"partitions":[{"name":"esp","type":"esp","size":"512MiB"},{"name":"r","type":"linux","size":"rest"}]}`, int64(gib), true)
	f.Add(`{"partitions":[{"name":"a","type":"swap","size":9223372036854775807},{"name":"b","type":"linux","size":"rest","preserve":true}]}`, int64(tib), false)
	f.Add(`{"image":{"url":"u","sha256":"`+testSHA+`"},"partitions":[{"name":"c","type":"linux","size":1,"content":"config-drive"}]}`, int64(mib), true)
	f.Fuzz(func(t *testing.T, js string, diskSize int64, small bool) {
		var p agentapi.Plan
		if err := json.Unmarshal([]byte(js), &p); err != nil || p.Validate() != nil {
			return
		}
		ss := 4096
		if small {
			ss = 512
		}
		g, err := newGeometry(diskSize, ss)
		if err != nil {
			return
		}
		slots, err := place(p.Partitions, g, 0, 1, nil)
		if err != nil {
			return
		}
		var prevEnd uint64
		for i, s := range slots {
			if s.start < g.first || s.end > g.last || s.end < s.start || (i > 0 && s.start <= prevEnd) {
				t.Fatalf("slot %d (%q) at %d-%d on a disk with usable %d-%d, previous end %d", i, s.Name, s.start, s.end, g.first, g.last, prevEnd)
			}
			prevEnd = s.end
		}
	})
}
