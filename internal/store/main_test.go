package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/crashtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The durability test re-runs this binary as a child that writes
	// bindings and kills itself; see TestBindingsSurviveKill.
	if args, ok := crashtest.Args(); ok {
		runCrashChild(args[0])
	}
	goleak.VerifyTestMain(m)
}

// openTest opens a store in a fresh directory and closes it at the end of
// the test.
func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "switchboard.db"), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// baseTime is a fixed instant with sub-millisecond digits, in a non-UTC zone, to
// check that times are stored at millisecond precision in UTC.
var baseTime = time.Date(2026, 3, 14, 15, 9, 26, 535_897_932, time.FixedZone("X", 5*3600))

// storedTime is what a time reads back as.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Millisecond).UTC()
}

func mustCreateUser(t testing.TB, s *Store, name string) {
	t.Helper()
	err := s.CreateUser(context.Background(), User{Name: name, Realm: "switchboard.local", HA1MD5: "md5-" + name})
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
}

// testBinding returns a binding with every field set from i.
func testBinding(user string, i int) Binding {
	return Binding{
		ID:        fmt.Sprintf("%s/b%d", user, i),
		User:      user,
		Contact:   fmt.Sprintf("<sip:%s@10.0.0.%d:5060;transport=tcp>;+sip.instance=\"<urn:uuid:%d>\"", user, i%250, i),
		Instance:  fmt.Sprintf("<urn:uuid:00000000-0000-0000-0000-%012d>", i),
		RegID:     i%3 + 1,
		Source:    fmt.Sprintf("192.0.2.%d:%d", i%250, 5060+i%1000),
		Transport: []string{"UDP", "TCP", "TLS", "WS", "WSS"}[i%5],
		UserAgent: fmt.Sprintf("Phone/%d.0", i),
		CallID:    fmt.Sprintf("call-%d@host", i),
		CSeq:      uint32(4_000_000_000 + i),
		Q:         0.5 + float64(i%5)/10,
		Expires:   baseTime.Add(time.Hour + time.Duration(i)*time.Second),
		UpdatedAt: baseTime.Add(time.Duration(i) * time.Millisecond),
	}
}

// stored is what b reads back as.
func (b Binding) stored() Binding {
	b.Expires = storedTime(b.Expires)
	b.UpdatedAt = storedTime(b.UpdatedAt)
	return b
}

func bindingMap(t testing.TB, s *Store) map[string]Binding {
	t.Helper()
	bs, err := s.Bindings(context.Background())
	if err != nil {
		t.Fatalf("Bindings: %v", err)
	}
	m := make(map[string]Binding, len(bs))
	for _, b := range bs {
		m[b.ID] = b
	}
	return m
}
