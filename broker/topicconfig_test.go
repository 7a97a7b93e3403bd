package broker

import (
	"testing"
	"time"
)

// TestConfigDurationsSaturate: segment.ms and delete.retention.ms at the
// largest value they accept (Kafka's Long.MAX_VALUE, "forever") are the
// longest duration, not an overflow into a negative one (a segment
// rolled at every append, every tombstone dropped at once); ordinary
// values convert exactly.
func TestConfigDurationsSaturate(t *testing.T) {
	c, err := ParseTopicConfig(map[string]string{"segment.ms": "9223372036854775807", "delete.retention.ms": "9223372036854775807"})
	if err != nil {
		t.Fatal(err)
	}
	const century = 100 * 365 * 24 * time.Hour
	if c.SegmentAge() < century || c.DeleteRetention() < century {
		t.Fatalf("segment.ms and delete.retention.ms of Long.MAX_VALUE: %v, %v", c.SegmentAge(), c.DeleteRetention())
	}
	c, err = ParseTopicConfig(map[string]string{"segment.ms": "1500", "delete.retention.ms": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SegmentAge() != 1500*time.Millisecond || c.DeleteRetention() != 0 {
		t.Fatalf("segment.ms 1500, delete.retention.ms 0: %v, %v", c.SegmentAge(), c.DeleteRetention())
	}
}
