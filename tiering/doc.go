// Package tiering moves sealed segments to object storage and reads them
// back: the object keys and the per-partition manifest snapshot that make
// a bucket self-describing, the upload of one segment (encode, PUT with
// retries), and the remote reader that serves an offset range from an
// object with range GETs of just the frames it needs.
//
// The order that keeps acknowledged data safe is the broker's, using these
// pieces: sealed segment → sealed object → PUT → manifest entry committed
// in etcd (fenced) → snapshot → only then, and only when local retention
// asks for it, the local segment is deleted.
//
// Bucket layout (under the store's prefix):
//
//	topics/<topic>.<topic-id>/<partition>/<base:020d>-<last:020d>-e<epoch>.seg   sealed objects
//	topics/<topic>.<topic-id>/<partition>/manifest.json                          the partition's manifest snapshot
package tiering
