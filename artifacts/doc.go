// Package artifacts serves the regular files of one directory over HTTP:
// kernels, initramfs images and disk images for the machines being
// installed, and the iPXE binaries for UEFI HTTP boot.
//
// It owns the rules of that serving: GET and HEAD only; Range, If-Range and
// conditional requests through http.ServeContent with an ETag that changes
// whenever the file does; no way out of the directory (the file system is
// reached through an os.Root, and "..", absolute names, NUL bytes, symbolic
// links that leave the directory and directories themselves are all 404,
// never a listing); and one log line per request saying which machine
// fetched what, how much and how fast.
package artifacts
