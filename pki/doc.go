// Package pki owns the appliance's TLS identity for the admin and agent
// APIs (docs/DESIGN.md, section 7): the CA rackboot generates at first
// start and keeps in its data directory, the server certificate it signs
// for the appliance's addresses (regenerated, the CA kept, when they
// change), the loading of an operator's certificate instead, and the trust
// anchor that agents and the CLI verify the server against.
//
// It uses the standard library only and imports nothing of rackboot.
package pki
