package broker

import (
	"fmt"
	"slices"
	"testing"
)

func tps(topic string, ps ...int32) []topicPartition {
	out := make([]topicPartition, len(ps))
	for i, p := range ps {
		out[i] = topicPartition{Topic: topic, Partition: p}
	}
	return out
}

// checkAssignment fails unless every partition of a subscribed topic is
// assigned exactly once, to a member subscribed to it, and nothing else.
func checkAssignment(t *testing.T, members []assignMember, partitions map[string]int32, out map[string][]topicPartition) {
	t.Helper()
	subscribed := map[string]map[string]bool{}
	for _, m := range members {
		subscribed[m.id] = map[string]bool{}
		for _, tp := range m.topics {
			subscribed[m.id][tp] = true
		}
		if _, ok := out[m.id]; !ok {
			t.Fatalf("member %s missing from the assignment", m.id)
		}
	}
	seen := map[topicPartition]string{}
	for id, list := range out {
		if !slices.IsSortedFunc(list, func(a, b topicPartition) int {
			if a.Less(b) {
				return -1
			}
			if b.Less(a) {
				return 1
			}
			return 0
		}) {
			t.Fatalf("member %s: list not sorted: %v", id, list)
		}
		for _, tp := range list {
			if prev, dup := seen[tp]; dup {
				t.Fatalf("%s assigned to %s and %s", tp, prev, id)
			}
			seen[tp] = id
			if !subscribed[id][tp.Topic] || tp.Partition < 0 || tp.Partition >= partitions[tp.Topic] {
				t.Fatalf("%s assigned to %s, which may not have it", tp, id)
			}
		}
	}
	for topic, n := range partitions {
		any := false
		for _, m := range members {
			any = any || subscribed[m.id][topic]
		}
		for p := range n {
			if _, ok := seen[topicPartition{Topic: topic, Partition: p}]; any && !ok {
				t.Fatalf("%s/%d not assigned", topic, p)
			}
		}
	}
}

func spread(out map[string][]topicPartition) (lo, hi int) {
	lo = 1 << 30
	for _, l := range out {
		lo, hi = min(lo, len(l)), max(hi, len(l))
	}
	return lo, hi
}

func TestAssignRange(t *testing.T) {
	ms := []assignMember{{id: "b", topics: []string{"x", "y"}}, {id: "a", topics: []string{"x", "y"}}, {id: "c", topics: []string{"x"}}}
	parts := map[string]int32{"x": 7, "y": 2}
	out := assignRange(ms, parts)
	checkAssignment(t, ms, parts, out)
	want := map[string][]topicPartition{
		"a": append(tps("x", 0, 1, 2), tps("y", 0)...),
		"b": append(tps("x", 3, 4), tps("y", 1)...),
		"c": tps("x", 5, 6),
	}
	for id, w := range want {
		if !slices.Equal(out[id], w) {
			t.Errorf("range %s = %v, want %v", id, out[id], w)
		}
	}
}

func TestAssignRoundRobin(t *testing.T) {
	ms := []assignMember{{id: "a", topics: []string{"x"}}, {id: "b", topics: []string{"x", "y"}}}
	parts := map[string]int32{"x": 3, "y": 2, "z": 5}
	out := assignRoundRobin(ms, parts)
	checkAssignment(t, ms, parts, out)
	if want := tps("x", 0, 2); !slices.Equal(out["a"], want) {
		t.Errorf("a = %v, want %v", out["a"], want)
	}
	if want := append(tps("x", 1), tps("y", 0, 1)...); !slices.Equal(out["b"], want) {
		t.Errorf("b = %v, want %v", out["b"], want)
	}
}

// TestStickyMovesOnlyWhatMust: with 12 partitions over 3 members, a
// fourth member receives 3 partitions and those are the only ones that
// move; when a member leaves, only its partitions move.
func TestStickyMovesOnlyWhatMust(t *testing.T) {
	parts := map[string]int32{"t": 12}
	ms := []assignMember{{id: "a", topics: []string{"t"}}, {id: "b", topics: []string{"t"}}, {id: "c", topics: []string{"t"}}}
	out := assignSticky(ms, parts)
	checkAssignment(t, ms, parts, out)
	if lo, hi := spread(out); lo != 4 || hi != 4 {
		t.Fatalf("3 members: spread %d..%d: %v", lo, hi, out)
	}
	for i := range ms {
		ms[i].current = out[ms[i].id]
	}
	before := out
	ms = append(ms, assignMember{id: "d", topics: []string{"t"}})
	out = assignSticky(ms, parts)
	checkAssignment(t, ms, parts, out)
	if lo, hi := spread(out); lo != 3 || hi != 3 {
		t.Fatalf("4 members: spread %d..%d: %v", lo, hi, out)
	}
	for _, id := range []string{"a", "b", "c"} {
		for _, tp := range out[id] {
			if !slices.Contains(before[id], tp) {
				t.Fatalf("%s moved to the existing member %s", tp, id)
			}
		}
	}
	// c leaves: a, b, d keep all they had.
	for i := range ms {
		ms[i].current = out[ms[i].id]
	}
	before = out
	ms = slices.Delete(ms, 2, 3)
	out = assignSticky(ms, parts)
	checkAssignment(t, ms, parts, out)
	for _, m := range ms {
		for _, tp := range before[m.id] {
			if !slices.Contains(out[m.id], tp) {
				t.Fatalf("%s taken from %s when c left", tp, m.id)
			}
		}
	}
	if lo, hi := spread(out); lo != 4 || hi != 4 {
		t.Fatalf("after c left: spread %d..%d", lo, hi)
	}
}

// TestAssignorsBalance: with equal subscriptions every assignor is
// balanced to within one partition per member.
func TestAssignorsBalance(t *testing.T) {
	for name, fn := range assignors {
		for _, n := range []int32{1, 5, 12, 100} {
			for _, k := range []int{1, 3, 7} {
				var ms []assignMember
				for i := range k {
					ms = append(ms, assignMember{id: fmt.Sprintf("m%02d", i), topics: []string{"t"}})
				}
				parts := map[string]int32{"t": n}
				out := fn(ms, parts)
				checkAssignment(t, ms, parts, out)
				if lo, hi := spread(out); hi-lo > 1 {
					t.Errorf("%s: %d partitions over %d members: spread %d..%d", name, n, k, lo, hi)
				}
			}
		}
	}
}

// FuzzAssignors: for any members, subscriptions, partition counts and
// current ownership (even conflicting or stale), each assignor assigns
// every subscribed partition exactly once to a subscriber, and with equal
// subscriptions it is balanced.
func FuzzAssignors(f *testing.F) {
	f.Add(uint8(3), uint8(12), uint8(2), []byte{0, 1, 2, 3, 4, 5})
	f.Add(uint8(1), uint8(0), uint8(1), []byte{})
	f.Add(uint8(9), uint8(40), uint8(3), []byte{7, 7, 7, 1, 200, 13})
	f.Fuzz(func(t *testing.T, nm, np, nt uint8, seed []byte) {
		k, topics := int(nm%16)+1, int(nt%4)+1
		at := func(i int) byte {
			if len(seed) == 0 {
				return 0
			}
			return seed[i%len(seed)]
		}
		parts := map[string]int32{}
		for i := range topics {
			parts[fmt.Sprintf("t%d", i)] = int32(np%64) + int32(at(i)%3)
		}
		var ms []assignMember
		same := true
		for i := range k {
			m := assignMember{id: fmt.Sprintf("m%d", i)}
			for j := range topics {
				if at(i*topics+j)%4 != 0 || j == 0 {
					m.topics = append(m.topics, fmt.Sprintf("t%d", j))
				}
			}
			same = same && len(m.topics) == topics
			for j := range int(at(i) % 8) {
				m.current = append(m.current, topicPartition{Topic: fmt.Sprintf("t%d", j%topics), Partition: int32(at(i+j)) - 3})
			}
			ms = append(ms, m)
		}
		for name, fn := range assignors {
			out := fn(ms, parts)
			checkAssignment(t, ms, parts, out)
			if lo, hi := spread(out); same && hi-lo > 1 && name != AssignorRange {
				t.Fatalf("%s unbalanced with equal subscriptions: %d..%d", name, lo, hi)
			}
		}
	})
}
