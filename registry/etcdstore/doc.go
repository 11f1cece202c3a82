// Package etcdstore is the registry.Shared backend on etcd: the fleet's
// records, attempts, agent logs and blobs, and what several appliances
// sharing them must agree on (secrets, presence, one leader) or tell each
// other (a best-effort message bus). It is the only rackboot package that
// imports the etcd client; the daemon links it, the agent never does.
//
// # Keys
//
// Every key lives under Config.Prefix (default "/rackboot/"):
//
//	hosts/MAC                    HostRecord (JSON, registry.EncodeUpdate)
//	attempts/MAC/ID              Attempt (JSON), ID as %016x so key order is ID order
//	logidx/MAC/ID                the kept batches of a log: first, last, sizes
//	logs/MAC/ID/SEQ              one AppendLog batch (registry.EncodeBatch), SEQ as %08x
//	blobs/KEY                    PutBlob values
//	secret/NAME                  Secret, created once
//	appliances/ID                Announce, on this Store's lease
//	bus/ID/SEQ                   Publish, on a short lease of its own
//	leader/LEASE                 Lead (concurrency.Election)
//
// # Consistency
//
// Records, attempts, logs, deletes, blobs and secrets are linearizable:
// each change is one etcd transaction guarded by the ModRevision of one key
// it read (the host record, the log's index), retried from a fresh read
// when another writer came first, so two appliances updating one machine
// never lose or double an update. A transaction whose outcome etcd leaves
// unknown (a timeout or a lost leader after it was sent) is resolved by
// reading the key again: if it holds the bytes this call wrote, the call
// committed; if another write is first, the call is retried; when neither
// can be told, the error is returned rather than risk applying fn twice.
// Every call runs under Config.CallTimeout and clientv3.WithRequireLeader,
// so a member cut off from its peers answers at once and the client moves
// on to another. docs/etcd-groundwork.md has the measurements.
//
// Host is the exception: it answers from a cache (below), current as of
// this appliance's last watch event or own write.
//
// Presence (Announce) and the bus (Publish, Subscribe) are best effort: an
// entry vanishes within about Config.LeaseTTL of an appliance's death; a
// message is lost when the store is unreachable, or compacted away before a
// slow subscriber read it. Lead gives one leader at a time as long as
// leases are honoured; its context ends when the session's lease is lost.
//
// # Reads of Host
//
// Host is called on every iPXE script and every agent request (to check the
// install token), so it answers from memory: a copy of the hosts/ prefix,
// decoded once per stored value, loaded by one read of the prefix and kept
// current by a watch from the revision after that read. Each Update and
// Delete puts what it wrote into the cache at its transaction's revision,
// so an appliance reads its own writes at once, before the watch brings
// them. Changes are kept by revision, whichever of the watch and the own
// write comes first; a deletion leaves a tombstone until the watch has
// passed it, so a late older put cannot bring a deleted record back. A MAC
// the cache does not hold is not found, without a call to etcd.
//
// Host is therefore current as of this appliance's last watch event or own
// write: another appliance's write is seen once the watch delivers it,
// about a millisecond later between appliances on one network. That bound
// is enough because a read by Host never decides a change: every state
// change goes through Update (or Delete), whose compare-and-swap is guarded
// by a fresh linearizable read, so a stale read can only delay a decision
// (a script served from the state before, a token refused that a moment
// later is valid), never commit a wrong one. (registry.Registry.AppendLog
// is the one write keyed by what Host read, the attempt whose log a batch
// extends; a batch racing a Reinstall or Delete could already land beside
// it before the cache, and the window now includes the watch's delay.)
// Hosts, the administrator's view, reads etcd every time.
//
// While the watch is broken (no leader, compacted, canceled, closed by the
// client) the cache is not current and Host reads etcd, as every call did
// before the cache; it is loaded and watched again after a back-off
// (retryMin to retryMax). What the cache cannot see is a watch stream the
// client re-opens by itself on another member after a connection fails:
// until it is resumed, Host may lag by that long (the client resumes it
// from the last revision delivered, so nothing is lost). A write whose
// outcome was unknown and was then found applied (commit's resolve)
// reaches the cache through the watch only. The watch starts with the
// first call to Host.
//
// # What the etcd operator must provide
//
//   - TLS with client certificates (--client-cert-auth): secrets such as the
//     install-token key live in the store.
//   - Three or five members; every appliance is given all their endpoints.
//   - --pre-vote=true on etcd 3.4 (Debian 12's etcd-server), whose default
//     lets a member returning from a partition depose a healthy leader.
//   - Auto-compaction (--auto-compaction-mode periodic
//     --auto-compaction-retention 1h), and a defragmentation now and then:
//     history otherwise grows until etcd refuses every write (NOSPACE).
//   - The default limits (128 operations per transaction, 1.5 MiB per
//     request) are enough: old log batches are dropped with one range
//     delete, and a batch is at most registry.MaxLogBytes.
package etcdstore
