// Command mkdebian builds Debian 12 whole-disk images with
// osimage.BuildDebian (debian-12.1 unless versions are named), or finds
// them in the cache, and prints their manifests as a JSON array. It needs
// root and the Debian mirror.
//
//	mkdebian [-dir DIR] [-size BYTES] [-package NAME]... [-file PATH=CONTENT]... [VERSION...]
//
// -package and -file apply to every version named: build versions that
// differ one command at a time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/rackboot/rackboot/e2e/osimage"
)

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkdebian:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := osimage.DebianConfig{Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	var files list
	flag.StringVar(&cfg.Dir, "dir", "", "where to write the images (default: the lab cache's osimage directory)")
	flag.Int64Var(&cfg.DiskSize, "size", 0, "disk image size in bytes (default 1.5 GiB)")
	flag.Var((*list)(&cfg.Packages), "package", "a Debian package to install besides the image's own (repeatable)")
	flag.Var(&files, "file", "PATH=CONTENT: a file to write into the root file system (repeatable)")
	flag.Parse()
	for _, f := range files {
		p, content, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-file %q: want PATH=CONTENT", f)
		}
		cfg.Files = append(cfg.Files, osimage.RootFile{Path: p, Content: content})
	}
	versions := flag.Args()
	if len(versions) == 0 {
		versions = []string{"debian-12.1"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var images []*osimage.Image
	for _, v := range versions {
		cfg.Version = v
		im, err := osimage.BuildDebian(ctx, cfg)
		if err != nil {
			return err
		}
		images = append(images, im)
	}
	b, err := json.MarshalIndent(images, "", "  ")
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(b, '\n'))
	return err
}
