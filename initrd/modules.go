package initrd

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultModules are the drivers a server needs to reach its disks and its
// network: virtio for virtual machines, NVMe, AHCI/SATA and SCSI disks, and
// the common Intel and Mellanox NICs; the loop driver, through which the
// agent runs mkfs.xfs on a partition. Missing ones are skipped, so one list
// serves every kernel flavour.
var DefaultModules = []string{
	"virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net", "virtio_rng",
	"nvme", "ahci", "sd_mod", "sr_mod",
	"e1000", "e1000e", "igb", "ixgbe", "i40e", "ice", "mlx5_core", "bnxt_en", "tg3",
	"vfat", "nls_cp437", "nls_iso8859_1", "efivarfs", "loop",
}

// moduleDB is a kernel's modules.dep: every module's path (relative to the
// modules directory) and its dependencies.
type moduleDB struct {
	paths map[string]string   // module name → path
	deps  map[string][]string // path → dependency paths
}

// moduleName turns "kernel/drivers/net/virtio_net.ko.xz" into "virtio_net".
// Dashes and underscores are the same in module names.
func moduleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

func readModulesDep(dir string) (*moduleDB, error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("modules directory %s: %w (run depmod -b)", dir, err)
	}
	defer f.Close()
	db := &moduleDB{paths: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		// Build copies these paths from dir into the initramfs: one that
		// leads out of dir ("../../etc/shadow", "/etc/shadow") would put
		// a file of the build host in the installer (FuzzModulesDep).
		fields := strings.Fields(deps)
		for _, p := range append([]string{mod}, fields...) {
			if !filepath.IsLocal(p) {
				return nil, fmt.Errorf("%s line %d: module path %.64q is not inside the modules directory", filepath.Join(dir, "modules.dep"), n, p)
			}
		}
		db.paths[moduleName(mod)] = mod
		db.deps[mod] = fields
	}
	return db, sc.Err()
}

// resolve returns the module paths to load for names, dependencies first,
// each once, and the names that this kernel does not have.
func (db *moduleDB) resolve(names []string) (order []string, missing []string) {
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		// modules.dep lists the full transitive closure, but not in load
		// order: visit each dependency's own dependencies first.
		for _, d := range db.deps[p] {
			visit(d)
		}
		order = append(order, p)
	}
	for _, n := range names {
		p, ok := db.paths[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			missing = append(missing, n)
			continue
		}
		visit(p)
	}
	return order, missing
}
