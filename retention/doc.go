// Package retention decides what a partition's retention expires and what
// in the bucket is garbage, and sweeps the garbage (DESIGN.md,
// "Background workers").
//
// The decisions are pure functions: Expired takes a log's segments, the
// clock and the limits and returns how many of the oldest expire (the
// broker applies it to the whole log with retention.ms/retention.bytes and
// to the hot tier with local.retention.ms/.bytes); Orphans takes a bucket
// listing and what the metadata references and returns the objects no one
// references any more. Acting on them is the caller's (the broker commits
// a fenced manifest change, then removes local files) or the Sweeper's.
//
// The Sweeper runs on the broker holding the cluster's election (the
// controller). One pass deletes, up to a bound:
//
//   - the objects of garbage records (written by manifest changes, see
//     metadata.ManifestChange) older than the grace period, then the
//     records;
//   - orphans: sealed objects, producer snapshots, manifest snapshots and
//     WAL objects that no manifest entry, live topic or WAL record
//     references and that are older than the grace period (left by a
//     crash between a PUT and its commit, or by a deleted topic). The
//     references are read before the bucket is listed, to keep only
//     candidates (at most the bound: the listing stops there), and again
//     after it, so that a commit landing meanwhile is seen.
//
// Readers holding an old manifest keep working for the grace period: an
// object leaves the bucket no sooner than that after the change that
// stopped referencing it.
package retention
