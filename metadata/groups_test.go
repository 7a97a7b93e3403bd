package metadata

import (
	"encoding/json"
	"errors"
	"maps"
	"testing"
)

func member(id string) GroupMember {
	return GroupMember{ID: id, Generation: 1, Topics: []string{"t"}, SessionTimeoutMs: 3000, RebalanceTimeoutMs: 60000}
}

// TestGroupCoordinatorFencing: one coordinator key per group; a second
// lease cannot take it while it lives; once the first lease is gone the
// second takes over and the first's fence commits nothing.
func TestGroupCoordinatorFencing(t *testing.T) {
	s, ctx := newStore(t)
	la, lb := lease(t, ctx), lease(t, ctx)
	fa, err := s.AcquireGroupCoordinator(ctx, "g", 1, la)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireGroupCoordinator(ctx, "g", 2, lb); !errors.Is(err, ErrCoordinatorExists) {
		t.Fatalf("second coordinator: %v, want ErrCoordinatorExists", err)
	}
	if id, ok, err := s.GroupCoordinator(ctx, "g"); err != nil || !ok || id != 1 {
		t.Fatalf("coordinator = %d %v %v, want 1", id, ok, err)
	}
	tp := TopicPartition{"t", 0}
	st := &GroupState{Group: "g", Epoch: 1, Members: []GroupMember{member("m1")}}
	if err := s.CommitGroup(ctx, fa, st, map[TopicPartition]int64{tp: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := testCli.Revoke(ctx, la); err != nil {
		t.Fatal(err)
	}
	fb, err := s.AcquireGroupCoordinator(ctx, "g", 2, lb)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CommitGroup(ctx, fa, nil, map[TopicPartition]int64{tp: 99}); !errors.Is(err, ErrFenced) {
		t.Fatalf("deposed coordinator's commit: %v, want ErrFenced", err)
	}
	if err := s.CommitGroup(ctx, fb, nil, map[TopicPartition]int64{tp: 11}); err != nil {
		t.Fatal(err)
	}
	info, err := s.ReadGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if info.Offsets[tp] != 11 || info.Coordinator != 2 || len(info.State.Members) != 1 {
		t.Fatalf("group after takeover: %+v", info)
	}
	// The same lease taking its own key again fences its earlier fence.
	fb2, err := s.AcquireGroupCoordinator(ctx, "g", 2, lb)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CommitGroup(ctx, fb, nil, map[TopicPartition]int64{tp: 12}); !errors.Is(err, ErrFenced) {
		t.Fatalf("earlier fence of the same lease: %v, want ErrFenced", err)
	}
	if err := s.ReleaseGroupCoordinator(ctx, fb2); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GroupCoordinator(ctx, "g"); ok {
		t.Fatal("coordinator key still there after release")
	}
}

// TestCommitGroupChunks: a flush of more offsets than a transaction may
// hold lands in several transactions, all of them.
func TestCommitGroupChunks(t *testing.T) {
	s, ctx := newStore(t)
	f, err := s.AcquireGroupCoordinator(ctx, "big", 1, lease(t, ctx))
	if err != nil {
		t.Fatal(err)
	}
	offs := map[TopicPartition]int64{}
	for p := range int32(300) {
		offs[TopicPartition{"t", p}] = int64(p) * 3
	}
	before, err := testCli.Get(ctx, "/revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CommitGroup(ctx, f, &GroupState{Group: "big"}, offs); err != nil {
		t.Fatal(err)
	}
	after, err := testCli.Get(ctx, "/revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	// 301 puts: ceil(301/120) = 3 transactions. (Other tests share the
	// etcd, so at least 3.)
	if d := after.Header.Revision - before.Header.Revision; d < 3 {
		t.Fatalf("revision advanced by %d, want at least 3 transactions", d)
	}
	got, err := s.GroupOffsets(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, offs) {
		t.Fatalf("read back %d offsets, want %d equal ones", len(got), len(offs))
	}
}

// TestGroupResetAndDelete: reset and delete are refused while the state
// lists members and leave everything as it was; without members, reset
// returns the offsets it replaced and delete removes every key.
func TestGroupResetAndDelete(t *testing.T) {
	s, ctx := newStore(t)
	f, err := s.AcquireGroupCoordinator(ctx, "g", 1, lease(t, ctx))
	if err != nil {
		t.Fatal(err)
	}
	tp0, tp1 := TopicPartition{"t", 0}, TopicPartition{"t", 1}
	if err := s.CommitGroup(ctx, f, &GroupState{Group: "g", Epoch: 3, Members: []GroupMember{member("m1"), member("m2")}}, map[TopicPartition]int64{tp0: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResetGroupOffsets(ctx, "g", map[TopicPartition]int64{tp0: 0}); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("reset with members: %v, want ErrGroupNotEmpty", err)
	}
	if err := s.DeleteGroup(ctx, "g"); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("delete with members: %v, want ErrGroupNotEmpty", err)
	}
	if offs, _ := s.GroupOffsets(ctx, "g"); offs[tp0] != 5 {
		t.Fatalf("offsets after refused reset: %v", offs)
	}
	if _, err := s.ResetGroupOffsets(ctx, "g", map[TopicPartition]int64{tp0: -1}); !errors.Is(err, ErrInvalidOffset) {
		t.Fatalf("negative offset: %v", err)
	}

	if err := s.CommitGroup(ctx, f, &GroupState{Group: "g", Epoch: 4}, nil); err != nil {
		t.Fatal(err)
	}
	prev, err := s.ResetGroupOffsets(ctx, "g", map[TopicPartition]int64{tp0: 1, tp1: 7})
	if err != nil {
		t.Fatal(err)
	}
	if prev[tp0] != 5 || prev[tp1] != -1 {
		t.Fatalf("previous offsets %v, want t/0=5 t/1=-1", prev)
	}
	// A group known only by its offsets is listed.
	if _, err := s.ResetGroupOffsets(ctx, "only-offsets", map[TopicPartition]int64{tp0: 2}); err != nil {
		t.Fatal(err)
	}
	gs, err := s.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].Name != "g" || gs[0].Coordinator != 1 || !gs[0].HasState || gs[1].Name != "only-offsets" || gs[1].HasState {
		t.Fatalf("groups: %+v", gs)
	}
	if err := s.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadGroup(ctx, "g"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("deleted group: %v, want ErrGroupNotFound", err)
	}
	if err := s.DeleteGroup(ctx, "g"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("second delete: %v, want ErrGroupNotFound", err)
	}
	// The deleted coordinator key fences the old coordinator.
	if err := s.CommitGroup(ctx, f, nil, map[TopicPartition]int64{tp0: 9}); !errors.Is(err, ErrFenced) {
		t.Fatalf("commit after delete: %v, want ErrFenced", err)
	}
	if _, err := s.ReadGroup(ctx, "bad/name"); !errors.Is(err, ErrInvalidGroupName) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestDecodeGroupState(t *testing.T) {
	good, _ := json.Marshal(GroupState{Group: "g", Epoch: 2, Members: []GroupMember{member("a"), member("b")}})
	if _, err := DecodeGroupState(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{`,
		`{"group":"","epoch":1}`,
		`{"group":"g","epoch":-1}`,
		`{"group":"g","members":[{"id":"a","generation":1,"topics":["t"],"session_timeout_ms":1,"rebalance_timeout_ms":1},{"id":"a","generation":1,"topics":["t"],"session_timeout_ms":1,"rebalance_timeout_ms":1}]}`,
		`{"group":"g","members":[{"id":"a","generation":1,"topics":[],"session_timeout_ms":1,"rebalance_timeout_ms":1}]}`,
		`{"group":"g","members":[{"id":"a","generation":1,"topics":["t"],"session_timeout_ms":1,"rebalance_timeout_ms":1,"assigned":{"t":[-1]}}]}`,
	} {
		if _, err := DecodeGroupState([]byte(bad)); !errors.Is(err, ErrCorruptGroupState) {
			t.Errorf("DecodeGroupState(%s) = %v, want ErrCorruptGroupState", bad, err)
		}
	}
}

// FuzzDecodeGroupState: any bytes decode to a valid state or fail with
// ErrCorruptGroupState, never panic; a valid state survives re-encoding.
func FuzzDecodeGroupState(f *testing.F) {
	good, _ := json.Marshal(GroupState{Group: "g", Epoch: 2, Members: []GroupMember{member("a")}})
	f.Add(good)
	f.Add([]byte(`{"group":"g","members":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeGroupState(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptGroupState) {
				t.Fatalf("error %v does not wrap ErrCorruptGroupState", err)
			}
			return
		}
		again, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeGroupState(again); err != nil {
			t.Fatalf("re-encoded valid state fails: %v", err)
		}
	})
}

// FuzzDecodeGroupOffset: any committed offset value decodes to an offset
// that is not negative or fails with ErrCorruptGroupState; any key tail
// parses to a topic and a partition that format back to it, or is
// skipped.
func FuzzDecodeGroupOffset(f *testing.F) {
	f.Add([]byte(`{"offset":42,"committed_ms":1764172800000}`), "orders/3")
	f.Add([]byte(`{"offset":-1}`), "orders/-1")
	f.Add([]byte(`{"offset":"1"}`), "/0")
	f.Add([]byte(`null`), "a/b/1")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		o, err := decodeGroupOffset(b)
		switch {
		case err != nil && !errors.Is(err, ErrCorruptGroupState):
			t.Fatalf("error %v does not wrap ErrCorruptGroupState", err)
		case err == nil && o < 0:
			t.Fatalf("decoded a negative offset %d", o)
		}
		if tp, ok := parseOffsetKey(key); ok {
			if tp.Topic == "" || tp.Partition < 0 {
				t.Fatalf("parsed %q as %+v", key, tp)
			}
		}
	})
}

func FuzzValidateGroupName(f *testing.F) {
	f.Add("orders-consumers")
	f.Add("a/b")
	f.Add("..")
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateGroupName(name)
		if (err == nil) != (ValidateTopicName(name) == nil) {
			t.Fatalf("group name %q: %v, topic rules disagree", name, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidGroupName) {
			t.Fatalf("error %v does not wrap ErrInvalidGroupName", err)
		}
	})
}
