// Package examples is rackboot's example fleet: the YAML profiles of two
// racks, their shared groups and the catalog of versions and layouts. The
// files are documentation an admin can copy, and the fleet the end-to-end
// suite's example rack (e2e/demo/rack, TestRack) installs.
package examples

import "embed"

// FS holds the example fleet's profile files (*.yaml) at its root, ready to
// be written out as a --profiles directory.
//
//go:embed *.yaml
var FS embed.FS
