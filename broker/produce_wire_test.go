package broker

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// sameRequest reports how got differs from want (protobuf's decoding), or
// "" when it does not.
func sameRequest(got, want *stratav1.ProduceRequest) string {
	if got.GetRequestId() != want.GetRequestId() || got.GetAcks() != want.GetAcks() || got.GetTimeoutMs() != want.GetTimeoutMs() {
		return "request fields differ"
	}
	if len(got.GetPartitions()) != len(want.GetPartitions()) {
		return "partition counts differ"
	}
	for i, g := range got.GetPartitions() {
		w := want.GetPartitions()[i]
		if g.GetTopic() != w.GetTopic() || g.GetPartition() != w.GetPartition() || !bytes.Equal(g.GetRecords(), w.GetRecords()) {
			return "partition fields differ"
		}
	}
	return ""
}

func seedProduceRequests() [][]byte {
	full := &stratav1.ProduceRequest{RequestId: 1<<40 + 7, Acks: stratav1.Acks_ACKS_ALL, TimeoutMs: 1500, Partitions: []*stratav1.PartitionRecords{
		{Topic: "orders", Partition: 3, Records: bytes.Repeat([]byte{0xab}, 300)},
		{Topic: "ünïcode", Partition: -1},
		{Records: []byte{1}},
	}}
	var seeds [][]byte
	for _, m := range []*stratav1.ProduceRequest{full, {}, {RequestId: 9}} {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, b)
	}
	b := seeds[0]
	// Unknown fields (varint, fixed, bytes, group), a known field with
	// another wire type, a repeated scalar, invalid UTF-8 in a topic, a
	// field number above the maximum, truncations.
	extra := protowire.AppendTag(nil, 15, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 5)
	extra = protowire.AppendTag(extra, 16, protowire.Fixed64Type)
	extra = protowire.AppendFixed64(extra, 1)
	extra = protowire.AppendTag(extra, 17, protowire.BytesType)
	extra = protowire.AppendBytes(extra, []byte("xyz"))
	extra = protowire.AppendTag(extra, 18, protowire.StartGroupType)
	extra = protowire.AppendTag(extra, 18, protowire.EndGroupType)
	extra = protowire.AppendTag(extra, 1, protowire.BytesType) // request_id as bytes: unknown
	extra = protowire.AppendBytes(extra, []byte("id"))
	extra = protowire.AppendTag(extra, 1, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 42) // the last request_id wins
	seeds = append(seeds, append(append([]byte(nil), b...), extra...))
	bad := protowire.AppendTag(nil, 4, protowire.BytesType)
	bad = protowire.AppendBytes(bad, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff, 0xfe}))
	seeds = append(seeds, bad)
	seeds = append(seeds, protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3))
	seeds = append(seeds, protowire.AppendTag(nil, 2, protowire.EndGroupType))
	for _, cut := range []int{1, 2, 5, len(b) / 2, len(b) - 1} {
		seeds = append(seeds, b[:cut])
	}
	return seeds
}

// TestDecodeProduceRequestMatchesProtobuf: on valid, extended and
// malformed requests the in-place decoder accepts what protobuf accepts,
// with the same fields, and its records alias the input.
func TestDecodeProduceRequestMatchesProtobuf(t *testing.T) {
	for i, b := range seedProduceRequests() {
		var want, got stratav1.ProduceRequest
		werr := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, &want)
		gerr := decodeProduceRequest(b, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("seed %d: protobuf says %v, decodeProduceRequest %v", i, werr, gerr)
		}
		if werr != nil {
			continue
		}
		if d := sameRequest(&got, &want); d != "" {
			t.Fatalf("seed %d: %s:\n got %v\nwant %v", i, d, &got, &want)
		}
		for _, p := range got.GetPartitions() {
			if r := p.GetRecords(); len(r) > 0 && (cap(r) != len(r) || !aliases(b, r)) {
				t.Fatalf("seed %d: records do not alias the input with a capped length", i)
			}
		}
	}
	var got stratav1.ProduceRequest
	if err := decodeProduceRequest(seedProduceRequests()[3], &got); err != nil || got.GetRequestId() != 42 {
		t.Fatalf("request id %d (%v), want the last one sent, 42", got.GetRequestId(), err)
	}
}

// aliases reports whether sub lies inside b.
func aliases(b, sub []byte) bool {
	for i := range b {
		if &b[i] == &sub[0] {
			return i+len(sub) <= len(b)
		}
	}
	return false
}

// FuzzDecodeProduceRequest: whatever the bytes, the in-place decoder
// agrees with protobuf on whether they are a ProduceRequest and on every
// field of one.
func FuzzDecodeProduceRequest(f *testing.F) {
	for _, b := range seedProduceRequests() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got stratav1.ProduceRequest
		werr := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, &want)
		gerr := decodeProduceRequest(b, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("protobuf says %v, decodeProduceRequest %v", werr, gerr)
		}
		if werr == nil {
			if d := sameRequest(&got, &want); d != "" {
				t.Fatalf("%s:\n got %v\nwant %v", d, &got, &want)
			}
		}
	})
}
