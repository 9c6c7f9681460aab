package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testEvent returns an event of type typ with a fixed time and data that
// names i.
func testEvent(t testing.TB, typ string, i int) Event {
	t.Helper()
	e, err := NewEvent(typ, map[string]int{"i": i})
	if err != nil {
		t.Fatalf("NewEvent: %v", err)
	}
	e.Time = baseTime.Add(time.Duration(i) * time.Second).UTC().Truncate(time.Millisecond)
	return e
}

func deliveries(t testing.TB, s *Store, key string) []Delivery {
	t.Helper()
	ds, err := s.Deliveries(context.Background(), key, 0, 1000)
	if err != nil {
		t.Fatalf("Deliveries(%q): %v", key, err)
	}
	return ds
}

func seqsOf(ds []Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.Event.Seq
	}
	return out
}

func countEvents(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewEvent(t *testing.T) {
	var prev string
	for i := range 1000 {
		e, err := NewEvent("call.started", struct {
			N int `json:"n"`
		}{i})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.ID, "evt_") || len(e.ID) != 30 {
			t.Fatalf("ID %q, want evt_ and 26 characters", e.ID)
		}
		if e.ID <= prev {
			t.Fatalf("ID %q after %q: IDs must sort by creation", e.ID, prev)
		}
		prev = e.ID
		if string(e.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("Data = %s", e.Data)
		}
		if e.Time.Location() != time.UTC || e.Time.Nanosecond()%int(time.Millisecond) != 0 || time.Since(e.Time) > time.Minute {
			t.Fatalf("Time = %v, want now in UTC at millisecond precision", e.Time)
		}
	}
	if _, err := NewEvent("", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewEvent with no type = %v, want ErrInvalid", err)
	}
	if _, err := NewEvent("x", make(chan int)); err == nil {
		t.Error("NewEvent with unencodable data succeeded")
	}
}

func TestAppendEventsFanOut(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.SetWebhooks([]WebhookTarget{
		{Key: "http://127.0.0.1:1/all"},
		{Key: "http://127.0.0.1:1/ended", Events: []string{"call.ended"}},
	}); err != nil {
		t.Fatal(err)
	}
	evs := []Event{testEvent(t, "call.started", 1), testEvent(t, "call.ended", 2), testEvent(t, "trunk.up", 3)}
	if err := s.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq == 0 || (i > 0 && e.Seq <= evs[i-1].Seq) {
			t.Fatalf("seqs %d, %d: want set and increasing", evs[max(i-1, 0)].Seq, e.Seq)
		}
	}
	all := deliveries(t, s, "http://127.0.0.1:1/all")
	if got, want := seqsOf(all), []int64{evs[0].Seq, evs[1].Seq, evs[2].Seq}; !slices.Equal(got, want) {
		t.Errorf("unfiltered webhook queued %v, want %v", got, want)
	}
	ended := deliveries(t, s, "http://127.0.0.1:1/ended")
	if got, want := seqsOf(ended), []int64{evs[1].Seq}; !slices.Equal(got, want) {
		t.Errorf("call.ended webhook queued %v, want %v", got, want)
	}
	// The event reads back whole.
	d := all[1]
	if !reflect.DeepEqual(d.Event, evs[1]) || d.State != DeliveryPending || d.Attempts != 0 || !d.NextAttemptAt.IsZero() {
		t.Errorf("delivery = %+v\nwant a new pending delivery of %+v", d, evs[1])
	}

	// A webhook added later gets only later events.
	if err := s.SetWebhooks([]WebhookTarget{{Key: "http://127.0.0.1:1/new"}}); err != nil {
		t.Fatal(err)
	}
	late := testEvent(t, "trunk.down", 4)
	if err := s.AppendEvents(ctx, late); err != nil {
		t.Fatal(err)
	}
	if got := len(deliveries(t, s, "http://127.0.0.1:1/new")); got != 1 {
		t.Errorf("new webhook has %d deliveries, want 1", got)
	}
	if got := len(deliveries(t, s, "http://127.0.0.1:1/all")); got != 3 {
		t.Errorf("removed webhook has %d deliveries, want its 3 earlier ones", got)
	}

	// Writing the same event again (a retry) changes nothing.
	again := evs[1]
	again.Seq = 0
	if err := s.AppendEvents(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.Seq != 0 {
		t.Error("AppendEvents set the Seq of an argument passed by value")
	}
	batch := []Event{again}
	if err := s.AppendEvents(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	if batch[0].Seq != evs[1].Seq {
		t.Errorf("duplicate event got seq %d, want the stored %d", batch[0].Seq, evs[1].Seq)
	}
	if n := countEvents(t, s); n != 4 {
		t.Errorf("%d events stored, want 4", n)
	}
}

func TestEventsValidation(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ok := testEvent(t, "call.started", 1)
	for name, e := range map[string]Event{
		"no id":    {Type: "x", Time: baseTime},
		"no type":  {ID: "evt_1", Time: baseTime},
		"no time":  {ID: "evt_1", Type: "x"},
		"bad json": {ID: "evt_1", Type: "x", Time: baseTime, Data: json.RawMessage(`{"a":`)},
	} {
		if err := s.AppendEvents(ctx, ok, e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: AppendEvents = %v, want ErrInvalid", name, err)
		}
	}
	if n := countEvents(t, s); n != 0 {
		t.Errorf("%d events stored after refused writes, want 0", n)
	}
	// Nil data is stored as JSON null.
	e := Event{ID: "evt_nil", Type: "trunk.up", Time: baseTime}
	if err := s.AppendEvents(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := s.Events(ctx, 0, 10)
	if err != nil || len(got) != 1 || string(got[0].Data) != "null" {
		t.Errorf("Events = %+v, %v; want one event with data null", got, err)
	}
}

func TestStateChangeWritesEventsInSameTransaction(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const hook = "http://127.0.0.1:1/h"
	if err := s.SetWebhooks([]WebhookTarget{{Key: hook}}); err != nil {
		t.Fatal(err)
	}
	mustCreateUser(t, s, "1001")

	// Bindings and their event commit together.
	evs := []Event{testEvent(t, "registration.created", 1)}
	if err := s.ApplyBindingsWithEvents(ctx, []Binding{testBinding("1001", 1)}, nil, evs...); err != nil {
		t.Fatal(err)
	}
	if evs[0].Seq == 0 {
		t.Error("ApplyBindingsWithEvents did not set Seq")
	}
	// A binding of an unknown user fails the write: its event is not
	// written either.
	err := s.ApplyBindingsWithEvents(ctx, []Binding{testBinding("nobody", 2)}, nil, testEvent(t, "registration.created", 2))
	if err == nil {
		t.Fatal("binding of an unknown user accepted")
	}
	// Events alone through ApplyBindingsWithEvents are fine too.
	if err := s.ApplyBindingsWithEvents(ctx, nil, nil, testEvent(t, "registration.expired", 3)); err != nil {
		t.Fatal(err)
	}

	rec := CallRecord{ID: "c1", Caller: "1001", Callee: "1002", StartedAt: baseTime}
	if err := s.StartCallWithEvents(ctx, rec, testEvent(t, "call.started", 4)); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCallWithEvents(ctx, rec, testEvent(t, "call.started", 5)); !errors.Is(err, ErrExists) {
		t.Fatalf("second start = %v, want ErrExists", err)
	}
	rec.EndedAt, rec.Result = baseTime.Add(time.Minute), "answered"
	if err := s.UpdateCallWithEvents(ctx, rec, testEvent(t, "call.ended", 6)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateCallWithEvents(ctx, CallRecord{ID: "nope"}, testEvent(t, "call.ended", 7)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing call = %v, want ErrNotFound", err)
	}

	got, err := s.Events(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var data []string
	for _, e := range got {
		data = append(data, e.Type+string(e.Data))
	}
	want := []string{`registration.created{"i":1}`, `registration.expired{"i":3}`, `call.started{"i":4}`, `call.ended{"i":6}`}
	if !slices.Equal(data, want) {
		t.Errorf("events = %q\nwant %q", data, want)
	}
	if n := len(deliveries(t, s, hook)); n != len(want) {
		t.Errorf("%d deliveries, want %d", n, len(want))
	}
	// The state changes happened.
	if _, ok := bindingMap(t, s)["1001/b1"]; !ok {
		t.Error("binding missing")
	}
	if c, err := s.Call(ctx, "c1"); err != nil || c.Result != "answered" {
		t.Errorf("call = %+v, %v", c, err)
	}
}

// TestEventsRollBackWithBatch checks that the events of a request that
// fails inside a group-commit batch are rolled back with it while the other
// requests of the batch commit theirs.
func TestEventsRollBackWithBatch(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	mustCreateUser(t, s, "1001")
	if err := s.SetWebhooks([]WebhookTarget{{Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	// Hold the writer so that the requests below queue up and share a batch.
	release := make(chan struct{})
	held := make(chan struct{})
	go func() {
		_ = s.write(ctx, func(context.Context, *writeTx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		user := "1001"
		if i%4 == 0 {
			user = "nobody" // fails on the foreign key
		}
		b, e := testBinding(user, i), testEvent(t, "registration.created", i)
		wg.Go(func() {
			errs[i] = s.ApplyBindingsWithEvents(ctx, []Binding{b}, nil, e)
		})
	}
	time.Sleep(50 * time.Millisecond) // let them queue
	close(release)
	wg.Wait()
	if s.WriteStats().Fallbacks == 0 {
		t.Fatal("the requests did not share a batch")
	}

	got, err := s.Events(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, e := range got {
		stored[string(e.Data)] = true
	}
	for i, err := range errs {
		in := stored[fmt.Sprintf(`{"i":%d}`, i)]
		if (err == nil) != in {
			t.Errorf("request %d: err %v, event stored %v", i, err, in)
		}
		if (i%4 == 0) != (err != nil) {
			t.Errorf("request %d: err %v", i, err)
		}
	}
	if n := len(deliveries(t, s, "k")); n != 15 {
		t.Errorf("%d deliveries, want 15", n)
	}
}

func TestDeliveryQueue(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const key = "http://127.0.0.1:1/h"
	if err := s.SetWebhooks([]WebhookTarget{{Key: key}}); err != nil {
		t.Fatal(err)
	}
	evs := make([]Event, 5)
	for i := range evs {
		evs[i] = testEvent(t, "call.started", i)
	}
	if err := s.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	now := baseTime.Add(time.Hour)
	next := func(at time.Time, limit int) []int64 {
		t.Helper()
		ds, err := s.NextDeliveries(ctx, key, at, limit)
		if err != nil {
			t.Fatal(err)
		}
		return seqsOf(ds)
	}
	if got := next(now, 3); !slices.Equal(got, []int64{evs[0].Seq, evs[1].Seq, evs[2].Seq}) {
		t.Fatalf("NextDeliveries = %v, want the first 3 in order", got)
	}

	// The head fails: nothing is due until its retry time, in order.
	retry := now.Add(time.Minute)
	if err := s.MarkFailed(ctx, key, evs[0].Seq, 1, retry, "HTTP 503"); err != nil {
		t.Fatal(err)
	}
	if got := next(now, 10); len(got) != 0 {
		t.Errorf("NextDeliveries before the head's retry = %v, want none", got)
	}
	if at, ok, err := s.NextAttemptAt(ctx, key); err != nil || !ok || !at.Equal(storedTime(retry)) {
		t.Errorf("NextAttemptAt = %v, %v, %v; want %v", at, ok, err, retry)
	}
	st := statsFor(t, s, key)
	if st.Pending != 5 || st.HeadSeq != evs[0].Seq || st.HeadAttempts != 1 || st.LastError != "HTTP 503" ||
		!st.NextAttemptAt.Equal(storedTime(retry)) || !st.OldestPending.Equal(evs[0].Time) {
		t.Errorf("stats while failing = %+v", st)
	}
	ds, err := s.NextDeliveries(ctx, key, retry, 10)
	if err != nil || len(ds) != 5 || ds[0].Attempts != 1 || ds[0].LastError != "HTTP 503" {
		t.Fatalf("NextDeliveries at the retry time = %+v, %v", ds, err)
	}

	// Delivered and expired leave the queue; marking them again fails.
	if err := s.MarkDelivered(ctx, key, evs[0].Seq, 2, now); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkExpired(ctx, key, evs[1].Seq, 7, "timeout"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(ctx, key, evs[0].Seq, 3, retry, "late"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkFailed of a delivered delivery = %v, want ErrNotFound", err)
	}
	if err := s.MarkDelivered(ctx, "other", evs[2].Seq, 1, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkDelivered of an unknown delivery = %v, want ErrNotFound", err)
	}
	if got := next(now, 10); !slices.Equal(got, []int64{evs[2].Seq, evs[3].Seq, evs[4].Seq}) {
		t.Errorf("NextDeliveries = %v, want the last 3", got)
	}
	all := deliveries(t, s, key)
	if d := all[0]; d.State != DeliveryDelivered || d.Attempts != 2 || !d.DeliveredAt.Equal(storedTime(now)) || d.LastError != "HTTP 503" {
		t.Errorf("delivered = %+v", d)
	}
	if d := all[1]; d.State != DeliveryExpired || d.Attempts != 7 || d.LastError != "timeout" {
		t.Errorf("expired = %+v", d)
	}
	st = statsFor(t, s, key)
	if st.Pending != 3 || st.Delivered != 1 || st.Expired != 1 || st.HeadSeq != evs[2].Seq || st.HeadAttempts != 0 ||
		st.LastError != "" || !st.LastDeliveredAt.Equal(storedTime(now)) {
		t.Errorf("stats = %+v", st)
	}

	for _, e := range evs[2:] {
		if err := s.MarkDelivered(ctx, key, e.Seq, 1, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := s.NextAttemptAt(ctx, key); ok || err != nil {
		t.Errorf("NextAttemptAt with an empty queue = %v, %v", ok, err)
	}
	if st := statsFor(t, s, key); st.Pending != 0 || st.HeadSeq != 0 || !st.OldestPending.IsZero() {
		t.Errorf("stats with an empty queue = %+v", st)
	}
}

func statsFor(t testing.TB, s *Store, key string) DeliveryStats {
	t.Helper()
	all, err := s.DeliveryStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range all {
		if st.Webhook == key {
			return st
		}
	}
	t.Fatalf("no stats for %q in %+v", key, all)
	return DeliveryStats{}
}

func TestDeliveryStatsListsConfiguredWebhooks(t *testing.T) {
	s := openTest(t)
	if err := s.SetWebhooks([]WebhookTarget{{Key: "b"}, {Key: "a"}}); err != nil {
		t.Fatal(err)
	}
	all, err := s.DeliveryStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []DeliveryStats{{Webhook: "a"}, {Webhook: "b"}}; !reflect.DeepEqual(all, want) {
		t.Errorf("stats = %+v, want %+v", all, want)
	}
	for name, ts := range map[string][]WebhookTarget{
		"empty key": {{Key: ""}},
		"duplicate": {{Key: "a"}, {Key: "a", Events: []string{"x"}}},
	} {
		if err := s.SetWebhooks(ts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: SetWebhooks = %v, want ErrInvalid", name, err)
		}
	}
}

func TestEventsReplay(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var evs []Event
	for i := range 10 {
		evs = append(evs, testEvent(t, "trunk.up", i))
	}
	if err := s.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	got, err := s.Events(ctx, evs[3].Seq, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs[4:8]) {
		t.Errorf("Events after %d = %+v\nwant %+v", evs[3].Seq, got, evs[4:8])
	}
}

func TestPruneEvents(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const a, b = "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"
	if err := s.SetWebhooks([]WebhookTarget{{Key: a}, {Key: b, Events: []string{"call.ended"}}}); err != nil {
		t.Fatal(err)
	}
	// Old events: 0 to a, delivered; 1 to a and b, delivered to a, pending
	// to b; 2 to a, expired; 3 queued for nobody. A recent one, delivered.
	old := []Event{testEvent(t, "call.started", 0), testEvent(t, "call.ended", 1), testEvent(t, "call.started", 2)}
	if err := s.AppendEvents(ctx, old...); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWebhooks(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, testEvent(t, "trunk.up", 3)); err != nil { // no webhook then
		t.Fatal(err)
	}
	if err := s.SetWebhooks([]WebhookTarget{{Key: a}, {Key: b, Events: []string{"call.ended"}}}); err != nil {
		t.Fatal(err)
	}
	recents := []Event{testEvent(t, "call.started", 1000)}
	if err := s.AppendEvents(ctx, recents...); err != nil {
		t.Fatal(err)
	}
	recent := recents[0]
	now := baseTime.Add(time.Hour)
	for _, e := range []Event{old[0], old[1], recent} {
		if err := s.MarkDelivered(ctx, a, e.Seq, 1, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkExpired(ctx, a, old[2].Seq, 3, "gone"); err != nil {
		t.Fatal(err)
	}

	cutoff := baseTime.Add(500 * time.Second)
	n, err := s.PruneEvents(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	// Kept: old[1] (pending to b) and recent. Deleted: old[0], old[2],
	// unqueued.
	if n != 3 {
		t.Errorf("PruneEvents deleted %d events, want 3", n)
	}
	evs, err := s.Events(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := []int64{evs[0].Seq, evs[1].Seq}, []int64{old[1].Seq, recent.Seq}; len(evs) != 2 || !slices.Equal(got, want) {
		t.Errorf("events left = %+v, want seqs %v", evs, want)
	}
	if got := seqsOf(deliveries(t, s, a)); !slices.Equal(got, []int64{recent.Seq}) {
		t.Errorf("deliveries to a left = %v, want only the recent one", got)
	}
	if got := seqsOf(deliveries(t, s, b)); !slices.Equal(got, []int64{old[1].Seq}) {
		t.Errorf("deliveries to b left = %v, want its pending one", got)
	}

	// Once b is no longer configured, its old pending delivery goes too.
	if err := s.SetWebhooks([]WebhookTarget{{Key: a}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneEvents(ctx, cutoff); err != nil || n != 1 {
		t.Errorf("PruneEvents after removing b = %d, %v; want 1", n, err)
	}
	if got := deliveries(t, s, b); len(got) != 0 {
		t.Errorf("deliveries to removed b left: %+v", got)
	}
	// A seq is never reused after pruning.
	e := testEvent(t, "trunk.up", 2000)
	if err := s.AppendEvents(ctx, e); err != nil {
		t.Fatal(err)
	}
	evs, _ = s.Events(ctx, recent.Seq, 10)
	if len(evs) != 1 || evs[0].Seq <= recent.Seq {
		t.Errorf("event after pruning = %+v, want a seq above %d", evs, recent.Seq)
	}
}

func TestPruneEventsInChunks(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.SetWebhooks([]WebhookTarget{{Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	const n = 2*pruneChunk + 10
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = testEvent(t, "trunk.up", i)
	}
	if err := s.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		_, err := w.Exec(ctx, `UPDATE deliveries SET state = 'delivered'`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	before := s.WriteStats().Requests
	got, err := s.PruneEvents(ctx, baseTime.Add(time.Duration(n)*time.Second))
	if err != nil || got != n {
		t.Fatalf("PruneEvents = %d, %v; want %d", got, err, n)
	}
	if reqs := s.WriteStats().Requests - before; reqs < 6 {
		t.Errorf("pruning took %d write requests, want it split into chunks", reqs)
	}
	if c := countEvents(t, s); c != 0 {
		t.Errorf("%d events left", c)
	}
}

// TestDeliveryQueryUsesIndex guards the query plan of the deliverer's hot
// query: the pending queue of a webhook must come from the partial index,
// not a scan of every delivery.
func TestDeliveryQueryUsesIndex(t *testing.T) {
	s := openTest(t)
	rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN SELECT `+deliveryColumns+`
		FROM deliveries d JOIN events e ON e.seq = d.seq
		WHERE d.webhook = ? AND d.state = 'pending' ORDER BY d.seq LIMIT ?`, "k", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	joined := strings.Join(plan, "; ")
	if !strings.Contains(joined, "deliveries_pending") || strings.Contains(joined, "TEMP B-TREE") {
		t.Errorf("query plan %q: want the deliveries_pending index and no sort", joined)
	}
}

// BenchmarkApplyBindingsWithEvents is BenchmarkApplyBindingsParallel with a
// registration event per REGISTER, queued for two webhooks in the same
// transaction: the cost the outbox adds to the registrar's writes.
func BenchmarkApplyBindingsWithEvents(b *testing.B) {
	for _, p := range []int{1, 32} {
		b.Run(fmt.Sprintf("p=%d", p), func(b *testing.B) {
			s, bs := benchBindings(b)
			if err := s.SetWebhooks([]WebhookTarget{{Key: "http://127.0.0.1:1/a"}, {Key: "http://127.0.0.1:1/b"}}); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var next atomic.Int64
			b.SetParallelism(p)
			st := startBench(b, s)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bd := bs[int(next.Add(1))%len(bs)]
					bd.CSeq++
					bd.Expires = time.Now().Add(time.Hour)
					e, err := NewEvent("registration.created", map[string]string{"user": bd.User, "contact": bd.Contact})
					if err != nil {
						b.Error(err)
						return
					}
					if err := s.ApplyBindingsWithEvents(ctx, []Binding{bd}, nil, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			st.report(b, s)
		})
	}
}
