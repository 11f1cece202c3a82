package osimage

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
)

// namespace is the name-based UUID namespace of the demo OS's GUIDs: a
// random UUID drawn once, so the names hashed in it collide with no one
// else's.
const namespace = "\x5d\x3a\x6b\x2e\x8f\x47\x5c\x11\x9a\x61\x0e\x7c\x42\xd8\x9b\x05"

// nameUUID returns the RFC 9562 version 5 (SHA-1, name-based) UUID of
// version and what, such as ("demo-1.0", "esp"): the same image always
// gets the same disk and partition GUIDs, and two versions never share
// them.
func nameUUID(version, what string) string {
	h := sha1.New()
	h.Write([]byte(namespace))
	h.Write([]byte(version + "/" + what))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%08X-%04X-%04X-%04X-%012X",
		binary.BigEndian.Uint32(u[0:4]), binary.BigEndian.Uint16(u[4:6]), binary.BigEndian.Uint16(u[6:8]),
		binary.BigEndian.Uint16(u[8:10]), u[10:16])
}

// nameSerial returns a 32-bit number derived from version and what, for
// FAT volume IDs.
func nameSerial(version, what string) uint32 {
	h := sha1.Sum([]byte(version + "/" + what))
	return binary.LittleEndian.Uint32(h[:4])
}
