package store

import (
	"context"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/switchboard/switchboard/internal/crashtest"
)

// crashAfter is how many acknowledged writes the child waits for before it
// kills itself, with more writes still in flight.
const crashAfter = 400

// runCrashChild runs in the child process of TestBindingsSurviveKill: 32
// goroutines write bindings to the database at path until the kill.
func runCrashChild(path string) {
	ctx := context.Background()
	s, err := Open(ctx, path, nil)
	if err != nil {
		crashtest.Fail("open: %v", err)
	}
	if err := s.CreateUser(ctx, User{Name: "1001"}); err != nil {
		crashtest.Fail("create user: %v", err)
	}
	crashtest.Kill(32, crashAfter, func(w, i int) (string, error) {
		n := w*100_000 + i
		return strconv.Itoa(n), s.ApplyBindings(ctx, []Binding{testBinding("1001", n)}, nil)
	})
}

// TestBindingsSurviveKill checks durability: every binding ApplyBindings
// acknowledged is in the database after the process is killed with
// SIGKILL, with every field intact.
func TestBindingsSurviveKill(t *testing.T) {
	path := t.TempDir() + "/switchboard.db"
	acked := crashtest.Run(t, crashAfter, path)
	// The child never closed the database: re-opening must recover the WAL.
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL file left by the killed child: %v", err)
	}

	s, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("Open after kill: %v", err)
	}
	defer s.Close()
	got := bindingMap(t, s)
	for _, key := range acked {
		i, err := strconv.Atoi(key)
		if err != nil {
			t.Fatalf("child printed %q", key)
		}
		want := testBinding("1001", i).stored()
		if !reflect.DeepEqual(got[want.ID], want) {
			t.Fatalf("acknowledged binding %d after kill = %+v, want %+v", i, got[want.ID], want)
		}
	}
	t.Logf("%d acknowledged bindings survived SIGKILL (%d stored)", len(acked), len(got))
}
