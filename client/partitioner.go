package client

import (
	"encoding/binary"
	"sync"
)

// Partitioner chooses the partition of a record. It is compatible with the
// Kafka Java client's default: a record with a key goes to
// toPositive(murmur2(key)) % partitions, so keyed data lands where a Kafka
// producer would put it; a record without a key sticks to one partition
// until that partition's batch is full, then moves on (KIP-480).
type Partitioner interface {
	// Partition returns the partition of a record with the given key.
	Partition(topic string, key []byte, partitions int32) int32
	// BatchFull tells the partitioner that the sticky partition's batch of
	// topic was sent, so the next keyless records go elsewhere.
	BatchFull(topic string, partitions int32)
}

// KeyPartition is Kafka's keyed partition: toPositive(murmur2(key)) % n.
func KeyPartition(key []byte, partitions int32) int32 {
	return int32(uint32(murmur2(key))&0x7fffffff) % partitions
}

// murmur2 is the 32-bit MurmurHash2 variant of Kafka's Utils.murmur2
// (seed 0x9747b28c), returning the same signed value.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// stickyPartitioner is the default Partitioner.
type stickyPartitioner struct {
	mu     sync.Mutex
	sticky map[string]int32
	next   uint32
}

// NewDefaultPartitioner returns the Kafka-compatible default partitioner.
func NewDefaultPartitioner() Partitioner {
	return &stickyPartitioner{sticky: map[string]int32{}}
}

func (p *stickyPartitioner) Partition(topic string, key []byte, partitions int32) int32 {
	if key != nil {
		return KeyPartition(key, partitions)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sticky[topic]
	if !ok || s >= partitions {
		s = p.pickLocked(partitions, -1)
		p.sticky[topic] = s
	}
	return s
}

func (p *stickyPartitioner) BatchFull(topic string, partitions int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.sticky[topic]
	if !ok {
		old = -1
	}
	p.sticky[topic] = p.pickLocked(partitions, old)
}

// pickLocked picks the next partition in rotation, other than avoid when
// there is a choice.
func (p *stickyPartitioner) pickLocked(partitions, avoid int32) int32 {
	p.next++
	s := int32(p.next % uint32(partitions))
	if s == avoid && partitions > 1 {
		s = (s + 1) % partitions
	}
	return s
}
