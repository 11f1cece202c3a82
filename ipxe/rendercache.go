package ipxe

import (
	"strings"
	"sync"
	"weak"

	"github.com/rackboot/rackboot/profiles"
)

// maxRendered bounds the scripts a renderCache keeps; when full it starts
// over. A script is a few hundred bytes.
const maxRendered = 1 << 14

// renderCache keeps rendered per-machine scripts. Render validates every
// value and checks the finished script, which is most of a script
// request's cost, while a rack boots the same few scripts again and again:
// the same machine, the same decision, the same install token (the
// registry keeps a pending machine's token). Render is a function of its
// arguments, and profiles are immutable once loaded, so the key is the
// arguments, with the profile entries by identity. Weak pointers keep a
// cached script from holding an old profiles snapshot alive after a
// reload: the new snapshot's entries are other objects, so other keys.
type renderCache struct {
	mu sync.RWMutex
	m  map[renderKey]string
}

type renderKey struct {
	base, api, ca, peers    string // the Appliance
	mac                     string
	arch, platform, uuid    string
	outcome, token, message string
	host                    weak.Pointer[profiles.Host]
	installer               weak.Pointer[profiles.Installer]
}

func keyOf(a Appliance, f Facts, d Decision) renderKey {
	return renderKey{
		base: a.Base, api: a.API, ca: a.CA, peers: strings.Join(a.Peers, " "), mac: string(f.MAC), arch: f.Arch, platform: f.Platform, uuid: f.UUID,
		outcome: d.Outcome, token: d.Token, message: d.Message,
		host: weak.Make(d.Host), installer: weak.Make(d.Installer),
	}
}

// render is Render, from the cache when it rendered the same before.
// Errors are not cached: they are logged each time.
func (c *renderCache) render(a Appliance, f Facts, d Decision) (string, error) {
	k := keyOf(a, f, d)
	c.mu.RLock()
	s, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	s, err := Render(a, f, d)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxRendered {
		c.m = make(map[renderKey]string)
	}
	c.m[k] = s
	c.mu.Unlock()
	return s, nil
}
