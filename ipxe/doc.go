// Package ipxe owns the HTTP endpoints iPXE talks to: the static first-stage
// script /boot.ipxe and the per-machine script /ipxe.
//
// Boot follows matchbox's two-stage pattern: /boot.ipxe is the same for every
// machine and chains /ipxe with the facts iPXE knows about itself (MAC,
// build architecture, platform, SMBIOS UUID) in the query. /ipxe parses and
// validates those facts, decides what the machine boots (Decide), lets the
// install lifecycle have its say when one is plugged in (Lifecycle, Follow:
// installer with a one-time token, local disk, or nothing) and renders the
// script (Render).
//
// Every value that reaches a script is validated or escaped here, even though
// profiles already validates its YAML: a script is a program the firmware
// runs, and a hostname or kernel argument carrying "${", "||" or a newline
// would become a command. Render checks its own output before returning it
// and refuses rather than emit anything it cannot prove harmless.
package ipxe
