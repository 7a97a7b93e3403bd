// Package compaction rewrites a partition's tiered segments (DESIGN.md,
// "Background workers"): key-based compaction of topics whose
// cleanup.policy has compact, and the merging of small adjacent sealed
// segments toward segment.bytes.
//
// A compaction run (Run with Config.Compact) works as Kafka's log cleaner
// does, on sealed objects:
//
//  1. It maps the dirty entries of the manifest (those holding offsets
//     from the status's CleanedEnd on, one merged across it included, as
//     many as Config.MaxMapBytes of keys allow) to the offset of each
//     key's latest record.
//  2. It rewrites the manifest from its first entry through the last
//     mapped one, in order: a record is kept when it is the latest of its
//     key (or its key is not mapped: the clean part already holds one
//     record per key), when it has no key, or when it is in a control
//     batch; a tombstone (a null value) is kept until delete.retention.ms
//     after its timestamp. Offsets keep their gaps, as in Kafka: a batch
//     keeps its base offset and stretches over the dropped offsets after
//     it, so every output object is in the sealed-object format, with
//     contiguous batches; an output's entry starts at its first input's
//     base, before its first batch if the records there went, so the
//     manifest keeps no gap. The manifest's last record is always kept
//     (even an expired tombstone, until more data comes), so its last
//     batch stays and the uploaded end never moves back.
//  3. Consecutive inputs are grouped into outputs of up to segment.bytes
//     (small segments merge); each group's output is PUT as a new object
//     (a key with a nonce: tiering.CompactedObjectKey) and then swapped in
//     for its inputs in one fenced manifest change, which records the
//     inputs as garbage: they are deleted after the grace period, so a
//     reader holding the old manifest keeps working. Groups are swapped in
//     offset order, so a run cut short anywhere (SIGKILL) leaves a
//     consistent log: a dropped tombstone's older values were dropped by
//     an earlier swap. An input that would come out unchanged, alone, is
//     left as it is.
//
// Without Config.Compact, Run only merges: MergePlan picks runs of small
// adjacent segments of similar size (a size-tiered plan, so that a slow
// partition's many small segments are not rewritten again and again).
//
// The seams are small: Store (the bucket) and Committer (the fenced swap,
// implemented by the broker, which also updates what its readers see).
// A Limiter bounds the bytes a broker's runs read per second.
package compaction
