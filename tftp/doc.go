// Package tftp is rackboot's read-only TFTP server (RFC 1350). It serves the
// first-stage network boot programs, the iPXE binaries of about 100 KB to
// 1 MB, from one root directory to PXE firmware; everything after iPXE goes
// over HTTP.
//
// The protocol engine is github.com/pin/tftp/v3. This package owns what the
// library leaves to its user: confining names to the root (os.Root, plus
// stricter name rules that say why a name is refused), refusing writes,
// serving the boot programs from memory, a cap on concurrent transfers,
// timing that survives packet loss (a first retransmission after 50 ms,
// doubling up to 1 s), a bounded shutdown, and one log line, counter update
// and OnTransfer call per request.
//
// Options honoured: blksize (RFC 2348, capped at MaxBlockSize) and tsize
// (RFC 2349, from the file's size). The timeout option (RFC 2349) and
// windowsize (RFC 7440) are left out of the OACK by the library, so clients
// fall back to the server's timing and to lock-step transfers.
//
// Firmware behaviour handled here: EDK2 asks for the file once only to learn
// its size and ends that transfer with ERROR 8 after the OACK (logged at
// debug level as a Probe, not a failure); shim and GRUB probe for optional
// files that may be missing (NotFound, one info line each); PXE ROMs and
// GRUB may put a leading "/" on names, which is taken as the root.
package tftp
