// Package profiles is rackboot's model of the fleet: the hosts an admin
// describes in YAML files, keyed by MAC address, and what each of them boots.
//
// Load reads a directory of YAML files strictly (unknown keys are errors),
// validates every value that will later reach an iPXE script or a kernel
// command line, and returns an immutable Set. Errors name their file and line.
// The package is pure: it opens no sockets and serves nothing.
package profiles
