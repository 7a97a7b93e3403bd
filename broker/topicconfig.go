package broker

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Topic configuration keys, named as in Kafka where Kafka has them.
const (
	ConfigRetentionMs         = "retention.ms"
	ConfigRetentionBytes      = "retention.bytes"
	ConfigLocalRetentionMs    = "local.retention.ms"
	ConfigLocalRetentionBytes = "local.retention.bytes"
	ConfigSegmentBytes        = "segment.bytes"
	ConfigSegmentMs           = "segment.ms"
	ConfigMaxMessageBytes     = "max.message.bytes"
	ConfigCleanupPolicy       = "cleanup.policy"
	ConfigDeleteRetentionMs   = "delete.retention.ms"
	ConfigMinCleanableRatio   = "min.cleanable.dirty.ratio"
	ConfigAcks                = "acks"
)

// TopicConfig is the typed form of a topic's configuration map.
type TopicConfig struct {
	RetentionMs         int64 // -1: forever
	RetentionBytes      int64 // -1: unlimited
	LocalRetentionMs    int64 // -2: same as retention.ms
	LocalRetentionBytes int64 // -2: same as retention.bytes
	SegmentBytes        int64
	SegmentMs           int64
	MaxMessageBytes     int32 // the largest batch a producer may send
	CleanupPolicy       string
	DeleteRetentionMs   int64
	// MinCleanableRatio is the dirty ratio (uncompacted bytes / uploaded
	// bytes) at which a compacted partition is compacted again.
	MinCleanableRatio float64
	Acks              string // default acks for requests that leave it unset
}

// DefaultTopicConfig holds the defaults applied to keys a topic leaves unset.
var DefaultTopicConfig = TopicConfig{
	RetentionMs:         7 * 24 * 3600 * 1000,
	RetentionBytes:      -1,
	LocalRetentionMs:    -2,
	LocalRetentionBytes: -2,
	SegmentBytes:        64 << 20,
	SegmentMs:           7 * 24 * 3600 * 1000,
	MaxMessageBytes:     1 << 20,
	CleanupPolicy:       "delete",
	DeleteRetentionMs:   24 * 3600 * 1000,
	MinCleanableRatio:   0.5,
	Acks:                "all",
}

type configKey struct {
	set func(c *TopicConfig, v string) error
	get func(c TopicConfig) string
}

func int64Key(field func(*TopicConfig) *int64, lo, hi int64) configKey {
	return configKey{
		set: func(c *TopicConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("not an integer: %q", v)
			}
			if n < lo || n > hi {
				return fmt.Errorf("%d is outside [%d, %d]", n, lo, hi)
			}
			*field(c) = n
			return nil
		},
		get: func(c TopicConfig) string { return strconv.FormatInt(*field(&c), 10) },
	}
}

func enumKey(field func(*TopicConfig) *string, values ...string) configKey {
	return configKey{
		set: func(c *TopicConfig, v string) error {
			if !slices.Contains(values, v) {
				return fmt.Errorf("%q is not one of %s", v, strings.Join(values, ", "))
			}
			*field(c) = v
			return nil
		},
		get: func(c TopicConfig) string { return *field(&c) },
	}
}

const maxInt64 = int64(^uint64(0) >> 1)

var configKeys = map[string]configKey{
	ConfigRetentionMs:         int64Key(func(c *TopicConfig) *int64 { return &c.RetentionMs }, -1, maxInt64),
	ConfigRetentionBytes:      int64Key(func(c *TopicConfig) *int64 { return &c.RetentionBytes }, -1, maxInt64),
	ConfigLocalRetentionMs:    int64Key(func(c *TopicConfig) *int64 { return &c.LocalRetentionMs }, -2, maxInt64),
	ConfigLocalRetentionBytes: int64Key(func(c *TopicConfig) *int64 { return &c.LocalRetentionBytes }, -2, maxInt64),
	ConfigSegmentBytes:        int64Key(func(c *TopicConfig) *int64 { return &c.SegmentBytes }, 14, 1<<30),
	ConfigSegmentMs:           int64Key(func(c *TopicConfig) *int64 { return &c.SegmentMs }, 1, maxInt64),
	ConfigDeleteRetentionMs:   int64Key(func(c *TopicConfig) *int64 { return &c.DeleteRetentionMs }, 0, maxInt64),
	ConfigMaxMessageBytes: {
		set: func(c *TopicConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 64 || n > 64<<20 {
				return fmt.Errorf("%q is not an integer in [64, %d]", v, 64<<20)
			}
			c.MaxMessageBytes = int32(n)
			return nil
		},
		get: func(c TopicConfig) string { return strconv.Itoa(int(c.MaxMessageBytes)) },
	},
	ConfigMinCleanableRatio: {
		set: func(c *TopicConfig, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f >= 0 && f <= 1) {
				return fmt.Errorf("%q is not a number in [0, 1]", v)
			}
			c.MinCleanableRatio = f
			return nil
		},
		get: func(c TopicConfig) string { return strconv.FormatFloat(c.MinCleanableRatio, 'g', -1, 64) },
	},
	ConfigCleanupPolicy: enumKey(func(c *TopicConfig) *string { return &c.CleanupPolicy }, "delete", "compact", "compact,delete", "delete,compact"),
	ConfigAcks:          enumKey(func(c *TopicConfig) *string { return &c.Acks }, "none", "leader", "all"),
}

// ConfigKeys lists the known topic configuration keys, sorted.
func ConfigKeys() []string {
	keys := make([]string, 0, len(configKeys))
	for k := range configKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseTopicConfig applies m over the defaults. Unknown keys and invalid
// values return an error wrapping ErrInvalidConfig that names the key.
func ParseTopicConfig(m map[string]string) (TopicConfig, error) {
	c := DefaultTopicConfig
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		key, ok := configKeys[k]
		if !ok {
			return c, fmt.Errorf("%w: unknown key %q (known: %s)", ErrInvalidConfig, k, strings.Join(ConfigKeys(), ", "))
		}
		if err := key.set(&c, m[k]); err != nil {
			return c, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, k, err)
		}
	}
	if c.MaxMessageBytes > 0 && int64(c.MaxMessageBytes) > c.SegmentBytes {
		return c, fmt.Errorf("%w: %s (%d) exceeds %s (%d)", ErrInvalidConfig, ConfigMaxMessageBytes, c.MaxMessageBytes, ConfigSegmentBytes, c.SegmentBytes)
	}
	return c, nil
}

// Map returns the full configuration, defaults included, as strings.
func (c TopicConfig) Map() map[string]string {
	m := make(map[string]string, len(configKeys))
	for k, key := range configKeys {
		m[k] = key.get(c)
	}
	return m
}

// SegmentAge is segment.ms as a duration (saturated, as DeleteRetention).
func (c TopicConfig) SegmentAge() time.Duration { return msDuration(c.SegmentMs) }

// DeleteRetention is delete.retention.ms as a duration, saturated: Kafka's
// idiom for "forever" (Long.MAX_VALUE) must not overflow into a negative
// one that drops every tombstone at once.
func (c TopicConfig) DeleteRetention() time.Duration { return msDuration(c.DeleteRetentionMs) }

// msDuration is ms milliseconds (≥ 0), at most the longest duration.
func msDuration(ms int64) time.Duration {
	if ms > int64(math.MaxInt64/time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// LocalRetention is the local retention in effect: local.retention.bytes
// and .ms, where -2 stands for the total retention's value (-1: unlimited).
func (c TopicConfig) LocalRetention() (bytes, ms int64) {
	bytes, ms = c.LocalRetentionBytes, c.LocalRetentionMs
	if bytes == -2 {
		bytes = c.RetentionBytes
	}
	if ms == -2 {
		ms = c.RetentionMs
	}
	return bytes, ms
}

// Compacted reports whether cleanup.policy has compact.
func (c TopicConfig) Compacted() bool { return strings.Contains(c.CleanupPolicy, "compact") }

// Deletes reports whether cleanup.policy has delete: retention.ms and
// retention.bytes apply.
func (c TopicConfig) Deletes() bool { return strings.Contains(c.CleanupPolicy, "delete") }
