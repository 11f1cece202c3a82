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
// Presence (Announce) and the bus (Publish, Subscribe) are best effort: an
// entry vanishes within about Config.LeaseTTL of an appliance's death; a
// message is lost when the store is unreachable, or compacted away before a
// slow subscriber read it. Lead gives one leader at a time as long as
// leases are honoured; its context ends when the session's lease is lost.
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
