// Package profiles is rackboot's model of the fleet: the hosts an admin
// describes in YAML files, keyed by MAC address, the groups they share
// settings through, the catalog of OS versions, and the disk layouts.
//
// Load reads a directory of YAML files strictly (unknown keys are errors),
// validates every value that will later reach an iPXE script, a kernel
// command line, a file path or a config drive, resolves each host's
// effective profile (defaults ← matching groups ← host, see resolve.go),
// and returns an immutable Set. Every error names its file and line.
//
// A Watcher keeps the current Set of a directory, follows edits, and swaps
// snapshots atomically, keeping the old one when an edit is invalid. Plan
// turns a host into what the installer agent does to its disk, config drive
// included; Schema prints the JSON Schema (draft-07) editors validate the files with.
//
// The package is pure: it opens no sockets and serves nothing. README.md
// describes the YAML for admins.
package profiles
