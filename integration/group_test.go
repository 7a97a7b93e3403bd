package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/strata-stream/strata/client"
	"github.com/strata-stream/strata/internal/etcdtest"
	"github.com/strata-stream/strata/internal/miniotest"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// The consumer group tests share one cluster: two broker processes on a
// real etcd and a real MinIO (the WAL on, acks=all), each subtest with
// its own topic and group. The last one SIGKILLs a broker.

const groupCommitInterval = 50 * time.Millisecond

type groupCluster struct {
	brokers []*brokerProc
	etcd    *clientv3.Client
	prefix  string
}

func startGroupCluster(t *testing.T) *groupCluster {
	t.Helper()
	m := miniotest.Start(t)
	m.MakeBucket(t, "groups")
	emb, cli := etcdtest.Start(t)
	env := []string{"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey}
	storeURL := fmt.Sprintf("s3://groups/c1?endpoint=%s&region=us-east-1&path-style=true", m.Endpoint())
	gc := &groupCluster{etcd: cli, prefix: "/strata/strata/"}
	for id := 1; id <= 2; id++ {
		gc.brokers = append(gc.brokers, startBrokerEnv(t, "", env, "--broker-id", fmt.Sprint(id),
			"--etcd-endpoints", strings.Join(emb.Endpoints(), ","), "--object-store", storeURL, "--wal", "on",
			"--session-ttl", "3s", "--reconcile-interval", "300ms", "--group-commit-interval", groupCommitInterval.String()))
	}
	return gc
}

// client returns a new client seeded with every broker (its own
// connections, as a separate consumer process would have).
func (gc *groupCluster) client(t *testing.T) *client.Client {
	t.Helper()
	var seeds []string
	for _, b := range gc.brokers {
		seeds = append(seeds, b.Addr)
	}
	c, err := client.New(client.Config{Brokers: seeds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (gc *groupCluster) createTopic(t *testing.T, c *client.Client, name string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, name, partitions, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		ls, err := tryLeaders(c, name)
		ok := err == nil && len(ls) == int(partitions)
		for _, l := range ls {
			ok = ok && l > 0
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: partitions without a leader after 20s: %v %v", name, ls, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// groupLog is the ordered record of what the consumers of a test did:
// partitions assigned and released, and records consumed.
type groupLog struct {
	mu      sync.Mutex
	entries []groupEntry
	// acked is what the producer had acknowledged, by partition and
	// offset.
	acked map[client.TopicPartition]map[int64]bool
}

type entryKind int

const (
	entryAssigned entryKind = iota
	entryReleased           // revoked, lost, or the member was killed
	entryConsumed
	entryCommitted // offset is the committed position
)

type groupEntry struct {
	kind   entryKind
	member string
	tp     client.TopicPartition
	offset int64
	at     time.Time
}

func newGroupLog() *groupLog {
	return &groupLog{acked: map[client.TopicPartition]map[int64]bool{}}
}

func (l *groupLog) addLocked(kind entryKind, member string, tp client.TopicPartition, offset int64) {
	l.entries = append(l.entries, groupEntry{kind: kind, member: member, tp: tp, offset: offset, at: time.Now()})
}

func (l *groupLog) snapshot() []groupEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

// testConsumer is one group consumer with its own client, polling in a
// goroutine and committing after processing each batch.
type testConsumer struct {
	name   string
	c      *client.Client
	gc     *client.GroupConsumer
	log    *groupLog
	killed bool // under log.mu
	stop   chan struct{}
	done   chan struct{}
	// holdCommit makes the consumer stop before committing a batch it
	// processed (held is closed then), until it is killed.
	holdCommit atomic.Bool
	held       chan struct{}
}

func startConsumer(t *testing.T, cl *groupCluster, l *groupLog, name, group, topic string, session time.Duration) *testConsumer {
	t.Helper()
	tc := &testConsumer{name: name, c: cl.client(t), log: l, stop: make(chan struct{}), done: make(chan struct{}), held: make(chan struct{})}
	record := func(kind entryKind, tps []client.TopicPartition) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if tc.killed {
			return
		}
		for _, tp := range tps {
			l.addLocked(kind, name, tp, -1)
		}
	}
	var err error
	tc.gc, err = tc.c.JoinGroup(client.GroupConfig{
		Group: group, Topics: []string{topic}, SessionTimeout: session, ManualCommit: true, Reset: client.ResetEarliest,
		ClientID:   name,
		Fetch:      client.ConsumerConfig{MaxWait: 200 * time.Millisecond},
		OnAssigned: func(tps []client.TopicPartition) { record(entryAssigned, tps) },
		OnRevoked:  func(tps []client.TopicPartition) { record(entryReleased, tps) },
		OnLost:     func(tps []client.TopicPartition) { record(entryReleased, tps) },
	})
	if err != nil {
		t.Fatal(err)
	}
	go tc.run()
	return tc
}

func (tc *testConsumer) run() {
	defer close(tc.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-tc.stop
		cancel()
	}()
	for ctx.Err() == nil {
		recs, err := tc.gc.Poll(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, client.ErrClosed) {
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		next := map[client.TopicPartition]int64{}
		tc.log.mu.Lock()
		if tc.killed {
			tc.log.mu.Unlock()
			return
		}
		for _, r := range recs {
			tp := client.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			tc.log.addLocked(entryConsumed, tc.name, tp, r.Offset)
			next[tp] = r.Offset + 1
		}
		tc.log.mu.Unlock()
		if len(next) == 0 {
			continue
		}
		if tc.holdCommit.Load() {
			close(tc.held)
			<-tc.stop
			return
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = tc.gc.CommitOffsets(cctx, next)
		ccancel()
		if err == nil {
			tc.log.mu.Lock()
			if !tc.killed {
				for tp, o := range next {
					tc.log.addLocked(entryCommitted, tc.name, tp, o)
				}
			}
			tc.log.mu.Unlock()
		}
	}
}

// kill ends the consumer like a crash: it stops processing at once, and
// its connections close without a leave or a last commit.
func (tc *testConsumer) kill() []client.TopicPartition {
	tc.log.mu.Lock()
	tc.killed = true
	owned := tc.gc.Assignment()
	for _, tp := range owned {
		tc.log.addLocked(entryReleased, tc.name, tp, -1)
	}
	tc.log.mu.Unlock()
	tc.c.Close()
	close(tc.stop)
	<-tc.done
	return owned
}

// close stops the consumer cleanly: it leaves the group.
func (tc *testConsumer) close(t *testing.T) {
	t.Helper()
	close(tc.stop)
	<-tc.done
	if err := tc.gc.Close(); err != nil {
		t.Errorf("close %s: %v", tc.name, err)
	}
}

// testProducer writes one record to every partition each tick (acks=all)
// and records what was acknowledged.
type testProducer struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	n    atomic.Int64
}

func startProducer(t *testing.T, c *client.Client, l *groupLog, topic string, partitions int32, every time.Duration) *testProducer {
	t.Helper()
	tp := &testProducer{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(tp.close)
	p := c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_ALL, ManualPartitions: true, DeliveryTimeout: 20 * time.Second})
	go func() {
		defer close(tp.done)
		defer p.Close()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-tp.stop:
				return
			case <-tick.C:
			}
			var wg sync.WaitGroup
			ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
			for i := range partitions {
				r := &client.Record{Topic: topic, Partition: i, Value: []byte(fmt.Sprintf("p%d-%d", i, seq))}
				wg.Add(1)
				err := p.Produce(ctx, r, func(r *client.Record, err error) {
					defer wg.Done()
					if err != nil || r.Offset < 0 {
						return
					}
					key := client.TopicPartition{Topic: topic, Partition: r.Partition}
					l.mu.Lock()
					if l.acked[key] == nil {
						l.acked[key] = map[int64]bool{}
					}
					l.acked[key][r.Offset] = true
					l.mu.Unlock()
					tp.n.Add(1)
				})
				if err != nil {
					wg.Done()
				}
			}
			_ = p.Flush(ctx) // what failed is not acknowledged
			wg.Wait()
			cancel()
		}
	}()
	return tp
}

func (tp *testProducer) close() {
	tp.once.Do(func() { close(tp.stop) })
	<-tp.done
}

// waitConsumedAll waits until every acknowledged record was consumed.
func waitConsumedAll(t *testing.T, l *groupLog, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := missingRecords(l)
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged records never consumed after %s, e.g. %v", len(missing), timeout, missing[:min(5, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func missingRecords(l *groupLog) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[client.TopicPartition]map[int64]bool{}
	for _, e := range l.entries {
		if e.kind == entryConsumed {
			if seen[e.tp] == nil {
				seen[e.tp] = map[int64]bool{}
			}
			seen[e.tp][e.offset] = true
		}
	}
	var missing []string
	for tp, offs := range l.acked {
		for o := range offs {
			if !seen[tp][o] {
				missing = append(missing, fmt.Sprintf("%s@%d", tp, o))
			}
		}
	}
	sort.Strings(missing)
	return missing
}

// checkOwnership replays the log: no partition is assigned to a member
// while another holds it, and every record is consumed by its partition's
// owner. It returns the violations.
func checkOwnership(entries []groupEntry) []string {
	owner := map[client.TopicPartition]string{}
	var bad []string
	for _, e := range entries {
		switch e.kind {
		case entryAssigned:
			if o := owner[e.tp]; o != "" && o != e.member {
				bad = append(bad, fmt.Sprintf("%s assigned to %s at %s while %s held it", e.tp, e.member, e.at.Format("15:04:05.000"), o))
			}
			owner[e.tp] = e.member
		case entryReleased:
			if owner[e.tp] == e.member {
				owner[e.tp] = ""
			}
		case entryConsumed:
			if owner[e.tp] != e.member {
				bad = append(bad, fmt.Sprintf("%s@%d consumed by %s, owner %q", e.tp, e.offset, e.member, owner[e.tp]))
			}
		}
	}
	return bad
}

// checkNoSkips: every stint of a member on a partition reads contiguous
// offsets, starting no later than right after what was consumed of the
// partition before.
func checkNoSkips(entries []groupEntry) []string {
	type stint struct{ next int64 }
	cur := map[client.TopicPartition]map[string]*stint{}
	maxSeen := map[client.TopicPartition]int64{}
	var bad []string
	for _, e := range entries {
		if cur[e.tp] == nil {
			cur[e.tp] = map[string]*stint{}
		}
		switch e.kind {
		case entryAssigned:
			cur[e.tp][e.member] = &stint{next: -1}
		case entryReleased:
			delete(cur[e.tp], e.member)
		case entryConsumed:
			s := cur[e.tp][e.member]
			if s == nil {
				continue // reported by checkOwnership
			}
			prev, seen := maxSeen[e.tp]
			switch {
			case s.next < 0 && seen && e.offset > prev+1:
				bad = append(bad, fmt.Sprintf("%s: %s started at %d, after %d was the last consumed", e.tp, e.member, e.offset, prev))
			case s.next < 0 && !seen && e.offset != 0:
				bad = append(bad, fmt.Sprintf("%s: first record consumed at %d, want 0", e.tp, e.offset))
			case s.next >= 0 && e.offset != s.next:
				bad = append(bad, fmt.Sprintf("%s: %s read %d after %d", e.tp, e.member, e.offset, s.next-1))
			}
			s.next = e.offset + 1
			if !seen || e.offset > prev {
				maxSeen[e.tp] = e.offset
			}
		}
	}
	return bad
}

// TestConsumerGroups runs the consumer group scenarios on one cluster.
func TestConsumerGroups(t *testing.T) {
	cl := startGroupCluster(t)
	t.Cleanup(func() {
		if t.Failed() {
			for i, b := range cl.brokers {
				t.Logf("broker %d log tail:\n%s", i+1, tail(b.Logs(), 8000))
			}
		}
	})
	t.Run("SharePartitionsAndSurviveAConsumer", func(t *testing.T) { testGroupShare(t, cl) })
	t.Run("CooperativeStickyMovesOnlyWhatMust", func(t *testing.T) { testGroupSticky(t, cl) })
	t.Run("ZombieCommitRejected", func(t *testing.T) { testGroupZombie(t, cl) })
	t.Run("CLI", func(t *testing.T) { testGroupCLI(t, cl) })
	t.Run("CommitLoad", func(t *testing.T) { testGroupCommitLoad(t, cl) })
	// Last: it SIGKILLs a broker.
	t.Run("CoordinatorKilled", func(t *testing.T) { testGroupCoordinatorKilled(t, cl) })
}

func waitAssigned(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

func ownsN(n int, cs ...*testConsumer) func() bool {
	return func() bool {
		for _, c := range cs {
			if len(c.gc.Assignment()) != n {
				return false
			}
		}
		return true
	}
}

// testGroupShare: three consumers share twelve partitions while a
// producer writes; one is killed and its partitions go to the others
// within the session timeout; every record is consumed at least once and
// none is skipped; the only duplicates are records the killed consumer
// processed but had not committed.
func testGroupShare(t *testing.T, cl *groupCluster) {
	const session = 3 * time.Second
	c := cl.client(t)
	cl.createTopic(t, c, "share", 12)
	l := newGroupLog()
	prod := startProducer(t, c, l, "share", 12, 20*time.Millisecond)
	var cs []*testConsumer
	for i := 1; i <= 3; i++ {
		cs = append(cs, startConsumer(t, cl, l, fmt.Sprintf("c%d", i), "share-g", "share", session))
		time.Sleep(300 * time.Millisecond)
	}
	waitAssigned(t, "4 partitions each", 20*time.Second, ownsN(4, cs...))
	time.Sleep(2 * time.Second)

	// c3 dies between processing a batch and committing it: that batch is
	// its uncommitted window, consumed again by its successors.
	cs[2].holdCommit.Store(true)
	select {
	case <-cs[2].held:
	case <-time.After(10 * time.Second):
		t.Fatal("c3 processed nothing in 10s")
	}
	killedAt := time.Now()
	lost := cs[2].kill()
	t.Logf("killed c3, which owned %v", lost)
	took := waitAssigned(t, "the killed consumer's partitions reassigned", 15*time.Second, func() bool {
		return len(cs[0].gc.Assignment())+len(cs[1].gc.Assignment()) == 12
	}).Sub(killedAt)
	t.Logf("c3's partitions reassigned %s after the kill (session timeout %s)", took.Round(time.Millisecond), session)
	// The coordinator removes a member one session timeout after its last
	// heartbeat, which came before the kill; delivering the assignment
	// takes a few milliseconds more.
	if took > session+500*time.Millisecond {
		t.Errorf("reassignment took %s, want within the session timeout %s (+0.5s delivery)", took, session)
	}
	time.Sleep(2 * time.Second)
	prod.close()
	t.Logf("produced %d records", prod.n.Load())
	waitConsumedAll(t, l, 30*time.Second)
	checkLagMetric(t, cl, c, "share-g", 12)
	cs[0].close(t)
	cs[1].close(t)

	entries := l.snapshot()
	for _, v := range checkOwnership(entries) {
		t.Error(v)
	}
	for _, v := range checkNoSkips(entries) {
		t.Error(v)
	}
	if dups := checkDuplicates(t, entries, "c3"); dups == 0 {
		t.Errorf("the batch c3 processed but did not commit was not consumed again")
	}
}

// checkLagMetric: the group's coordinator exports strata_group_lag for
// each of its partitions (measured every 5 s); the consumers have caught
// up, so each is 0 once measured after that.
func checkLagMetric(t *testing.T, cl *groupCluster, c *client.Client, group string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := c.DescribeGroup(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	b := cl.brokers[d.GetCoordinatorId()-1]
	var lines []string
	for deadline := time.Now().Add(12 * time.Second); ; {
		lines = lines[:0]
		body := scrape(t, b)
		nonZero := 0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "strata_group_lag{") && strings.Contains(line, `group="`+group+`"`) {
				lines = append(lines, line)
				if !strings.HasSuffix(line, " 0") {
					nonZero++
				}
			}
		}
		if len(lines) == partitions && nonZero == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("coordinator's strata_group_lag for %s after the consumers caught up: %d series, want %d at 0:\n%s", group, len(lines), partitions, strings.Join(lines, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func scrape(t *testing.T, b *brokerProc) string {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// checkDuplicates: every record consumed twice was first consumed by the
// killed member at or after its last committed position (its uncommitted
// window). It returns the number of duplicates.
func checkDuplicates(t *testing.T, entries []groupEntry, killed string) int {
	t.Helper()
	committed := map[client.TopicPartition]int64{}
	by := map[client.TopicPartition]map[int64]string{}
	dups, window := 0, 0
	for _, e := range entries {
		switch e.kind {
		case entryCommitted:
			if e.member == killed {
				committed[e.tp] = e.offset
			}
		case entryConsumed:
			if by[e.tp] == nil {
				by[e.tp] = map[int64]string{}
			}
			first, dup := by[e.tp][e.offset]
			if !dup {
				by[e.tp][e.offset] = e.member
				continue
			}
			dups++
			if first != killed {
				t.Errorf("%s@%d consumed by %s and again by %s: only the killed member's uncommitted records may be", e.tp, e.offset, first, e.member)
			}
		}
	}
	for tp, offs := range by {
		for o, m := range offs {
			if m == killed && o >= committed[tp] {
				window++
			}
		}
	}
	t.Logf("%d records consumed twice; the killed member's uncommitted window held %d", dups, window)
	if dups > window {
		t.Errorf("%d duplicates, more than the %d records the killed member processed without committing", dups, window)
	}
	// Every duplicate is inside the window.
	seen := map[client.TopicPartition]map[int64]bool{}
	for _, e := range entries {
		if e.kind != entryConsumed {
			continue
		}
		if seen[e.tp] == nil {
			seen[e.tp] = map[int64]bool{}
		}
		if seen[e.tp][e.offset] && e.offset < committed[e.tp] && by[e.tp][e.offset] == killed {
			t.Errorf("%s@%d consumed again although the killed member had committed up to %d", e.tp, e.offset, committed[e.tp])
		}
		seen[e.tp][e.offset] = true
	}
	return dups
}

// testGroupSticky: with the cooperative-sticky assignor a fourth member
// takes three partitions from the three members, and those are the only
// partitions that move; the other nine are never revoked and their
// records keep arriving throughout.
func testGroupSticky(t *testing.T, cl *groupCluster) {
	c := cl.client(t)
	cl.createTopic(t, c, "sticky", 12)
	l := newGroupLog()
	prod := startProducer(t, c, l, "sticky", 12, 20*time.Millisecond)
	var cs []*testConsumer
	for i := 1; i <= 3; i++ {
		cs = append(cs, startConsumer(t, cl, l, fmt.Sprintf("s%d", i), "sticky-g", "sticky", 6*time.Second))
	}
	waitAssigned(t, "4 partitions each", 20*time.Second, ownsN(4, cs...))
	time.Sleep(time.Second)
	before := len(l.snapshot())
	joinedAt := time.Now()
	cs = append(cs, startConsumer(t, cl, l, "s4", "sticky-g", "sticky", 6*time.Second))
	doneAt := waitAssigned(t, "3 partitions each", 20*time.Second, ownsN(3, cs...))
	t.Logf("the fourth member had its 3 partitions %s after it started", doneAt.Sub(joinedAt).Round(time.Millisecond))
	time.Sleep(time.Second)
	prod.close()
	waitConsumedAll(t, l, 30*time.Second)
	entries := l.snapshot()
	for _, c := range cs {
		c.close(t)
	}
	for _, v := range checkOwnership(l.snapshot()) {
		t.Error(v)
	}
	for _, v := range checkNoSkips(l.snapshot()) {
		t.Error(v)
	}
	moved := map[client.TopicPartition]bool{}
	received := map[client.TopicPartition]bool{}
	for _, e := range entries[before:] {
		switch {
		case e.kind == entryReleased:
			moved[e.tp] = true
		case e.kind == entryAssigned && e.member == "s4":
			received[e.tp] = true
		case e.kind == entryAssigned:
			t.Errorf("%s assigned to %s after the fourth member joined", e.tp, e.member)
		}
	}
	if len(received) != 3 || !mapsEqual(moved, received) {
		t.Fatalf("revoked from the old members %v, the new member received %v: want the same 3", keys(moved), keys(received))
	}
	// The partitions that stayed were consumed throughout: no gap between
	// two of their records from a second before the join to a second
	// after the rebalance longer than a second (the producer writes every
	// 20 ms).
	last := map[client.TopicPartition]time.Time{}
	var worst time.Duration
	for _, e := range entries {
		if e.kind != entryConsumed || moved[e.tp] || e.at.Before(joinedAt.Add(-time.Second)) || e.at.After(doneAt.Add(time.Second)) {
			continue
		}
		if prev, ok := last[e.tp]; ok {
			worst = max(worst, e.at.Sub(prev))
		}
		last[e.tp] = e.at
	}
	t.Logf("longest pause of an unmoved partition around the rebalance: %s", worst.Round(time.Millisecond))
	if len(last) != 9 {
		t.Errorf("%d unmoved partitions consumed around the rebalance, want 9", len(last))
	}
	if worst > time.Second {
		t.Errorf("an unmoved partition paused %s around the rebalance", worst)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func mapsEqual(a, b map[client.TopicPartition]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[client.TopicPartition]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

// testGroupZombie: a member (speaking the protocol by hand) that stops
// heartbeating is removed after its session timeout; its partitions go to
// a live consumer; its commits are then rejected and change nothing.
func testGroupZombie(t *testing.T, cl *groupCluster) {
	c := cl.client(t)
	cl.createTopic(t, c, "zombie", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, addr, err := c.FindCoordinator(ctx, "zombie-g")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	gs := stratav1.NewGroupServiceClient(cc)
	stream, err := gs.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Join{Join: &stratav1.JoinGroup{Group: "zombie-g", Topics: []string{"zombie"}, SessionTimeoutMs: 2000}}}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil || r.GetJoined() == nil {
		t.Fatalf("join: %v %v", r, err)
	}
	id, gen := r.GetJoined().GetMemberId(), r.GetJoined().GetGeneration()
	// Assignments until it has both partitions (the coordinator may
	// learn of the new topic a reconcile later), each acknowledged.
	for {
		r, err = stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		a := r.GetAssignment()
		if a == nil {
			continue
		}
		var owned []int32
		for _, p := range a.GetPartitions() {
			owned = append(owned, p.GetPartition())
		}
		if err := stream.Send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Ack{Ack: &stratav1.AssignmentAck{Epoch: a.GetEpoch(),
			Owned: []*stratav1.TopicPartitions{{Topic: "zombie", Partitions: owned}}}}}); err != nil {
			t.Fatal(err)
		}
		if len(owned) == 2 {
			break
		}
		if err := stream.Send(&stratav1.JoinRequest{Request: &stratav1.JoinRequest_Heartbeat{Heartbeat: &stratav1.GroupHeartbeat{}}}); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(off int64) error {
		_, err := gs.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: "zombie-g", MemberId: id, Generation: gen,
			Offsets: []*stratav1.PartitionOffset{{Topic: "zombie", Partition: 0, Offset: off}, {Topic: "zombie", Partition: 1, Offset: off}}})
		return err
	}
	if err := commit(7); err != nil {
		t.Fatalf("live member's commit: %v", err)
	}
	// From now on the member sends nothing: it is a zombie.
	l := newGroupLog()
	live := startConsumer(t, cl, l, "live", "zombie-g", "zombie", 3*time.Second)
	defer live.close(t)
	_, err = stream.Recv()
	for err == nil {
		_, err = stream.Recv() // a revocation it never answers, then the end
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("zombie's stream ended with %v, want FAILED_PRECONDITION", err)
	}
	waitAssigned(t, "the live consumer owns both partitions", 10*time.Second, func() bool { return len(live.gc.Assignment()) == 2 })
	err = commit(100)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("zombie's commit: %v, want FAILED_PRECONDITION", err)
	}
	t.Logf("zombie's commit: %v", err)
	d, err := c.DescribeGroup(ctx, "zombie-g")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.GetPartitions() {
		if p.GetCommittedOffset() != 7 {
			t.Errorf("partition %d committed at %d after the zombie's rejected commit, want 7", p.GetPartition(), p.GetCommittedOffset())
		}
	}
	if len(d.GetMembers()) != 1 || d.GetMembers()[0].GetClientId() != "live" {
		t.Errorf("members after the zombie's removal: %v", d.GetMembers())
	}
}

// cliProc is a background strata process.
type cliProc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

func startCLI(t *testing.T, b *brokerProc, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{out: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(strataBinary(t), args...)
	p.cmd.Env = append(p.cmd.Environ(), "STRATA_BROKER="+b.Addr)
	p.cmd.Stdout = syncWriter{p.mu, p.out}
	p.cmd.Stderr = syncWriter{p.mu, p.out}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	})
	return p
}

func (p *cliProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// testGroupCLI: strata consume --group commits what it printed, so two
// runs print every record exactly once between them; the group commands
// list, describe, refuse reset-offsets and delete while a member is
// there, and reset to earliest, latest, an offset and a time once it is
// gone.
func testGroupCLI(t *testing.T, cl *groupCluster) {
	b := cl.brokers[0]
	mustCLI(t, b, nil, "topic", "create", "clit", "--partitions", "3")
	var in strings.Builder
	for i := range 30 {
		fmt.Fprintf(&in, "k%d:v%d\n", i%5, i)
	}
	mustCLI(t, b, []byte(in.String()), "produce", "clit", "--key-separator", ":")
	first := mustCLI(t, b, nil, "consume", "clit", "--group", "cli-g", "--max", "10", "--format", "%v")
	second := mustCLI(t, b, nil, "consume", "clit", "--group", "cli-g", "--max", "20", "--timeout", "20s", "--format", "%v")
	got := strings.Fields(first + second)
	sort.Strings(got)
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("v%d", i))
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("two group runs printed %d values %v, want each of the 30 once\nfirst:\n%ssecond:\n%s", len(got), got, first, second)
	}
	if out := mustCLI(t, b, nil, "group", "list"); !strings.Contains(out, "cli-g") {
		t.Fatalf("group list:\n%s", out)
	}
	out := mustCLI(t, b, nil, "group", "describe", "cli-g")
	if !strings.Contains(out, "members: 0") || strings.Count(out, "clit ") != 3 {
		t.Fatalf("describe after both runs:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[0] == "clit" && f[5] != "0" {
			t.Fatalf("lag after consuming everything: %q\n%s", line, out)
		}
	}

	// A member is running: reset and delete are refused.
	member := startCLI(t, b, "consume", "clit", "--group", "cli-g", "--session-timeout", "2s", "--format", "%v")
	var d string
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(d, "members: 1"); {
		if time.Now().After(deadline) {
			t.Fatalf("the background consumer never joined:\n%s\n%s", d, member.output())
		}
		time.Sleep(100 * time.Millisecond)
		d = mustCLI(t, b, nil, "group", "describe", "cli-g")
	}
	if !strings.Contains(d, "strata-cli") {
		t.Fatalf("describe with a member:\n%s", d)
	}
	_, errOut, code := runCLI(t, b, nil, "group", "reset-offsets", "cli-g", "--topic", "clit", "--to", "earliest")
	if code != 1 || !strings.Contains(errOut, "active member") || !strings.Contains(errOut, "stop its consumers") {
		t.Fatalf("reset-offsets with a member: exit %d, %q", code, errOut)
	}
	_, errOut, code = runCLI(t, b, nil, "group", "delete", "cli-g")
	if code != 1 || !strings.Contains(errOut, "FailedPrecondition") || !strings.Contains(errOut, "active member") {
		t.Fatalf("delete with a member: exit %d, %q", code, errOut)
	}
	// SIGKILLed, the member is gone after its session timeout.
	_ = member.cmd.Process.Signal(syscall.SIGKILL)
	<-member.done
	for deadline := time.Now().Add(15 * time.Second); ; {
		if d = mustCLI(t, b, nil, "group", "describe", "cli-g"); strings.Contains(d, "members: 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed member is still there:\n%s", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The reset can race the removal reaching etcd (one flush): retry.
	reset := func(to string) string {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			out, errOut, code := runCLI(t, b, nil, "group", "reset-offsets", "cli-g", "--topic", "clit", "--to", to)
			if code == 0 {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("reset-offsets --to %s: exit %d: %s", to, code, errOut)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	committed := func() map[int32]int64 {
		t.Helper()
		c := cl.client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		offs, err := c.GroupOffsets(ctx, "cli-g")
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int64{}
		for tp, o := range offs {
			out[tp.Partition] = o
		}
		if len(out) != 3 {
			t.Fatalf("committed offsets of %d partitions, want 3: %v", len(out), offs)
		}
		return out
	}
	ends := map[int32]int64{}
	c := cl.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := c.DescribeTopic(ctx, "clit")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range td.GetPartitions() {
		ends[p.GetPartition()] = p.GetLogEndOffset()
	}
	if out := reset("earliest"); !strings.Contains(out, "PREVIOUS") {
		t.Fatalf("reset output:\n%s", out)
	}
	for p, o := range committed() {
		if o != 0 {
			t.Fatalf("after --to earliest partition %d at %d", p, o)
		}
	}
	reset("latest")
	for p, o := range committed() {
		if o != ends[p] {
			t.Fatalf("after --to latest partition %d at %d, log end %d", p, o, ends[p])
		}
	}
	reset("3")
	for p, o := range committed() {
		if o != min(3, ends[p]) {
			t.Fatalf("after --to 3 partition %d at %d (log end %d)", p, o, ends[p])
		}
	}
	reset(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	for p, o := range committed() {
		if o != ends[p] {
			t.Fatalf("after --to a future time partition %d at %d, want the log end %d", p, o, ends[p])
		}
	}
	reset("2000-01-01T00:00:00Z")
	for p, o := range committed() {
		if o != 0 {
			t.Fatalf("after --to a past time partition %d at %d, want 0", p, o)
		}
	}
	// After the reset to the start, the group reads everything again.
	again := mustCLI(t, b, nil, "consume", "clit", "--group", "cli-g", "--max", "30", "--timeout", "20s", "--format", "%v")
	if got := strings.Fields(again); !slices.Equal(sorted(got), want) {
		t.Fatalf("after the reset the group printed %v, want each of the 30 once", got)
	}
	_, errOut, code = runCLI(t, b, nil, "consume", "clit", "--group", "cli-g", "--from", "1")
	if code != 1 || !strings.Contains(errOut, "want earliest, latest or none") {
		t.Fatalf("--from 1 with --group: exit %d, %q", code, errOut)
	}
	// What the group consumer would retry forever fails at once.
	_, errOut, code = runCLI(t, b, nil, "consume", "nosuch", "--group", "new-g", "--timeout", "5s")
	if code != 1 || !strings.Contains(errOut, "NotFound") {
		t.Fatalf("--group on an unknown topic: exit %d, %q", code, errOut)
	}
	_, errOut, code = runCLI(t, b, nil, "consume", "clit", "--group", "a/b", "--timeout", "5s")
	if code != 1 || !strings.Contains(errOut, "InvalidArgument") || !strings.Contains(errOut, "invalid group name") {
		t.Fatalf("--group a/b: exit %d, %q", code, errOut)
	}
	_, errOut, code = runCLI(t, b, nil, "consume", "clit", "--group", "new-g", "--from", "none", "--timeout", "5s")
	if code != 1 || !strings.Contains(errOut, "no committed offset") {
		t.Fatalf("--from none in a new group: exit %d, %q", code, errOut)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, errOut, code := runCLI(t, b, nil, "group", "delete", "cli-g")
		if code == 0 {
			if !strings.Contains(out, "deleted group cli-g") {
				t.Fatalf("delete: %q", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delete: exit %d: %s", code, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, errOut, code = runCLI(t, b, nil, "group", "describe", "cli-g")
	if code != 1 || !strings.Contains(errOut, "NotFound") {
		t.Fatalf("describe of a deleted group: exit %d, %q", code, errOut)
	}
}

// testGroupCommitLoad: 100 consumers, each committing every 10 ms, cost
// at most one etcd write of the group per commit interval (the documented
// bound), however many commits arrive. Each consumer has one commit in
// flight (STRATA_BENCH_COMMITS_IN_FLIGHT raises it, for benchmarks.md).
func testGroupCommitLoad(t *testing.T, cl *groupCluster) {
	const members, every, run = 100, 10 * time.Millisecond, 5 * time.Second
	inFlight := 1
	if v := os.Getenv("STRATA_BENCH_COMMITS_IN_FLIGHT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("STRATA_BENCH_COMMITS_IN_FLIGHT=%q: want a positive count", v)
		}
		inFlight = n
	}
	c := cl.client(t)
	cl.createTopic(t, c, "load", members)
	var cs []*client.GroupConsumer
	for i := range members {
		mc := cl.client(t)
		gc, err := mc.JoinGroup(client.GroupConfig{Group: "load-g", Topics: []string{"load"}, ManualCommit: true, SessionTimeout: 10 * time.Second, Reset: client.ResetLatest,
			Fetch: client.ConsumerConfig{MaxWait: 2 * time.Second}, ClientID: fmt.Sprint("m", i)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, gc)
	}
	polls, cancelPolls := context.WithCancel(context.Background())
	var pollers sync.WaitGroup
	for _, gc := range cs {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			for polls.Err() == nil {
				_, _ = gc.Poll(polls)
			}
		}()
	}
	defer func() {
		cancelPolls()
		pollers.Wait()
		var closing sync.WaitGroup
		for _, gc := range cs {
			closing.Add(1)
			go func() {
				defer closing.Done()
				_ = gc.Close()
			}()
		}
		closing.Wait()
	}()
	start := time.Now()
	waitAssigned(t, "one partition each", 60*time.Second, func() bool {
		for _, gc := range cs {
			if len(gc.Assignment()) != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("%d members settled, one partition each, %s after joining", members, time.Since(start).Round(time.Millisecond))
	time.Sleep(3 * groupCommitInterval)
	rev := func() int64 {
		r, err := cl.etcd.Get(context.Background(), "/probe")
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	before := rev()
	var ticks, sent, ok, failed atomic.Int64
	var commits sync.WaitGroup
	begin := time.Now()
	for i, gc := range cs {
		commits.Add(1)
		go func() {
			defer commits.Done()
			tp := gc.Assignment()[0]
			tick := time.NewTicker(every)
			defer tick.Stop()
			// A commit every tick, up to inFlight waiting for the
			// coordinator: a tick that finds them all waiting sends
			// nothing (its offset goes with the next commit).
			busy := make(chan struct{}, inFlight)
			var mine sync.WaitGroup
			for n := int64(1); time.Since(begin) < run; n++ {
				<-tick.C
				ticks.Add(1)
				select {
				case busy <- struct{}{}:
				default:
					continue
				}
				sent.Add(1)
				mine.Add(1)
				go func() {
					defer mine.Done()
					defer func() { <-busy }()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					if err := gc.CommitOffsets(ctx, map[client.TopicPartition]int64{tp: n + int64(i)}); err != nil {
						if failed.Add(1) <= 3 {
							t.Logf("commit failed: %v", err)
						}
						return
					}
					ok.Add(1)
				}()
			}
			mine.Wait()
		}()
	}
	commits.Wait()
	elapsed := time.Since(begin)
	after := rev()
	writes := etcdtest.GroupWrites(t, cl.etcd, cl.prefix, "load-g", before, after)
	bound := int(elapsed/groupCommitInterval) + 1
	t.Logf("commit load: %d members, up to %d commits in flight each, %d commit ticks (%.0f/s), %d commits sent (%.0f/s), %d ok, %d failed, in %s: %d etcd writes of the group (%.1f/s); bound %d (one per %s); etcd revisions overall %d",
		members, inFlight, ticks.Load(), float64(ticks.Load())/elapsed.Seconds(), sent.Load(), float64(sent.Load())/elapsed.Seconds(), ok.Load(), failed.Load(), elapsed.Round(time.Millisecond),
		writes, float64(writes)/elapsed.Seconds(), bound, groupCommitInterval, after-before)
	if failed.Load() > 0 {
		t.Errorf("%d commits failed", failed.Load())
	}
	if writes > bound {
		t.Errorf("%d etcd writes in %s, above the bound %d", writes, elapsed, bound)
	}
	// Otherwise the bound holds for want of commits, not by coalescing.
	if ok.Load() < int64(5*bound) {
		t.Errorf("only %d commits acknowledged in %s: too few to show coalescing (want at least 5 per write the bound allows, %d)", ok.Load(), elapsed, 5*bound)
	}
}

// testGroupCoordinatorKilled: the broker coordinating a group is
// SIGKILLed while two consumers consume and commit: the other broker
// takes the group over from etcd, the consumers keep their partitions
// and keep committing, no acknowledged commit is lost, every record is
// consumed, and a new consumer resumes exactly at the committed offsets.
func testGroupCoordinatorKilled(t *testing.T, cl *groupCluster) {
	const session = 6 * time.Second
	c := cl.client(t)
	cl.createTopic(t, c, "kill", 12)
	l := newGroupLog()
	prod := startProducer(t, c, l, "kill", 12, 30*time.Millisecond)
	cs := []*testConsumer{
		startConsumer(t, cl, l, "k1", "kill-g", "kill", session),
		startConsumer(t, cl, l, "k2", "kill-g", "kill", session),
	}
	waitAssigned(t, "6 partitions each", 20*time.Second, ownsN(6, cs...))
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	d, err := c.DescribeGroup(ctx, "kill-g")
	if err != nil {
		t.Fatal(err)
	}
	coord := d.GetCoordinatorId()
	if coord < 1 || coord > 2 {
		t.Fatalf("coordinator %d", coord)
	}
	// The commits acknowledged before the kill (a lower bound of what is
	// committed).
	committedBefore := map[client.TopicPartition]int64{}
	l.mu.Lock()
	for _, e := range l.entries {
		if e.kind == entryCommitted {
			committedBefore[e.tp] = max(committedBefore[e.tp], e.offset)
		}
	}
	l.mu.Unlock()
	killedAt := time.Now()
	cl.brokers[coord-1].Kill()
	t.Logf("SIGKILLed broker %d, the coordinator", coord)
	survivor := cl.brokers[2-coord]

	// The group keeps working: commits succeed again, through the other
	// broker.
	var resumed time.Time
	for deadline := time.Now().Add(30 * time.Second); resumed.IsZero(); {
		l.mu.Lock()
		for _, e := range l.entries {
			if e.kind == entryCommitted && e.at.After(killedAt.Add(100*time.Millisecond)) {
				resumed = e.at
				break
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no commit succeeded within 30s of the coordinator's kill; survivor's log:\n%s", tail(survivor.Logs(), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("commits succeeded again %s after the kill", resumed.Sub(killedAt).Round(time.Millisecond))
	sc := newClient(t, survivor)
	if d, err = sc.DescribeGroup(ctx, "kill-g"); err != nil || d.GetCoordinatorId() == coord || len(d.GetMembers()) != 2 {
		t.Fatalf("after the kill: %v %v", d, err)
	}
	time.Sleep(time.Second)
	prod.close()
	waitConsumedAll(t, l, 40*time.Second)
	for _, c := range cs {
		c.close(t)
	}
	entries := l.snapshot()
	for _, v := range checkOwnership(entries) {
		t.Error(v)
	}
	for _, v := range checkNoSkips(entries) {
		t.Error(v)
	}
	released := 0
	for _, e := range entries {
		if e.kind == entryReleased && e.at.After(killedAt) && e.at.Before(resumed) {
			released++
		}
	}
	t.Logf("partitions given up between the kill and the first commit after it: %d", released)

	// Nothing acknowledged was lost; the group's offsets are where the
	// consumers stopped.
	d, err = sc.DescribeGroup(ctx, "kill-g")
	if err != nil {
		t.Fatal(err)
	}
	committed := map[client.TopicPartition]int64{}
	for _, p := range d.GetPartitions() {
		tp := client.TopicPartition{Topic: p.GetTopic(), Partition: p.GetPartition()}
		committed[tp] = p.GetCommittedOffset()
		if p.GetCommittedOffset() < committedBefore[tp] {
			t.Errorf("%s committed at %d, below the %d acknowledged before the kill", tp, p.GetCommittedOffset(), committedBefore[tp])
		}
		if p.GetCommittedOffset() != p.GetLogEndOffset() {
			t.Errorf("%s committed at %d, log end %d, after consuming everything", tp, p.GetCommittedOffset(), p.GetLogEndOffset())
		}
	}
	// A new member resumes at the committed offsets.
	p := sc.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_ALL, ManualPartitions: true})
	for i := range int32(12) {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "kill", Partition: i, Value: []byte("after")}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	gc, err := sc.JoinGroup(client.GroupConfig{Group: "kill-g", Topics: []string{"kill"}, Reset: client.ResetNone})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	first := map[client.TopicPartition]int64{}
	for len(first) < 12 {
		recs, err := gc.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			tp := client.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			if _, ok := first[tp]; !ok {
				first[tp] = r.Offset
			}
		}
	}
	for tp, o := range first {
		if o != committed[tp] {
			t.Errorf("new member started %s at %d, committed %d", tp, o, committed[tp])
		}
	}
}
