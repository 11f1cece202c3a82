package imaging

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rackboot/rackboot/agentapi"
)

// partTypes maps the plan's partition type names to GPT type GUIDs.
var partTypes = map[string]gpt.Type{
	"esp":               gpt.EFISystemPartition,
	"bios-boot":         gpt.BIOSBoot,
	"linux":             gpt.LinuxFilesystem,
	"swap":              gpt.LinuxSwap,
	"linux-root-x86-64": gpt.LinuxRootX86_64,
	"linux-root-arm64":  gpt.LinuxRootArm64,
}

// gptType returns the type GUID of a plan partition type.
func gptType(t string) (gpt.Type, error) {
	if t == "linux-root" {
		switch runtime.GOARCH {
		case "amd64":
			return gpt.LinuxRootX86_64, nil
		case "arm64":
			return gpt.LinuxRootArm64, nil
		}
		return "", fmt.Errorf("no linux-root partition type for %s; name it explicitly", runtime.GOARCH)
	}
	if g, ok := partTypes[t]; ok {
		return g, nil
	}
	if agentapi.IsTypeGUID(t) {
		return gpt.Type(strings.ToUpper(t)), nil
	}
	return "", fmt.Errorf("unknown partition type %q", t)
}

// validate checks the plan as agentapi does, and that this agent can
// apply it (its partition types on this architecture). Whether it has the
// tools for the plan's file systems is Installer.checkTools's question.
func validate(p *agentapi.Plan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	for i, part := range p.Partitions {
		if _, err := gptType(part.Type); err != nil {
			return fmt.Errorf("%w: partition %d (%q): %v", ErrInvalidPlan, i+1, part.Name, err)
		}
	}
	return nil
}
