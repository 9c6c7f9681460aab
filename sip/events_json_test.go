package sip

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// TestEventTimesToTheMillisecond: the times in registration and call event
// data are the stored instants (milliseconds), with three fractional
// digits, whatever precision the record held in memory.
func TestEventTimesToTheMillisecond(t *testing.T) {
	at := time.Date(2026, 11, 26, 7, 19, 24, 130_456_789, time.Local)
	b, err := json.Marshal(callEvent(store.CallRecord{ID: "c", StartedAt: at}))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, `"started_at":"`+at.UTC().Format("2006-01-02T15:04:05")+`.130Z"`) ||
		strings.Contains(s, "answered_at") || strings.Contains(s, "ended_at") {
		t.Errorf("call.started data %s", s)
	}
	b, err = json.Marshal(callEvent(store.CallRecord{ID: "c", StartedAt: at, AnsweredAt: at.Add(870 * time.Millisecond),
		EndedAt: at.Add(2*time.Second + 869_543_211)}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"started_at":"` + at.UTC().Format("2006-01-02T15:04:05") + `.130Z"`,
		`"answered_at":"` + at.UTC().Add(time.Second).Format("2006-01-02T15:04:05") + `.000Z"`,
		`"ended_at":"` + at.UTC().Add(3*time.Second).Format("2006-01-02T15:04:05") + `.000Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("call.ended data %s lacks %s", b, want)
		}
	}
	b, err = json.Marshal(registrationEvent(store.Binding{ID: "b", Expires: at}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"expires_at":"` + at.UTC().Format("2006-01-02T15:04:05") + `.130Z"`; !strings.Contains(string(b), want) {
		t.Errorf("registration data %s lacks %s", b, want)
	}
}
