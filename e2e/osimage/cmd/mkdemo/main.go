// Command mkdemo builds the demo OS images (demo-1.0 and demo-1.1 unless
// versions are named) and prints each one's manifest as JSON.
//
//	mkdemo [-dir DIR] [-kernel VMLINUZ] [VERSION...]
//
// Without -kernel it fetches the Debian kernel with e2e/lab, which needs
// root.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/rackboot/rackboot/e2e/osimage"
)

func main() {
	dir := flag.String("dir", "", "where to write the images (default: the lab cache's osimage directory)")
	kernel := flag.String("kernel", "", "the kernel to boot, ROOT/boot/vmlinuz-VERSION (default: fetched by e2e/lab)")
	flag.Parse()
	versions := flag.Args()
	if len(versions) == 0 {
		versions = []string{"demo-1.0", "demo-1.1"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	for _, v := range versions {
		im, err := osimage.Build(ctx, osimage.Config{Version: v, Kernel: *kernel, Dir: *dir, Log: log})
		if err != nil {
			fmt.Fprintln(os.Stderr, "mkdemo:", err)
			os.Exit(1)
		}
		if err := enc.Encode(im); err != nil {
			fmt.Fprintln(os.Stderr, "mkdemo:", err)
			os.Exit(1)
		}
	}
}
