package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// stored is what r reads back as.
func (r CallRecord) stored() CallRecord {
	r.StartedAt = storedTime(r.StartedAt)
	r.AnsweredAt = storedTime(r.AnsweredAt)
	r.EndedAt = storedTime(r.EndedAt)
	r.Duration = r.Duration.Truncate(time.Millisecond)
	if len(r.Legs) == 0 {
		r.Legs = nil
	}
	return r
}

func TestCallRecordLifecycle(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()

	start := CallRecord{
		ID: "c1", Caller: "1001", Callee: "1002",
		CallerURI: "sip:1001@switchboard.local", CalleeURI: "sip:1002@switchboard.local",
		Direction: "internal", StartedAt: baseTime,
	}
	if err := s.StartCall(ctx, start); err != nil {
		t.Fatal(err)
	}
	got, err := s.Call(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, start.stored()) {
		t.Fatalf("started call = %+v\nwant %+v", got, start.stored())
	}
	if !got.EndedAt.IsZero() || !got.AnsweredAt.IsZero() {
		t.Error("zero times did not read back as zero")
	}
	if err := s.StartCall(ctx, CallRecord{ID: "c1"}); !errors.Is(err, ErrExists) {
		t.Errorf("second StartCall = %v, want ErrExists", err)
	}

	end := start
	end.AnsweredAt = baseTime.Add(3 * time.Second)
	end.EndedAt = baseTime.Add(65*time.Second + 123456789)
	end.Duration = end.EndedAt.Sub(end.AnsweredAt)
	end.Result, end.Status, end.HangupBy, end.Reason = "answered", 200, "callee", "Q.850;cause=16"
	end.Legs = []LegStats{
		{Name: "a", PacketsIn: 3100, PacketsOut: 3099, BytesIn: 533200, BytesOut: 533028, Lost: 1, Jitter: 1.25},
		{Name: "b", PacketsIn: 1 << 60, PacketsOut: 2, BytesIn: 3, BytesOut: 4, Lost: 0, Jitter: 0.5},
	}
	if err := s.UpdateCall(ctx, end); err != nil {
		t.Fatal(err)
	}
	got, err = s.Call(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, end.stored()) {
		t.Fatalf("ended call = %+v\nwant %+v", got, end.stored())
	}

	// A zero StartedAt in an update keeps the stored one.
	keep := end
	keep.StartedAt = time.Time{}
	if err := s.UpdateCall(ctx, keep); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Call(ctx, "c1"); !got.StartedAt.Equal(storedTime(baseTime)) {
		t.Errorf("StartedAt = %v after an update without it, want %v", got.StartedAt, baseTime)
	}

	if err := s.UpdateCall(ctx, CallRecord{ID: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateCall(nope) = %v, want ErrNotFound", err)
	}
	if _, err := s.Call(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Call(nope) = %v, want ErrNotFound", err)
	}
	if err := s.StartCall(ctx, CallRecord{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("StartCall without ID = %v, want ErrInvalid", err)
	}
}

// seedCalls stores n calls, one a minute from baseTime, alternating users
// and results; calls 10 and 11 start at the same millisecond.
func seedCalls(t *testing.T, s *Store, n int) []CallRecord {
	t.Helper()
	var rs []CallRecord
	for i := range n {
		r := CallRecord{
			ID:        fmt.Sprintf("call-%02d", i),
			Caller:    []string{"1001", "1002", "1003"}[i%3],
			Callee:    []string{"1002", "1003", "+15550001"}[i%3],
			StartedAt: baseTime.Add(time.Duration(i) * time.Minute),
			EndedAt:   baseTime.Add(time.Duration(i)*time.Minute + 30*time.Second),
			Result:    []string{"answered", "busy"}[i%2],
		}
		if i == 11 {
			r.StartedAt = rs[10].StartedAt
		}
		if err := s.StartCall(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

func ids(rs []CallRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestCallsFilter(t *testing.T) {
	s := openTest(t)
	all := seedCalls(t, s, 30)
	minute := func(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Minute) }

	// newestFirst returns the IDs of the seeded calls that keep says,
	// newest first (ties by ID descending).
	newestFirst := func(keep func(i int, r CallRecord) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(i, all[i]) {
				out = append(out, all[i].ID)
			}
		}
		return out
	}

	for name, tc := range map[string]struct {
		f    CallFilter
		want []string
	}{
		"all (default limit)": {CallFilter{}, newestFirst(func(int, CallRecord) bool { return true })},
		"limit":               {CallFilter{Limit: 3}, []string{"call-29", "call-28", "call-27"}},
		"user as caller or callee": {CallFilter{User: "1003"}, newestFirst(func(_ int, r CallRecord) bool {
			return r.Caller == "1003" || r.Callee == "1003"
		})},
		"number": {CallFilter{User: "+15550001"}, newestFirst(func(_ int, r CallRecord) bool { return r.Callee == "+15550001" })},
		"since inclusive, until exclusive": {CallFilter{Since: minute(5), Until: minute(9)},
			[]string{"call-08", "call-07", "call-06", "call-05"}},
		"result": {CallFilter{Result: "busy"}, newestFirst(func(_ int, r CallRecord) bool { return r.Result == "busy" })},
		"combined": {CallFilter{User: "1001", Result: "answered", Since: minute(10)}, newestFirst(func(i int, r CallRecord) bool {
			return i >= 10 && (r.Caller == "1001" || r.Callee == "1001") && r.Result == "answered"
		})},
		"nothing": {CallFilter{User: "nobody"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.Calls(context.Background(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tc.want) {
				t.Errorf("Calls(%+v) = %v\nwant %v", tc.f, ids(got), tc.want)
			}
		})
	}
	if len(newestFirst(func(_ int, r CallRecord) bool { return r.Caller == "1001" || r.Callee == "1001" })) == 0 {
		t.Fatal("seed has no call of 1001")
	}
	got, _ := s.Calls(context.Background(), CallFilter{Limit: 1})
	if len(got) != 1 || !reflect.DeepEqual(got[0], all[29].stored()) {
		t.Errorf("newest record = %+v, want %+v", got, all[29].stored())
	}
}

func TestCallsPagination(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	all := seedCalls(t, s, 25)
	var want []string
	for i := len(all) - 1; i >= 0; i-- {
		want = append(want, all[i].ID)
	}
	want[13], want[14] = "call-11", "call-10" // same start: ID descending

	for _, f := range []CallFilter{{Limit: 4}, {Limit: 1}, {Limit: 7, User: "1002"}} {
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			if page > len(all) {
				t.Fatal("pagination does not end")
			}
			f.Before = cursor
			rs, err := s.Calls(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) > f.Limit {
				t.Fatalf("page of %d, limit %d", len(rs), f.Limit)
			}
			if len(rs) == 0 {
				break
			}
			got = append(got, ids(rs)...)
			cursor = rs[len(rs)-1].ID
		}
		all, _ := s.Calls(ctx, CallFilter{User: f.User, Limit: 1000})
		wantF := ids(all)
		if f.User == "" && !reflect.DeepEqual(wantF, want) {
			t.Fatalf("unpaged order %v\nwant %v", wantF, want)
		}
		if !reflect.DeepEqual(got, wantF) {
			t.Errorf("pages with %+v = %v\nwant %v", f, got, wantF)
		}
	}
	if _, err := s.Calls(ctx, CallFilter{Before: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown cursor = %v, want ErrNotFound", err)
	}
}

func TestMarkOpenCallsCrashed(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	now := baseTime.Add(time.Hour)

	answered := CallRecord{ID: "up", StartedAt: baseTime, AnsweredAt: baseTime.Add(10 * time.Second), Result: "answered", Status: 200}
	ringing := CallRecord{ID: "ringing", StartedAt: baseTime.Add(time.Minute)}
	future := CallRecord{ID: "future", StartedAt: now.Add(time.Minute)} // clock went back
	ended := CallRecord{ID: "ended", StartedAt: baseTime, EndedAt: baseTime.Add(time.Minute), Result: "busy", Status: 486, HangupBy: "callee"}
	for _, r := range []CallRecord{answered, ringing, future, ended} {
		if err := s.StartCall(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.MarkOpenCallsCrashed(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("marked %d calls, want 3", n)
	}

	crashed := func(r CallRecord, end time.Time) CallRecord {
		r.EndedAt = end
		if !r.AnsweredAt.IsZero() {
			r.Duration = storedTime(end).Sub(storedTime(r.AnsweredAt))
		}
		r.Result, r.HangupBy, r.Reason = ResultCrashed, "system", ReasonCrashed
		return r.stored()
	}
	for _, want := range []CallRecord{
		crashed(answered, now),
		crashed(ringing, now),
		crashed(future, future.StartedAt),
		ended.stored(),
	} {
		got, err := s.Call(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s after MarkOpenCallsCrashed:\n got  %+v\n want %+v", want.ID, got, want)
		}
	}
	if n, err := s.MarkOpenCallsCrashed(ctx, now); err != nil || n != 0 {
		t.Errorf("second MarkOpenCallsCrashed = %d, %v; want 0", n, err)
	}
}

// A trunk call's record keeps the trunk's name and the dialled DID through
// its start and its end.
func TestCallRecordTrunk(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	in := CallRecord{ID: "t1", Caller: "+15550001111", Callee: "1002", Direction: "inbound",
		Trunk: "carrier", DID: "+15551230000", StartedAt: baseTime}
	if err := s.StartCall(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.EndedAt, in.Result, in.Status = baseTime.Add(time.Second), "answered", 200
	if err := s.UpdateCall(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := s.Call(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Trunk != "carrier" || got.DID != "+15551230000" {
		t.Errorf("trunk %q, DID %q; want carrier, +15551230000", got.Trunk, got.DID)
	}
}
