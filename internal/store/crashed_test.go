package store

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestMarkOpenCallsCrashedWithEvents: the same records as
// MarkOpenCallsCrashed, each with its event in the outbox.
func TestMarkOpenCallsCrashedWithEvents(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.SetWebhooks([]WebhookTarget{{Key: "http://hook"}}); err != nil {
		t.Fatal(err)
	}
	now := baseTime.Add(time.Hour)
	answered := CallRecord{ID: "up", StartedAt: baseTime, AnsweredAt: baseTime.Add(10 * time.Second), Result: "answered", Status: 200}
	ringing := CallRecord{ID: "ringing", StartedAt: baseTime.Add(time.Minute)}
	future := CallRecord{ID: "future", StartedAt: now.Add(time.Minute)}
	ended := CallRecord{ID: "ended", StartedAt: baseTime, EndedAt: baseTime.Add(time.Minute), Result: "busy", Status: 486, HangupBy: "callee"}
	for _, r := range []CallRecord{answered, ringing, future, ended} {
		if err := s.StartCall(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	open, err := s.OpenCalls(ctx)
	if err != nil || len(open) != 3 || open[0].ID != "up" || open[2].ID != "future" {
		t.Fatalf("OpenCalls = %+v, %v", open, err)
	}
	mk := func(r CallRecord) ([]Event, error) {
		e, err := NewEvent("call.ended", map[string]string{"id": r.ID, "result": r.Result})
		return []Event{e}, err
	}
	n, err := s.MarkOpenCallsCrashedWithEvents(ctx, now, mk)
	if err != nil || n != 3 {
		t.Fatalf("MarkOpenCallsCrashedWithEvents = %d, %v; want 3", n, err)
	}
	crashed := func(r CallRecord, end time.Time) CallRecord {
		r.EndedAt = end
		if !r.AnsweredAt.IsZero() {
			r.Duration = storedTime(end).Sub(storedTime(r.AnsweredAt))
		}
		r.Result, r.HangupBy, r.Reason = ResultCrashed, "system", ReasonCrashed
		return r.stored()
	}
	for _, want := range []CallRecord{crashed(answered, now), crashed(ringing, now), crashed(future, future.StartedAt), ended.stored()} {
		got, err := s.Call(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", want.ID, got, want)
		}
	}
	evs, err := s.Events(ctx, 0, 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("events %+v, %v", evs, err)
	}
	for i, id := range []string{"up", "ringing", "future"} {
		var d map[string]string
		if err := json.Unmarshal(evs[i].Data, &d); err != nil || d["id"] != id || d["result"] != ResultCrashed {
			t.Errorf("event %d: %s", i, evs[i].Data)
		}
	}
	if dl, err := s.NextDeliveries(ctx, "http://hook", now, 10); err != nil || len(dl) != 3 {
		t.Errorf("deliveries %d, %v; want 3", len(dl), err)
	}
	if n, err := s.MarkOpenCallsCrashedWithEvents(ctx, now, mk); err != nil || n != 0 {
		t.Errorf("second run = %d, %v; want 0", n, err)
	}
}
