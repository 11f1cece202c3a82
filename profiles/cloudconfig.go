package profiles

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rackboot/rackboot/agentapi"
)

// cloud_config: raw cloud-config a profile adds to the user-data of the
// config drive. Defaults, groups and hosts may set it; it merges by
// top-level key, each key resolved like a setting (resolve.go), and null
// removes a key that a less specific level sets.

// UnmarshalYAML decodes a cloud_config mapping, keeping each value's
// node. (The yaml package decodes map[string]yaml.Node, not pointers.)
func (cc *CloudConfig) UnmarshalYAML(n *yaml.Node) error {
	m := n
	for m.Kind == yaml.AliasNode && m.Alias != nil {
		m = m.Alias
	}
	if m.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s into profiles.CloudConfig", n.Line, m.ShortTag())}}
	}
	var values map[string]yaml.Node
	if err := n.Decode(&values); err != nil {
		return err
	}
	*cc = make(CloudConfig, len(values))
	for k, v := range values {
		(*cc)[k] = &v
	}
	return nil
}

// reservedHints say, for each key of agentapi.ReservedCloudConfigKeys,
// what to write instead.
var reservedHints = map[string]string{
	"hostname":                  "rackboot names the machine after the host's hostname:",
	"fqdn":                      "rackboot names the machine after the host's hostname:",
	"preserve_hostname":         "rackboot names the machine after the host's hostname:",
	"prefer_fqdn_over_hostname": "rackboot names the machine after the host's hostname:",
	"users":                     "write accounts under users:",
	"ssh_authorized_keys":       "write the default user's keys under ssh_keys:",
	"write_files":               "write files under files:",
	"network":                   "cloud-init reads no network configuration from user-data: write it under network:",
}

// maxCloudConfig bounds one level's cloud_config, as encoded: the config
// drive is small.
const maxCloudConfig = 256 << 10

// maxCloudConfigNodes bounds the nodes of one level's cloud_config once
// its aliases are expanded: a few aliases of aliases can stand for
// billions of nodes.
const maxCloudConfigNodes = 1 << 16

var errTooLarge = errors.New("too large")

// checkCloudConfig checks a cloud_config mapping n, decoded into cc, and
// replaces each value with a copy of its node that stands alone: aliases
// expanded, no anchors, no comments, no positions.
func (c *checker) checkCloudConfig(n *yaml.Node, cc CloudConfig) {
	keys := make([]string, 0, len(cc))
	for k := range cc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	budget := maxCloudConfigNodes
	for _, k := range keys {
		kn, vn := keyOr(n, k), cc[k]
		switch {
		case kn != n && kn.ShortTag() != "!!str":
			c.errorf(kn, "cloud_config: key %s is no string: cloud-config keys are names", k)
			continue
		case slices.Contains(agentapi.ReservedCloudConfigKeys, k):
			c.errorf(kn, "cloud_config: %s is rackboot's: %s", k, reservedHints[k])
			continue
		case !cloudKeyRe.MatchString(k):
			c.errorf(kn, "cloud_config: %q is no cloud-config key: want lower-case letters, digits, '_', '-'", k)
			continue
		}
		v, err := standalone(vn, &budget)
		if err != nil {
			c.errorf(n, "cloud_config: more than %d values once its aliases are expanded", maxCloudConfigNodes)
			return
		}
		if k == "bootcmd" && v.Kind != yaml.SequenceNode && !isNull(v) {
			c.errorf(valueOr(n, k), "cloud_config: bootcmd: want a list of commands")
		}
		cc[k] = v
	}
	if b, err := yaml.Marshal(map[string]*yaml.Node(cc)); err == nil && len(b) > maxCloudConfig {
		c.errorf(n, "cloud_config: larger than %d bytes", maxCloudConfig)
	}
}

// standalone copies n with its aliases expanded, spending budget nodes.
func standalone(n *yaml.Node, budget *int) (*yaml.Node, error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if *budget--; *budget < 0 {
		return nil, errTooLarge
	}
	out := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value}
	for _, ch := range n.Content {
		cc, err := standalone(ch, budget)
		if err != nil {
			return nil, err
		}
		out.Content = append(out.Content, cc)
	}
	return out, nil
}

// isNull reports whether n is YAML's null (null, ~ or nothing).
func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// sameNode reports whether a and b are the same value to cloud-init:
// equal trees of equal tags and values, where a scalar's quoting counts
// (cloud-init reads YAML 1.1: plain yes is true, "yes" a string) and a
// collection's flow or block style does not.
func sameNode(a, b *yaml.Node) bool {
	const quoted = yaml.SingleQuotedStyle | yaml.DoubleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || a.Value != b.Value || len(a.Content) != len(b.Content) ||
		a.Kind == yaml.ScalarNode && (a.Style&quoted == 0) != (b.Style&quoted == 0) {
		return false
	}
	for i := range a.Content {
		if !sameNode(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// flowLine is n in YAML flow style on one line, cut after 60 characters:
// what `rackboot render` shows of a cloud_config value.
func flowLine(n *yaml.Node) string {
	var flow func(*yaml.Node) *yaml.Node
	flow = func(n *yaml.Node) *yaml.Node {
		out := *n
		if n.Kind != yaml.ScalarNode {
			out.Style |= yaml.FlowStyle
		} else if strings.Contains(n.Value, "\n") {
			out.Style = yaml.DoubleQuotedStyle
		}
		out.Content = nil
		for _, ch := range n.Content {
			out.Content = append(out.Content, flow(ch))
		}
		return &out
	}
	b, err := yaml.Marshal(flow(n))
	if err != nil {
		return "?"
	}
	s := strings.TrimSpace(string(b))
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return s
}
