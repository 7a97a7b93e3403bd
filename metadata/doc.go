// Package metadata is Strata's shared state in etcd: the key schema, and
// stores for topics, partition state and leadership, brokers, and
// consumer groups.
//
// # Key schema
//
// Every key lives under the cluster prefix /strata/<cluster>/. Values are
// JSON.
//
//	key                                         value                                   lifetime
//	brokers/<id>                                {"id","address","rack"}                 the broker's session lease
//	topics/<name>                               {"name","id","partitions","config",     until deleted
//	                                             "created_ms"}
//	partitions/<topic>/<p>/epoch                {"epoch","broker_id","run_start"}       from the first leadership until the topic is deleted; epoch never decreases
//	partitions/<topic>/<p>/leader               {"broker_id","epoch"}                   the leader's session lease
//	assignments/<topic>/<p>                     {"broker_id"}                           written by the controller (fenced by its election key); deleted with the topic
//	partitions/<topic>/<p>/state                {"log_start_offset","high_watermark"}   from the leader's first write until the topic is deleted
//	partitions/<topic>/<p>/segments/<base:020d> {"key","base_offset","last_offset",    until retention expires it, compaction replaces it, or
//	                                             "max_timestamp","records","size",      the topic is deleted; every change written fenced
//	                                             "raw_size","epoch","uploaded_ms",      (ChangeManifest)
//	                                             "producers"}
//	partitions/<topic>/<p>/compaction           {"cleaned_end","dirty_ratio",           from the first compaction run until the topic is
//	                                             "kept_tombstones","oldest_tombstone_ms", deleted; written fenced by the leader
//	                                             "last_run_ms","last_run_duration_ms",
//	                                             "objects_in","objects_out","bytes_in",
//	                                             "bytes_out","records_removed",
//	                                             "tombstones_removed"}
//	garbage/<since_ms:020d>-<nonce>             {"keys","topic","partition","since_ms", written with the manifest change that stopped
//	                                             "reason"}                              referencing the objects; deleted (fenced by the
//	                                                                                    controller's election key) once the controller's
//	                                                                                    sweep deleted them, the grace period after since_ms
//	groups/<group>/coordinator                  the coordinating broker's id            the coordinator's session lease
//	groups/<group>/state                        {"group","epoch","assignor","members":  written by the coordinator (fenced by the coordinator
//	                                             [{"id","generation","client_id",       key) until the group is deleted
//	                                             "topics","session_timeout_ms",
//	                                             "rebalance_timeout_ms","assigned"}],
//	                                             "updated_ms"}
//	offsets/<group>/<topic>/<p>                 {"offset","committed_ms"}               written by the coordinator (fenced) or a reset; until the group is deleted
//	controller/<lease>                          the campaigning broker's id             its session lease; the oldest is the controller
//	wal/<broker:010d>/<seq:020d>[.<part>]       {"key","broker_id","seq","entries":     from the WAL commit (fenced by every entry's leader key)
//	                                             [{"topic","topic_id","partition",      until uploaded segments cover every entry (the
//	                                             "epoch","base_offset","last_offset",   controller's GC)
//	                                             "pos","len","crc"}]}
//
// # Leadership and fencing
//
// Creating a topic writes only topics/<name> (etcd bounds a transaction to
// 128 operations, and a topic may have thousands of partitions); a
// partition's keys appear with its first leader, and a missing state key
// reads as offsets zero.
//
// A broker becomes a partition's leader in one transaction that requires
// the topic key unchanged (the same incarnation), the leader key absent (or
// left by the broker's own lease), increments partitions/<t>/<p>/epoch, and
// puts the leader key bound to the broker's lease. The returned Leadership
// remembers the leader key's mod revision. Every write that depends on
// leadership (partition state, manifest entries, WAL commits) is a
// transaction comparing the leader key's mod revision with the
// Leadership's: once the lease expires, or another broker takes over, the
// key is gone or rewritten and the write fails with ErrFenced. A deposed
// leader can never commit.
//
// # Manifest changes of the background workers
//
// Retention and compaction change a partition's manifest with
// ChangeManifest: one transaction, fenced by the leadership, that removes
// entries (each must still be the entry the caller saw, naming the same
// object: the transaction compares the mod revision read just before;
// ErrManifestChanged otherwise, and the broker reads its view again), puts
// new ones (a put of a removed base offset replaces it), and records the
// objects it stops referencing in one garbage record - with retention's
// new log start in the state key, or compaction's status, in the same
// transaction. The objects of a garbage record are deleted only once the
// grace period has passed since_ms, so a reader holding the old manifest
// keeps working; garbage records live outside partitions/, so deleting a
// topic does not lose them. At most MaxManifestChange entries change in
// one transaction (etcd's 128 operations).
//
// # Consumer groups
//
// A group's coordinator is the broker whose session lease holds
// groups/<group>/coordinator (AcquireGroupCoordinator: created when
// absent, or taken over from the same lease with a new mod revision). The
// coordinator writes the group's state and committed offsets with
// CommitGroup, one transaction per up to 120 keys, each comparing the
// coordinator key's mod revision with its GroupFence: a deposed
// coordinator writes nothing (ErrFenced). The state lists every member
// that may own partitions, so a new coordinator knows whom to wait for;
// a member's "assigned" is informative (describe), not trusted.
//
// ResetGroupOffsets and DeleteGroup (any broker, for the CLI) require the
// state to list no members (ErrGroupNotEmpty) and compare the state key's
// mod revision in the same transaction: a coordinator admitting a member
// writes the state first, so a reset either lands before the member
// (which then reads the reset offsets) or fails. A reset of more than 120
// partitions takes several transactions: one racing a join fails with the
// ones before it applied (run it again once the group is empty).
package metadata
