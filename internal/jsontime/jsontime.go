// Package jsontime writes times in JSON the one way Switchboard's events
// use: RFC 3339 in UTC with exactly three fractional digits
// ("2026-11-26T07:19:24.130Z"), so that a receiver can parse every event
// time with one fixed layout. encoding/json's default for time.Time drops
// trailing zeros, and the whole fraction when it is zero.
package jsontime

import (
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Layout is the layout of the times Format writes.
const Layout = "2006-01-02T15:04:05.000Z07:00"

// Format returns t in UTC, truncated to the millisecond (as the store keeps
// times), in Layout.
func Format(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(Layout)
}

// Millis is a time written to JSON by Format. Its zero value is the zero
// time, which omitzero leaves out.
type Millis time.Time

// Time returns m as a time.Time.
func (m Millis) Time() time.Time { return time.Time(m) }

// IsZero reports whether m is the zero time.
func (m Millis) IsZero() bool { return time.Time(m).IsZero() }

// MarshalJSON writes m as a JSON string in Layout.
func (m Millis) MarshalJSON() ([]byte, error) {
	t := time.Time(m)
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		// Out of RFC 3339's range: let time.Time report the error.
		return t.MarshalJSON()
	}
	b := make([]byte, 0, len(Layout)+2)
	b = append(b, '"')
	b = t.UTC().Truncate(time.Millisecond).AppendFormat(b, Layout)
	return append(b, '"'), nil
}

// UnmarshalJSON reads any RFC 3339 time, as time.Time does.
func (m *Millis) UnmarshalJSON(b []byte) error {
	var t time.Time
	if err := t.UnmarshalJSON(b); err != nil {
		return err
	}
	*m = Millis(t)
	return nil
}

// Schema describes Millis in the API's OpenAPI document as what it is on
// the wire: a date-time string.
func (Millis) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Format: "date-time",
		Description: "RFC 3339 in UTC with exactly three fractional digits (milliseconds)."}
}
