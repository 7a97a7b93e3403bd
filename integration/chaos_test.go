package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-stream/strata/client"
	"github.com/strata-stream/strata/internal/etcdtest"
	"github.com/strata-stream/strata/internal/miniotest"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// The tests here check what an acks=all acknowledgement promises (DESIGN.md,
// "Durability"): the record survives the loss of any broker and its disk.
// Records are keyed "p<partition>" and carry their per-partition sequence
// number as the value, so a partition read back shows what was lost,
// duplicated or reordered.

const chaosPartitions = 6

// chaosCluster is three broker processes on one real etcd and one real
// MinIO, and a client seeded with all three.
type chaosCluster struct {
	brokers []*brokerProc
	c       *client.Client
	// earlier holds the log tails of broker incarnations that were killed
	// (Restart starts a fresh log buffer), for the failure report.
	earlier []string
}

// startChaosCluster starts the cluster; dataDirs[i] is broker i+1's data
// directory ("" for a fresh one).
func startChaosCluster(t *testing.T, bucket string, ttl time.Duration, dataDirs []string) *chaosCluster {
	t.Helper()
	m := miniotest.Start(t)
	m.MakeBucket(t, bucket)
	emb, _ := etcdtest.Start(t) // after the brokers (cleanups run last-in first-out)
	env := []string{"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey}
	storeURL := fmt.Sprintf("s3://%s/c1?endpoint=%s&region=us-east-1&path-style=true", bucket, m.Endpoint())
	cc := &chaosCluster{}
	var seeds []string
	for id := 1; id <= 3; id++ {
		b := startBrokerEnv(t, dataDirs[id-1], env, "--broker-id", fmt.Sprint(id), "--etcd-endpoints", strings.Join(emb.Endpoints(), ","),
			"--object-store", storeURL, "--session-ttl", ttl.String(), "--reconcile-interval", "500ms")
		cc.brokers = append(cc.brokers, b)
		seeds = append(seeds, b.Addr)
	}
	var err error
	cc.c, err = client.New(client.Config{Brokers: seeds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.c.Close() })
	return cc
}

// kill SIGKILLs broker id, keeping the tail of its log.
func (cc *chaosCluster) kill(id int32) {
	b := cc.brokers[id-1]
	b.Kill()
	cc.earlier = append(cc.earlier, fmt.Sprintf("broker %d (killed at %s):\n%s", id, time.Now().Format("15:04:05.000"), tail(b.Logs(), 6000)))
}

// logLogs writes the brokers' log tails to the test log; called on failure.
func (cc *chaosCluster) logLogs(t *testing.T) {
	t.Helper()
	for _, l := range cc.earlier {
		t.Logf("log of an earlier incarnation of %s", l)
	}
	for i, b := range cc.brokers {
		t.Logf("log of broker %d (current incarnation):\n%s", i+1, tail(b.Logs(), 12000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "[...]\n" + s[len(s)-n:]
}

// tryLeaders is leaders without failing the test: partition → leader id
// (-1: none).
func tryLeaders(c *client.Client, topic string) (map[int32]int32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	md, err := c.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	if len(md.GetTopics()) == 0 {
		return nil, fmt.Errorf("metadata lacks topic %s", topic)
	}
	out := map[int32]int32{}
	for _, p := range md.GetTopics()[0].GetPartitions() {
		out[p.GetPartition()] = p.GetLeaderId()
	}
	return out, nil
}

// waitLeaders waits until every partition of topic has a leader that is
// not in down, and returns the leaders.
func waitLeaders(t *testing.T, cc *chaosCluster, topic string, timeout time.Duration, down ...int32) map[int32]int32 {
	t.Helper()
	var ls map[int32]int32
	var err error
	for deadline := time.Now().Add(timeout); ; {
		ls, err = tryLeaders(cc.c, topic)
		ok := err == nil && len(ls) == chaosPartitions
		for _, l := range ls {
			if l <= 0 || slices.Contains(down, l) {
				ok = false
			}
		}
		if ok {
			return ls
		}
		if time.Now().After(deadline) {
			cc.logLogs(t)
			t.Fatalf("after %s, partitions of %s without a live leader: %v (err %v; down: %v)", timeout, topic, ls, err, down)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readPartition reads topic/partition from the earliest offset to its
// high watermark, within ctx.
func readPartition(ctx context.Context, c *client.Client, topic string, partition int32) ([]client.ConsumedRecord, error) {
	pc := c.ConsumePartition(topic, partition, client.Earliest(), client.ConsumerConfig{MaxWait: 200 * time.Millisecond})
	defer pc.Close()
	var out []client.ConsumedRecord
	for {
		recs, err := pc.Poll(ctx)
		if err != nil {
			return out, fmt.Errorf("consume %s/%d at offset %d (high watermark %d): %w", topic, partition, pc.Position(), pc.HighWatermark(), err)
		}
		out = append(out, recs...)
		if pc.Position() >= pc.HighWatermark() && len(recs) == 0 {
			return out, nil
		}
	}
}

// seqLog is what a producer learned from its promises, per partition:
// acknowledged sequence number → offset, and the failed ones.
type seqLog struct {
	mu struct {
		sync.Mutex
		acked   [chaosPartitions]map[int64]int64
		failed  [chaosPartitions]map[int64]string
		doubled []string // promises called more than once
	}
}

func newSeqLog() *seqLog {
	l := &seqLog{}
	for p := range chaosPartitions {
		l.mu.acked[p] = map[int64]int64{}
		l.mu.failed[p] = map[int64]string{}
	}
	return l
}

// promise returns the promise of partition p's record seq.
func (l *seqLog) promise(p int32, seq int64) client.Promise {
	return func(r *client.Record, err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		_, a := l.mu.acked[p][seq]
		_, f := l.mu.failed[p][seq]
		if a || f {
			l.mu.doubled = append(l.mu.doubled, fmt.Sprintf("partition %d seq %d (now err=%v offset=%d)", p, seq, err, r.Offset))
			return
		}
		if err != nil {
			l.mu.failed[p][seq] = err.Error()
			return
		}
		l.mu.acked[p][seq] = r.Offset
	}
}

func (l *seqLog) counts() (acked, failed, unknownOffset int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := range chaosPartitions {
		acked += len(l.mu.acked[p])
		failed += len(l.mu.failed[p])
		for _, off := range l.mu.acked[p] {
			if off < 0 {
				unknownOffset++
			}
		}
	}
	return acked, failed, unknownOffset
}

// chaosRecord is partition p's record seq.
func chaosRecord(topic string, p int32, seq int64) *client.Record {
	return &client.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprint("p", p)), Value: []byte(strconv.FormatInt(seq, 10))}
}

// violations are what checkPartition found wrong with a partition, by
// kind, each a precise message.
type violations struct {
	lost         []string // acknowledged and not there
	moved        []string // acknowledged and at another offset
	ackedTwiceAt []string // two seqs acknowledged at one offset
	dup          []string // a seq there twice
	reordered    []string // a seq after a higher one
	garbled      []string // wrong key, bad value, offsets not increasing
}

func (v *violations) count() int {
	return len(v.lost) + len(v.moved) + len(v.ackedTwiceAt) + len(v.dup) + len(v.reordered) + len(v.garbled)
}

// all lists the violations, the most telling kinds first.
func (v *violations) all() []string {
	return slices.Concat(v.lost, v.moved, v.ackedTwiceAt, v.dup, v.reordered, v.garbled)
}

// checkPartition compares partition p as read back with what was
// acknowledged (seq → offset): every acknowledged seq is there exactly
// once, at the offset its acknowledgement reported; offsets and seqs
// strictly increase; no seq, acknowledged or not, is there twice; no two
// seqs were acknowledged at one offset.
func checkPartition(p int32, recs []client.ConsumedRecord, acked map[int64]int64) *violations {
	v := &violations{}
	wantKey := fmt.Sprint("p", p)
	at := map[int64]int64{}    // seq → offset read
	byOff := map[int64]int64{} // offset → seq read
	prevOff, prevSeq := int64(-1), int64(-1)
	for _, r := range recs {
		if string(r.Key) != wantKey {
			v.garbled = append(v.garbled, fmt.Sprintf("partition %d offset %d: key %q, want %q", p, r.Offset, r.Key, wantKey))
			continue
		}
		seq, err := strconv.ParseInt(string(r.Value), 10, 64)
		if err != nil {
			v.garbled = append(v.garbled, fmt.Sprintf("partition %d offset %d: value %q is not a sequence number", p, r.Offset, r.Value))
			continue
		}
		if r.Offset <= prevOff {
			v.garbled = append(v.garbled, fmt.Sprintf("partition %d: offset %d (seq %d) read after offset %d", p, r.Offset, seq, prevOff))
		}
		if first, dup := at[seq]; dup {
			ackOff, wasAcked := acked[seq]
			ack := "not acknowledged"
			if wasAcked {
				ack = fmt.Sprintf("acknowledged at offset %d", ackOff)
			}
			v.dup = append(v.dup, fmt.Sprintf("partition %d: seq %d is there twice, at offsets %d and %d (%s)", p, seq, first, r.Offset, ack))
		} else {
			at[seq] = r.Offset
		}
		// Adjacent pairs increasing is the whole order increasing.
		if prevSeq >= 0 && seq <= prevSeq {
			v.reordered = append(v.reordered, fmt.Sprintf("partition %d: seq %d at offset %d follows seq %d at offset %d", p, seq, r.Offset, prevSeq, prevOff))
		}
		byOff[r.Offset] = seq
		prevOff, prevSeq = r.Offset, seq
	}
	seqs := make([]int64, 0, len(acked))
	for s := range acked {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	ackedAt := map[int64]int64{} // offset → seq acknowledged there
	for _, seq := range seqs {
		off := acked[seq]
		if other, ok := ackedAt[off]; ok && off >= 0 {
			v.ackedTwiceAt = append(v.ackedTwiceAt, fmt.Sprintf("partition %d: seqs %d and %d were both acknowledged at offset %d", p, other, seq, off))
		}
		ackedAt[off] = seq
		got, ok := at[seq]
		switch {
		case ok && off == -1:
			// Acknowledged as a retry of a batch written too long ago for
			// the leader to remember its offsets: present is enough.
		case !ok:
			there := "nothing"
			if s, ok := byOff[off]; ok {
				there = fmt.Sprintf("seq %d", s)
			}
			v.lost = append(v.lost, fmt.Sprintf("partition %d: acknowledged seq %d (offset %d) is missing; offset %d holds %s", p, seq, off, off, there))
		case got != off:
			v.moved = append(v.moved, fmt.Sprintf("partition %d: seq %d was acknowledged at offset %d but is at offset %d", p, seq, off, got))
		}
	}
	return v
}

// layout describes recs as runs of consecutive offsets holding
// consecutive seqs, "offsets [a, b]: seqs [x, y]", at most max runs.
func layout(recs []client.ConsumedRecord, maxRuns int) string {
	var runs []string
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].Offset == recs[j-1].Offset+1 && seqOf(recs[j]) == seqOf(recs[j-1])+1 {
			j++
		}
		if len(runs) == maxRuns {
			runs = append(runs, fmt.Sprintf("... (%d more records)", len(recs)-i))
			break
		}
		runs = append(runs, fmt.Sprintf("offsets [%d, %d]: seqs [%d, %d]", recs[i].Offset, recs[j-1].Offset, seqOf(recs[i]), seqOf(recs[j-1])))
		i = j
	}
	if len(runs) == 0 {
		return "empty"
	}
	return strings.Join(runs, "; ")
}

// seqOf is a record's seq, -1 when its value is not one.
func seqOf(r client.ConsumedRecord) int64 {
	seq, err := strconv.ParseInt(string(r.Value), 10, 64)
	if err != nil {
		return -1
	}
	return seq
}

// checkAcked reads every partition of topic and checks it against l: it
// reports up to 10 violations per partition with t.Errorf, then one line
// per bad partition with the counts by kind and its layout, and returns
// whether all partitions were clean.
func checkAcked(t *testing.T, c *client.Client, topic string, l *seqLog, stage string) bool {
	t.Helper()
	var summary []string
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := range int32(chaosPartitions) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		recs, err := readPartition(ctx, c, topic, p)
		cancel()
		if err != nil {
			t.Errorf("%s: %v", stage, err)
			summary = append(summary, fmt.Sprintf("partition %d: unreadable: %v", p, err))
			continue
		}
		v := checkPartition(p, recs, l.mu.acked[p])
		t.Logf("%s: partition %d holds %d records (%d acknowledged, %d failed); %d violations", stage, p, len(recs), len(l.mu.acked[p]), len(l.mu.failed[p]), v.count())
		for i, b := range v.all() {
			if i == 10 {
				t.Errorf("%s: partition %d: ... and %d more", stage, p, v.count()-10)
				break
			}
			t.Errorf("%s: %s", stage, b)
		}
		if v.count() > 0 {
			summary = append(summary, fmt.Sprintf("partition %d: %d acknowledged missing, %d acknowledged at another offset, %d offsets acknowledged twice, %d seqs there twice, %d reorderings, %d garbled; holds %s",
				p, len(v.lost), len(v.moved), len(v.ackedTwiceAt), len(v.dup), len(v.reordered), len(v.garbled), layout(recs, 20)))
		}
	}
	if len(summary) > 0 {
		t.Errorf("%s: violations:\n%s", stage, strings.Join(summary, "\n"))
	}
	return len(summary) == 0
}

// TestChaosAcksAll produces keyed sequence numbers with acks=all to six
// partitions while a random broker is SIGKILLed and restarted again and
// again for 60 s. Afterwards every acknowledged record is in its
// partition exactly once, at the offset its acknowledgement reported, in
// order, and no record (acknowledged or not) is there twice.
func TestChaosAcksAll(t *testing.T) {
	const (
		ttl       = 3 * time.Second
		topic     = "chaos"
		chaosFor  = 60 * time.Second
		tick      = 10 * time.Millisecond // one record per partition per tick: 600 records/s
		maxKills  = 40
		startedBy = 30 * time.Second
	)
	cc := startChaosCluster(t, "chaos", ttl, []string{"", "", ""})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := cc.c.CreateTopic(ctx, topic, chaosPartitions, nil); err != nil {
		t.Fatal(err)
	}
	waitLeaders(t, cc, topic, startedBy)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("chaos seed %d", seed)

	l := newSeqLog()
	p := cc.c.NewProducer(client.ProducerConfig{
		Acks: stratav1.Acks_ACKS_ALL, ManualPartitions: true, Idempotent: true,
		RetryBackoff: 50 * time.Millisecond, Retries: 1000, DeliveryTimeout: 30 * time.Second,
		MaxInFlightBytes: 512 << 10,
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var produceErrs int // Produce refused the record (not sent, seq reused)
	var lastProduceErr error
	var stopOnce sync.Once
	stopProducing := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	t.Cleanup(func() { stopProducing(); p.Close() }) // before the brokers stop
	wg.Add(1)
	go func() {
		defer wg.Done()
		var next [chaosPartitions]int64
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			for part := range int32(chaosPartitions) {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				seq := next[part]
				err := p.Produce(pctx, chaosRecord(topic, part, seq), l.promise(part, seq))
				pcancel()
				if err != nil {
					produceErrs++
					lastProduceErr = err
					continue
				}
				next[part]++
			}
		}
	}()

	// Chaos: one broker down at a time, for between 1 s and TTL + 3 s
	// (shorter than the TTL: it comes back before it lost its partitions;
	// longer: they fail over), then a few seconds with all three up.
	began := time.Now()
	kills, movedKills, moved := 0, 0, 0
	for time.Since(began) < chaosFor && kills < maxKills {
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		// Mostly a partition leader (a kill then fails partitions
		// over), sometimes any broker (maybe only the controller).
		before, _ := tryLeaders(cc.c, topic)
		victim := int32(1 + rng.IntN(3))
		if lead := leaderIDs(before); len(lead) > 0 && rng.IntN(4) > 0 {
			victim = lead[rng.IntN(len(lead))]
		}
		down := time.Second + time.Duration(rng.Int64N(int64(ttl+2*time.Second)))
		cc.kill(victim)
		kills++
		killed := time.Now()
		movedNow := map[int32]bool{}
		for time.Since(killed) < down {
			time.Sleep(250 * time.Millisecond)
			now, err := tryLeaders(cc.c, topic)
			if err != nil {
				continue
			}
			for part, was := range before {
				if was == victim && now[part] > 0 && now[part] != victim {
					movedNow[part] = true
				}
			}
		}
		if len(movedNow) > 0 {
			movedKills++
			moved += len(movedNow)
		}
		t.Logf("chaos: broker %d down for %s (partitions it led before: %v; moved while down: %d)", victim, time.Since(killed).Round(time.Millisecond), ledBy(before, victim), len(movedNow))
		cc.brokers[victim-1].Restart()
	}
	stopProducing()
	chaosTook := time.Since(began)
	fctx, fcancel := context.WithTimeout(ctx, 90*time.Second)
	ferr := p.Flush(fctx)
	fcancel()
	p.Close()
	acked, failed, unknown := l.counts()
	t.Logf("chaos for %s (then flushed in %s): %d kills, %d of them with partitions failing over (%d partition moves); %d records acknowledged (%d of them as retries of batches written too long ago to know their offsets), %d failed, %d refused by Produce (last: %v)",
		chaosTook.Round(time.Millisecond), (time.Since(began) - chaosTook).Round(time.Millisecond), kills, movedKills, moved, acked, unknown, failed, produceErrs, lastProduceErr)
	if ferr != nil {
		t.Errorf("flushing the producer after the chaos: %v", ferr)
	}
	l.mu.Lock()
	for part := range chaosPartitions {
		var errs []string
		for seq, e := range l.mu.failed[part] {
			if len(errs) < 3 {
				errs = append(errs, fmt.Sprintf("seq %d: %s", seq, e))
			}
		}
		if len(errs) > 0 {
			t.Logf("partition %d: %d failed, e.g. %s", part, len(l.mu.failed[part]), strings.Join(errs, "; "))
		}
	}
	doubled := l.mu.doubled
	l.mu.Unlock()
	if len(doubled) > 0 {
		t.Errorf("%d promises called more than once, first: %s", len(doubled), doubled[0])
	}
	if acked == 0 {
		cc.logLogs(t)
		t.Fatal("no record was acknowledged during the chaos")
	}

	waitLeaders(t, cc, topic, 30*time.Second)
	if !checkAcked(t, cc.c, topic, l, "after chaos") {
		cc.logLogs(t)
		t.FailNow()
	}
}

// leaderIDs lists the brokers that lead a partition in ls.
func leaderIDs(ls map[int32]int32) []int32 {
	var out []int32
	for _, l := range ls {
		if l > 0 && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// ledBy lists the partitions ls gives to broker id.
func ledBy(ls map[int32]int32, id int32) []int32 {
	var out []int32
	for p, l := range ls {
		if l == id {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// TestDurabilityWithoutDisk deletes a broker's data directory while it
// is down: every record acknowledged with acks=all stays readable, exactly
// once at its offset. Two cases, each on its own topic: the broker comes
// back at once with an empty disk (before its session expired, so it may
// keep its partitions), and the broker stays down until its partitions
// have failed over to the others, then rejoins with an empty disk.
func TestDurabilityWithoutDisk(t *testing.T) {
	const (
		ttl   = 3 * time.Second
		round = 600 // records per partition
	)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	cc := startChaosCluster(t, "nodisk", ttl, dirs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// setup creates topic and produces round records to each of its
	// partitions with acks=all; it returns what was acknowledged.
	setup := func(topic string) *seqLog {
		t.Helper()
		if _, err := cc.c.CreateTopic(ctx, topic, chaosPartitions, nil); err != nil {
			t.Fatal(err)
		}
		waitLeaders(t, cc, topic, 30*time.Second)
		p := cc.c.NewProducer(client.ProducerConfig{Acks: stratav1.Acks_ACKS_ALL, ManualPartitions: true, Idempotent: true})
		defer p.Close()
		var recs []*client.Record
		for seq := range int64(round) {
			for part := range int32(chaosPartitions) {
				recs = append(recs, chaosRecord(topic, part, seq))
			}
		}
		pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
		defer pcancel()
		if err := p.ProduceSync(pctx, recs...); err != nil {
			cc.logLogs(t)
			t.Fatalf("produce %d records per partition to %s with acks=all: %v", round, topic, err)
		}
		l := newSeqLog()
		for _, r := range recs {
			seq, _ := strconv.ParseInt(string(r.Value), 10, 64)
			l.promise(r.Partition, seq)(r, nil)
		}
		return l
	}
	// wipe SIGKILLs the leader of topic's partition 0 and empties its
	// data dir.
	wipe := func(topic string) int32 {
		t.Helper()
		victim := waitLeaders(t, cc, topic, 30*time.Second)[0]
		cc.kill(victim)
		dir := cc.brokers[victim-1].DataDir
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return victim
	}
	clean := true
	check := func(topic string, l *seqLog, stage string) {
		t.Helper()
		clean = checkAcked(t, cc.c, topic, l, topic+", "+stage) && clean
	}

	// 1. Back at once with an empty disk.
	l := setup("nodisk-restart")
	victim := wipe("nodisk-restart")
	cc.brokers[victim-1].Restart()
	ls := waitLeaders(t, cc, "nodisk-restart", 30*time.Second)
	t.Logf("nodisk-restart: broker %d (leader of partition 0) SIGKILLed, data dir deleted, restarted at once; leaders now %v", victim, ls)
	check("nodisk-restart", l, fmt.Sprintf("broker %d restarted at once with an empty data dir", victim))

	// 2. Down with its disk gone until its partitions failed over; then
	// it rejoins with an empty disk.
	l = setup("nodisk-failover")
	victim = wipe("nodisk-failover")
	ls = waitLeaders(t, cc, "nodisk-failover", ttl+20*time.Second, victim)
	t.Logf("nodisk-failover: broker %d (leader of partition 0) SIGKILLed, data dir deleted; leaders now %v", victim, ls)
	check("nodisk-failover", l, fmt.Sprintf("partitions of broker %d failed over", victim))
	cc.brokers[victim-1].Restart()
	ls = waitLeaders(t, cc, "nodisk-failover", 30*time.Second)
	t.Logf("nodisk-failover: broker %d rejoined with an empty data dir; leaders now %v", victim, ls)
	check("nodisk-failover", l, fmt.Sprintf("broker %d rejoined with an empty data dir", victim))
	if !clean {
		cc.logLogs(t)
	}
}
