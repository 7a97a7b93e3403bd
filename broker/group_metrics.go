package broker

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// groupMetrics are the consumer group coordinator's metrics.
type groupMetrics struct {
	commits     prometheus.Counter
	flushes     prometheus.Counter
	loads       prometheus.Counter
	revocations prometheus.Counter
}

func newGroupMetrics(reg prometheus.Registerer) *groupMetrics {
	m := &groupMetrics{
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_group_committed_offsets_total", Help: "Partition offsets committed by group members (accepted by this coordinator).",
		}),
		flushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_group_etcd_writes_total", Help: "Coalesced etcd writes of group state and offsets (one transaction each, unless more than 120 keys changed).",
		}),
		loads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_group_loads_total", Help: "Groups this broker started coordinating.",
		}),
		revocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_group_revocations_total", Help: "Assignments sent that revoke partitions from a member.",
		}),
	}
	reg.MustRegister(m.commits, m.flushes, m.loads, m.revocations)
	return m
}

// lagSample is one partition's lag as last measured.
type lagSample struct {
	tp        topicPartition
	committed int64
	end       int64
}

// measureLag records, for every group coordinated here, each committed
// partition's log end minus its committed offset.
func (c *coordinator) measureLag(ctx context.Context) {
	c.mu.Lock()
	groups := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		offs := make(map[topicPartition]int64, len(g.mu.offsets))
		topics := map[string]bool{}
		for tp, o := range g.mu.offsets {
			offs[tp] = o
			topics[tp.Topic] = true
		}
		g.mu.Unlock()
		counts := c.s.topicPartitions(sortedKeys(topics))
		var samples []lagSample
		for t, n := range counts {
			ends, err := c.s.logEnds(ctx, t, n)
			if err != nil {
				c.s.logger.Debug("measure group lag", "group", g.name, "topic", t, "err", err)
				continue
			}
			for tp, o := range offs {
				if tp.Topic == t && tp.Partition < n {
					samples = append(samples, lagSample{tp: tp, committed: o, end: ends[tp.Partition]})
				}
			}
		}
		c.mu.Lock()
		if c.mu.groups[g.name] == g {
			c.mu.lag[g.name] = samples
		}
		c.mu.Unlock()
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// groupCollector reports the lag and members of the groups coordinated
// here.
type groupCollector struct{ c *coordinator }

var (
	groupLagDesc       = prometheus.NewDesc("strata_group_lag", "Records between a group's committed offset and the partition's log end, per group and partition (measured every few seconds by the group's coordinator).", []string{"group", "topic", "partition"}, nil)
	groupCommittedDesc = prometheus.NewDesc("strata_group_committed_offset", "A group's committed offset, per group and partition (on the group's coordinator).", []string{"group", "topic", "partition"}, nil)
	groupMembersDesc   = prometheus.NewDesc("strata_group_members", "Members of a group coordinated here.", []string{"group"}, nil)
)

func (gc *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- groupLagDesc
	ch <- groupCommittedDesc
	ch <- groupMembersDesc
}

func (gc *groupCollector) Collect(ch chan<- prometheus.Metric) {
	c := gc.c
	c.mu.Lock()
	lag := make(map[string][]lagSample, len(c.mu.lag))
	for k, v := range c.mu.lag {
		lag[k] = v
	}
	groups := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for name, samples := range lag {
		for _, sm := range samples {
			pl := strconv.Itoa(int(sm.tp.Partition))
			ch <- prometheus.MustNewConstMetric(groupLagDesc, prometheus.GaugeValue, float64(max(0, sm.end-sm.committed)), name, sm.tp.Topic, pl)
			ch <- prometheus.MustNewConstMetric(groupCommittedDesc, prometheus.GaugeValue, float64(sm.committed), name, sm.tp.Topic, pl)
		}
	}
	for _, g := range groups {
		g.mu.Lock()
		n := len(g.mu.members)
		g.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(groupMembersDesc, prometheus.GaugeValue, float64(n), g.name)
	}
}
