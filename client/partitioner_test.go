package client

import "testing"

// The vectors are Kafka's own (clients UtilsTest.testMurmur2).
func TestMurmur2MatchesKafka(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := murmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestKeyPartitionIsStableAndInRange(t *testing.T) {
	p := NewDefaultPartitioner()
	for _, k := range []string{"", "a", "user-1", "foobar"} {
		first := p.Partition("t", []byte(k), 12)
		if first < 0 || first >= 12 {
			t.Fatalf("partition %d out of range", first)
		}
		p.BatchFull("t", 12)
		if again := p.Partition("t", []byte(k), 12); again != first {
			t.Fatalf("key %q moved from %d to %d", k, first, again)
		}
	}
}

func TestStickyPartitionForNullKeys(t *testing.T) {
	p := NewDefaultPartitioner()
	first := p.Partition("t", nil, 6)
	for range 10 {
		if got := p.Partition("t", nil, 6); got != first {
			t.Fatalf("keyless records left the sticky partition %d for %d", first, got)
		}
	}
	seen := map[int32]bool{first: true}
	for range 30 {
		prev := p.Partition("t", nil, 6)
		p.BatchFull("t", 6)
		next := p.Partition("t", nil, 6)
		if next == prev {
			t.Fatalf("BatchFull kept partition %d", prev)
		}
		seen[next] = true
	}
	if len(seen) != 6 {
		t.Fatalf("keyless records reached %d of 6 partitions", len(seen))
	}
}
