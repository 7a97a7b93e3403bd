package broker

import (
	"fmt"
	"slices"
	"sort"

	"github.com/strata-stream/strata/metadata"
)

type topicPartition = metadata.TopicPartition

// Assignor names, as clients ask for them.
const (
	AssignorRange             = "range"
	AssignorRoundRobin        = "roundrobin"
	AssignorCooperativeSticky = "cooperative-sticky"
)

// assignMember is what an assignor knows of a member.
type assignMember struct {
	id     string
	topics []string
	// current is what the member owns now (the sticky assignor keeps as
	// much of it as balance allows).
	current []topicPartition
}

// assignFunc computes a target assignment: every partition of a topic
// that some member subscribes to goes to exactly one member subscribed to
// it; nothing else is assigned. partitions is each topic's partition count
// (topics absent from it have none yet). The result has an entry, maybe
// empty, for every member; each list is sorted.
//
// Assignors only compute targets: the coordinator moves partitions
// incrementally (a partition is revoked from its owner before it is given
// to another), so members keep consuming every partition that does not
// move whatever the assignor.
type assignFunc func(members []assignMember, partitions map[string]int32) map[string][]topicPartition

// assignors are the assignors a group may use.
var assignors = map[string]assignFunc{
	AssignorRange:             assignRange,
	AssignorRoundRobin:        assignRoundRobin,
	AssignorCooperativeSticky: assignSticky,
}

// validAssignor is ErrInvalidRequest for a name no assignor has.
func validAssignor(name string) error {
	if _, ok := assignors[name]; !ok {
		return fmt.Errorf("%w: unknown assignor %q (want range, roundrobin or cooperative-sticky)", ErrInvalidRequest, name)
	}
	return nil
}

// subscribers returns, per topic with partitions, the ids of the members
// subscribed to it, sorted; and the sorted topics.
func subscribers(members []assignMember, partitions map[string]int32) (map[string][]string, []string) {
	subs := map[string][]string{}
	for _, m := range members {
		for _, t := range m.topics {
			if partitions[t] > 0 && !slices.Contains(subs[t], m.id) {
				subs[t] = append(subs[t], m.id)
			}
		}
	}
	topics := make([]string, 0, len(subs))
	for t, ids := range subs {
		sort.Strings(ids)
		topics = append(topics, t)
	}
	sort.Strings(topics)
	return subs, topics
}

func emptyAssignment(members []assignMember) map[string][]topicPartition {
	out := make(map[string][]topicPartition, len(members))
	for _, m := range members {
		out[m.id] = []topicPartition{}
	}
	return out
}

func sortTPs(tps []topicPartition) { metadata.SortTopicPartitions(tps) }

// assignRange gives each member a contiguous range of every topic it
// subscribes to (Kafka's RangeAssignor): per topic, the members subscribed
// to it in id order get n/m partitions each, the first n%m one more.
func assignRange(members []assignMember, partitions map[string]int32) map[string][]topicPartition {
	out := emptyAssignment(members)
	subs, topics := subscribers(members, partitions)
	for _, t := range topics {
		ids, n := subs[t], partitions[t]
		per, extra := int(n)/len(ids), int(n)%len(ids)
		p := int32(0)
		for i, id := range ids {
			k := per
			if i < extra {
				k++
			}
			for range k {
				out[id] = append(out[id], topicPartition{Topic: t, Partition: p})
				p++
			}
		}
	}
	return out
}

// assignRoundRobin deals all partitions, sorted by topic and number, to
// the members in id order, skipping members not subscribed to a
// partition's topic (Kafka's RoundRobinAssignor).
func assignRoundRobin(members []assignMember, partitions map[string]int32) map[string][]topicPartition {
	out := emptyAssignment(members)
	subs, topics := subscribers(members, partitions)
	ids := make([]string, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.id)
	}
	sort.Strings(ids)
	next := 0
	for _, t := range topics {
		for p := range partitions[t] {
			for {
				id := ids[next%len(ids)]
				next++
				if slices.Contains(subs[t], id) {
					out[id] = append(out[id], topicPartition{Topic: t, Partition: p})
					break
				}
			}
		}
	}
	return out
}

// assignSticky balances the partitions over the members while keeping
// each member's current partitions where balance allows (in the spirit of
// Kafka's CooperativeStickyAssignor and KIP-848's uniform assignor): with
// equal subscriptions, a member joining takes partitions only from members
// above the new fair share, and a member leaving gives its partitions
// only to the others; no other partition moves.
//
//  1. Each member keeps its current partitions (still subscribed and not
//     kept by another) up to ceil(total/members).
//  2. Every partition left goes to the least-loaded member subscribed to
//     its topic (ties: the lowest id).
//  3. While a member has two or more partitions more than another that
//     could take one of them, one moves.
func assignSticky(members []assignMember, partitions map[string]int32) map[string][]topicPartition {
	out := emptyAssignment(members)
	subs, topics := subscribers(members, partitions)
	total := 0
	for _, t := range topics {
		total += int(partitions[t])
	}
	if total == 0 || len(members) == 0 {
		return out
	}
	eligible := func(id string, tp topicPartition) bool { return slices.Contains(subs[tp.Topic], id) }
	quota := (total + len(members) - 1) / len(members)
	owner := map[topicPartition]string{}
	sorted := slices.Clone(members)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].id < sorted[j].id })
	for _, m := range sorted {
		cur := slices.Clone(m.current)
		sortTPs(cur)
		for _, tp := range cur {
			if len(out[m.id]) >= quota {
				break
			}
			if _, taken := owner[tp]; taken || tp.Partition < 0 || tp.Partition >= partitions[tp.Topic] || !eligible(m.id, tp) {
				continue
			}
			owner[tp] = m.id
			out[m.id] = append(out[m.id], tp)
		}
	}
	for _, t := range topics {
		for p := range partitions[t] {
			tp := topicPartition{Topic: t, Partition: p}
			if _, ok := owner[tp]; ok {
				continue
			}
			best := ""
			for _, id := range subs[t] {
				if best == "" || len(out[id]) < len(out[best]) {
					best = id
				}
			}
			owner[tp] = best
			out[best] = append(out[best], tp)
		}
	}
	// Balance: bounded by the partition count (every move narrows the
	// spread between two members).
	for range total {
		moved := false
		for _, from := range loadOrder(sorted, out, true) {
			for _, to := range loadOrder(sorted, out, false) {
				if len(out[from])-len(out[to]) < 2 {
					break
				}
				// The last partition of from that to may take.
				for i := len(out[from]) - 1; i >= 0; i-- {
					tp := out[from][i]
					if !eligible(to, tp) {
						continue
					}
					out[from] = slices.Delete(out[from], i, i+1)
					out[to] = append(out[to], tp)
					moved = true
					break
				}
				if moved {
					break
				}
			}
			if moved {
				break
			}
		}
		if !moved {
			break
		}
	}
	for id := range out {
		sortTPs(out[id])
	}
	return out
}

// loadOrder returns member ids by load, most loaded first when desc
// (ties: the lowest id first).
func loadOrder(members []assignMember, out map[string][]topicPartition, desc bool) []string {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.id
	}
	sort.SliceStable(ids, func(i, j int) bool {
		li, lj := len(out[ids[i]]), len(out[ids[j]])
		if desc {
			return li > lj
		}
		return li < lj
	})
	return ids
}
