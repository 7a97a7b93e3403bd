package rpcbuf

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

func TestPoolTiers(t *testing.T) {
	for _, c := range []struct{ n, cap int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {65_536, 65_536},
		{65_600, 131_072}, {8 << 20, 8 << 20}, {8<<20 + 1, 8<<20 + 1},
	} {
		b := Pool.Get(c.n)
		if len(*b) != c.n || cap(*b) != c.cap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", c.n, len(*b), cap(*b), c.n, c.cap)
		}
		Pool.Put(b)
	}
}

func TestPoolReusesOnlyItsOwnBuffers(t *testing.T) {
	// A buffer of a capacity no tier has is dropped, not handed out again
	// as a tier's (which would be too small, or oversized).
	odd := make([]byte, 1000)
	Pool.Put(&odd)
	for range 100 {
		b := Pool.Get(700)
		if cap(*b) != 1024 {
			t.Fatalf("Get(700) has capacity %d, want 1024", cap(*b))
		}
		Pool.Put(b)
	}
}

// Buffers come back uncleared: a message marshalled into a buffer that
// held a longer one must decode to itself, with nothing of the old one.
func TestCodecRoundTripInReusedBuffers(t *testing.T) {
	big := &stratav1.ProduceRequest{Acks: stratav1.Acks_ACKS_LEADER, Partitions: []*stratav1.PartitionRecords{
		{Topic: "big", Partition: 7, Records: bytes.Repeat([]byte{0xAB}, 60_000)},
	}}
	for i := range 50 {
		data, err := Codec.Marshal(big)
		if err != nil {
			t.Fatal(err)
		}
		data.Free()
		small := &stratav1.ProduceRequest{Partitions: []*stratav1.PartitionRecords{
			{Topic: "small", Partition: int32(i), Records: bytes.Repeat([]byte{byte(i)}, 40_000+i)},
		}}
		data, err = Codec.Marshal(small)
		if err != nil {
			t.Fatal(err)
		}
		if data.Len() != proto.Size(small) {
			t.Fatalf("marshalled %d bytes, want %d", data.Len(), proto.Size(small))
		}
		got := &stratav1.ProduceRequest{}
		if err := Codec.Unmarshal(data, got); err != nil {
			t.Fatal(err)
		}
		data.Free()
		if !proto.Equal(got, small) {
			t.Fatalf("round %d: decoded %d bytes of topic %q, want the %d bytes of %q", i, len(got.GetPartitions()[0].GetRecords()), got.GetPartitions()[0].GetTopic(), 40_000+i, "small")
		}
	}
}

func TestCodecRefusesOtherTypes(t *testing.T) {
	if _, err := Codec.Marshal("not a message"); err == nil {
		t.Fatal("Marshal of a string: no error")
	}
	if err := Codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{1})}, 42); err == nil {
		t.Fatal("Unmarshal into an int: no error")
	}
}
