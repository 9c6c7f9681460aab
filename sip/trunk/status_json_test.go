package trunk

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStatusJSONTimesToTheMillisecond(t *testing.T) {
	at := time.Date(2026, 11, 26, 7, 19, 24, 130_456_789, time.UTC)
	s := Status{Name: "p", Address: "a", Transport: "udp", Register: true, State: StateDown, Registered: true,
		LastError: "e", LastErrorAt: at, LastSuccessAt: at.Add(-time.Second).Truncate(time.Second), RegisteredUntil: at}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"last_error_at": "2026-11-26T07:19:24.130Z",
		"last_success_at": "2026-11-26T07:19:23.000Z", "registered_until": "2026-11-26T07:19:24.130Z"} {
		if got[key] != want {
			t.Errorf("%s = %v, want %s", key, got[key], want)
		}
	}
	// Every field of Status is written, under its own JSON name.
	rt := reflect.TypeFor[Status]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if _, ok := got[name]; !ok {
			t.Errorf("field %s (%q) missing from %s", rt.Field(i).Name, name, b)
		}
	}
	if len(got) != rt.NumField() {
		t.Errorf("%d keys for %d fields: %s", len(got), rt.NumField(), b)
	}
}
