package registry

import "context"

// Shared is a Store several appliances use at once (registry/etcdstore).
// Beyond the records, which every Store keeps consistent, it carries what
// the appliances must agree on or tell each other: secrets made once by
// whichever appliance starts first, each appliance's presence, one leader
// for the work that must run once (staged rollouts), and live
// notifications (progress, new log lines, state changes) for the views of
// every appliance. docs/DESIGN.md, "Several appliances", says what is
// consistent and what is best effort.
type Shared interface {
	Store
	// ID names this appliance among those sharing the store.
	ID() string
	// Secret returns the secret called name. When the store has none yet
	// it stores gen's result, unless another appliance stored one first:
	// every appliance gets the same bytes.
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
	// Announce publishes this appliance's info (its URLs, profiles
	// digest) until the store is closed or the appliance dies, when the
	// entry vanishes within seconds; calling it again replaces the info.
	Announce(ctx context.Context, info []byte) error
	// Appliances returns the info of every announced appliance, by ID,
	// this one included.
	Appliances(ctx context.Context) (map[string][]byte, error)
	// Publish sends msg to the other appliances' subscribers. Delivery is
	// best effort: a message may be lost when the store is unreachable,
	// and it is not kept for an appliance that starts later.
	Publish(ctx context.Context, msg []byte) error
	// Subscribe calls fn, on one goroutine and in order, with each message
	// another appliance publishes from now until ctx ends. It returns when
	// ctx ends.
	Subscribe(ctx context.Context, fn func(from string, msg []byte)) error
	// Lead blocks until this appliance leads (one at a time among those
	// sharing the store), or ctx ends. The context it returns ends when
	// the appliance stops leading (its session with the store lost), so
	// work started under it stops at once.
	Lead(ctx context.Context) (context.Context, error)
}
