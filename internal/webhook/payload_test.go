package webhook_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/webhook"
)

// TestPayloadTimestampHasMilliseconds: the body's timestamp always has
// three fractional digits, in UTC, so receivers can parse it with a fixed
// layout (encoding/json's default would write ".13Z", or no fraction).
func TestPayloadTimestampHasMilliseconds(t *testing.T) {
	for name, tc := range map[string]struct {
		at   time.Time
		want string
	}{
		"trailing zero": {time.Date(2026, 11, 26, 7, 19, 24, 130_000_000, time.UTC), "2026-11-26T07:19:24.130Z"},
		"whole second":  {time.Date(2026, 11, 26, 7, 19, 24, 0, time.UTC), "2026-11-26T07:19:24.000Z"},
		"local time":    {time.Date(2026, 11, 26, 8, 19, 24, 7_900_000, time.FixedZone("CET", 3600)), "2026-11-26T07:19:24.007Z"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(webhook.Payload{Type: "call.started", Timestamp: tc.at, Data: json.RawMessage(`{"n":1}`)})
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"type":"call.started","timestamp":"` + tc.want + `","data":{"n":1}}`; string(b) != want {
				t.Fatalf("body %s\nwant %s", b, want)
			}
			var p webhook.Payload
			if err := json.Unmarshal(b, &p); err != nil || !p.Timestamp.Equal(tc.at.Truncate(time.Millisecond)) {
				t.Fatalf("read back %v (%v)", p.Timestamp, err)
			}
		})
	}
}
