// Package dhcp is rackboot's proxy-DHCP server: it tells PXE firmware and
// iPXE what to boot, and nothing else.
//
// A proxy (PXE specification 2.1, section 2.2.5) runs beside the site's own
// DHCP server. The site server hands out addresses; the proxy only answers
// clients that announce themselves as network-boot firmware (option 60
// starting with "PXEClient" or "HTTPClient" and option 93, the client
// architecture, RFC 4578) and its answers never carry an address: yiaddr is
// always 0.0.0.0. A DHCPDISCOVER gets a DHCPOFFER and a DHCPREQUEST a
// DHCPACK; everything else, and every client that is not a PXE client, gets
// silence, so the proxy can share a segment with any DHCP server.
//
// The package has two halves. [Reply] is a pure function from a request and
// what rackboot knows about the client to the answer (or the reason for
// silence); it holds the architecture table and the iPXE loop breaking and
// is tested with golden files. [Server] is the socket loop around it, one per
// boot interface and port, and [RAResponder] is an optional IPv6 helper.
// The loop reads and sends in batches (recvmmsg, sendmmsg) and answers the
// common requests by patching the request's fields into an answer Reply
// encoded once per kind (encode.go), so that a rack powering on at once
// costs a few hundred nanoseconds of decision per client; tests hold those
// answers to Reply's bytes.
//
// Firmware quirks the answers are shaped by:
//
//   - iPXE ignores a proxy answer that has a boot file but no next-server,
//     and reports "Nothing to boot". Every answer therefore sets siaddr (and
//     sname) to the server address beside the file name.
//   - PXE ROMs only boot the file of a proxy answer at once when option 43
//     carries PXE_DISCOVERY_CONTROL (sub-option 6) with bit 3 set: "use the
//     boot file name, skip boot-server discovery and menus".
//   - The boot file goes into both the legacy file header field and option
//     67. The header field holds 127 bytes; a longer name is left out of it
//     rather than truncated into a wrong one.
//   - Loop breaking. A PXE ROM chain-loads iPXE, and the chained iPXE sends
//     its own DHCPDISCOVER, byte-identical to the one of an iPXE NIC ROM. The
//     only rule that never loops is: a client that says it is iPXE (user class
//     "iPXE", raw or RFC 3004 encoded, or option 175 present) gets the URL of
//     the HTTP boot script; anyone else gets an iPXE binary over TFTP.
//   - Port 4011. A proxy answer whose option 43 sets the discovery-control
//     bit (every answer here does) is booted at once: EDK2 and iPXE never ask
//     port 4011 then (testdata/firmware). A firmware that does ask, after a
//     proxy without that bit or on its own, completes its address exchange
//     with the site server and sends a DHCPREQUEST to the proxy's port 4011
//     from its own port 4011 (EDK2) or from port 68 (BIOS iPXE), and boots
//     the file of the DHCPACK. A reply therefore goes back to the address and
//     port the request came from, and is broadcast to port 68 only when the
//     client has no address yet.
//   - Speed. iPXE stops collecting proxy offers about three seconds after its
//     DHCP starts, so a proxy that answers late loses chained iPXE. The loop
//     does no blocking work per packet.
//   - IPv6. iPXE configures IPv6 in parallel with DHCPv4 and waits about 16
//     seconds for a router advertisement on an IPv4-only segment; any RA ends
//     the wait. [RAResponder] sends a null one on request.
package dhcp
