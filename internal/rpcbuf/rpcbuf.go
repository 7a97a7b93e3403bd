// Package rpcbuf is the buffer pool and protobuf codec of Strata's gRPC
// connections, on both ends (the broker's server and the client's
// connections).
//
// gRPC's default pool has tiers of 256 B, 4 KiB, 16 KiB, 32 KiB and 1 MiB
// and clears the whole capacity of every buffer it hands out. A produce
// request of 64 KiB of records therefore takes a 1 MiB buffer and clears
// all of it, once where the client marshals it and twice where the broker
// reads and unmarshals it: at 100 B records and 468,603 records/s those
// clears were 9 % of the bench client's CPU samples and 5 % of the
// broker's (docs/benchmarks.md, "Buffers and hand-offs"), each one a
// megabyte written through the caches.
//
// Pool has a tier for every power of two from 256 B to 8 MiB, so a
// message takes at most twice its size, and it does not clear: every user
// of a pooled buffer in gRPC's transport and in Codec writes the length it
// asked for (a frame's payload, a message read in full, a marshalled
// message) before anything reads it.
package rpcbuf

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

const (
	minShift = 8  // 256 B: the smallest pooled buffer
	maxShift = 23 // 8 MiB: the largest; bigger buffers are allocated each time
)

// Pool is a mem.BufferPool with power-of-two tiers from 256 B to 8 MiB
// that hands out buffers without clearing them. Get(n) returns a buffer
// of length n whose contents are unspecified.
var Pool mem.BufferPool = &pool{}

type pool struct {
	tiers [maxShift - minShift + 1]sync.Pool
}

// tier is the index of the smallest tier holding n bytes, or -1 when n is
// larger than the largest.
func tier(n int) int {
	s := bits.Len(uint(max(n, 1) - 1))
	if s > maxShift {
		return -1
	}
	return max(s, minShift) - minShift
}

func (p *pool) Get(n int) *[]byte {
	t := tier(n)
	if t < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(t+minShift))
	return &b
}

// Put takes back a buffer from Get (or a prefix of one). A buffer whose
// capacity is not exactly a tier's size did not come from this pool and
// is left to the collector.
func (p *pool) Put(b *[]byte) {
	c := cap(*b)
	t := tier(c)
	if t < 0 || c != 1<<(t+minShift) {
		return
	}
	p.tiers[t].Put(b)
}

// Codec is gRPC's protobuf codec (registered as "proto": it changes no
// content type on the wire) with its buffers from Pool. gRPC's own uses
// the default pool, which only a process-wide setting changes.
var Codec encoding.CodecV2 = codec{}

type codec struct{}

func message(v any) (proto.Message, error) {
	switch m := v.(type) {
	case protoadapt.MessageV2:
		return m, nil
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(m), nil
	}
	return nil, fmt.Errorf("rpcbuf: message is %T, want a proto.Message", v)
}

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, err := message(v)
	if err != nil {
		return nil, err
	}
	// Size then UseCachedSize: the message is sized once.
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	b := Pool.Get(size)
	out, err := opts.MarshalAppend((*b)[:0], m)
	if err != nil {
		Pool.Put(b)
		return nil, err
	}
	if len(out) != size || &out[0] != &(*b)[0] {
		// Never expected (the size was computed just before), but the
		// pooled buffer must hold exactly what was marshalled.
		Pool.Put(b)
		return mem.BufferSlice{mem.SliceBuffer(out)}, nil
	}
	*b = out
	return mem.BufferSlice{mem.NewBuffer(b, Pool)}, nil
}

// PooledUnmarshaler is a message that decodes itself from a buffer of
// Pool which it owns from then on: it may alias and modify the bytes, and
// gives the buffer back with Pool.Put once nothing refers to them (or
// leaves it to the collector), whether or not it returns an error. The
// codec copies a received message into such a buffer, once, where
// protobuf would copy every bytes field into memory allocated for it.
type PooledUnmarshaler interface {
	UnmarshalPooled(b *[]byte) error
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if u, ok := v.(PooledUnmarshaler); ok {
		b := Pool.Get(data.Len())
		data.CopyTo(*b)
		return u.UnmarshalPooled(b)
	}
	m, err := message(v)
	if err != nil {
		return err
	}
	b := data.MaterializeToBuffer(Pool)
	defer b.Free()
	return proto.Unmarshal(b.ReadOnlyData(), m)
}

func (codec) Name() string { return "proto" }

// ServerOptions make a gRPC server use Pool and Codec.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{experimental.BufferPool(Pool), grpc.ForceServerCodecV2(Codec)}
}

// DialOptions make a gRPC client connection use Pool and Codec.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{experimental.WithBufferPool(Pool), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(Codec))}
}
