package jsontime

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMillisAlwaysThreeDigits(t *testing.T) {
	for name, tc := range map[string]struct {
		t    time.Time
		want string
	}{
		"trailing zero":  {time.Date(2026, 11, 26, 7, 19, 24, 130_000_000, time.UTC), `"2026-11-26T07:19:24.130Z"`},
		"whole second":   {time.Date(2026, 11, 26, 7, 19, 24, 0, time.UTC), `"2026-11-26T07:19:24.000Z"`},
		"nanoseconds":    {time.Date(2026, 11, 26, 7, 19, 24, 123_456_789, time.UTC), `"2026-11-26T07:19:24.123Z"`},
		"other timezone": {time.Date(2026, 11, 26, 8, 19, 24, 5_000_000, time.FixedZone("CET", 3600)), `"2026-11-26T07:19:24.005Z"`},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(Millis(tc.t))
			if err != nil || string(b) != tc.want {
				t.Fatalf("Marshal = %s, %v; want %s", b, err, tc.want)
			}
			if s := Format(tc.t); `"`+s+`"` != tc.want {
				t.Fatalf("Format = %s, want %s", s, tc.want)
			}
			var back Millis
			if err := json.Unmarshal(b, &back); err != nil || !back.Time().Equal(tc.t.Truncate(time.Millisecond)) {
				t.Fatalf("Unmarshal = %v, %v", back.Time(), err)
			}
		})
	}
	out, err := json.Marshal(struct {
		At Millis `json:"at,omitzero"`
	}{})
	if err != nil || string(out) != `{}` {
		t.Fatalf("zero with omitzero = %s, %v", out, err)
	}
	if _, err := json.Marshal(Millis(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))); err == nil {
		t.Fatal("year 10000 marshalled")
	}
}
