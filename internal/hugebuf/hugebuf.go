// Package hugebuf allocates large byte buffers that a process keeps for
// its whole life (the broker's upload buffers) outside the Go heap, on
// transparent huge pages where the kernel allows it.
//
// Two reasons. The Go runtime does not ask for huge pages, so where the
// kernel's setting is madvise (the default on Debian and Ubuntu) each
// 4 KiB page of a new buffer is a page fault of its own, which costs
// about 13 us on the project's benchmark VM (docs/benchmarks.md, "Huge
// pages"). And a buffer kept live in the Go heap raises the collector's
// heap goal by as much again, so the heap grows - page by page - to twice
// what the broker really uses.
package hugebuf

// Alloc returns a buffer of length 0 and capacity at least n. The memory
// is never freed: call it only for buffers kept until the process exits.
// Where memory cannot be mapped it comes from the Go heap.
func Alloc(n int) []byte {
	if n <= 0 {
		return nil
	}
	if b := alloc(n); b != nil {
		return b[:0]
	}
	return make([]byte, 0, n)
}
