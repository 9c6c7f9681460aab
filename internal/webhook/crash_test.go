package webhook_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/crashtest"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/webhook"
)

// crashAfter is how many acknowledged events the child waits for before it
// kills itself, with more writes in flight.
const crashAfter = 200

// runCrashChild runs in the child process of TestDeliveryAfterKill: 16
// goroutines append events for the webhook at url to the database at path
// until the kill.
func runCrashChild(path, url string) {
	ctx := context.Background()
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		crashtest.Fail("open: %v", err)
	}
	if err := st.SetWebhooks([]store.WebhookTarget{{Key: url}}); err != nil {
		crashtest.Fail("set webhooks: %v", err)
	}
	crashtest.Kill(16, crashAfter, func(w, i int) (string, error) {
		e, err := store.NewEvent("call.ended", map[string]int{"g": w, "i": i})
		if err != nil {
			return "", err
		}
		return e.ID, st.AppendEvents(ctx, e)
	})
}

// TestDeliveryAfterKill: every event whose write was acknowledged before the
// process was killed with SIGKILL is delivered by the next process, in seq
// order.
func TestDeliveryAfterKill(t *testing.T) {
	rc := newReceiver(t, nil)
	path := t.TempDir() + "/switchboard.db"
	acked := crashtest.Run(t, crashAfter, path, rc.URL())
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL left by the killed child: %v", err)
	}

	st := openStore(t, path)
	stored, err := st.Events(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	startDeliverer(t, fastConfig(webhook.Target{URL: rc.URL(), Secret: testSecret}), st)
	waitFor(t, "every stored event", 20*time.Second, func() bool { return len(rc.accepted()) >= len(stored) })

	got := rc.accepted()
	seen := make(map[string]bool, len(got))
	for _, id := range got {
		seen[id] = true
	}
	for _, id := range acked {
		if !seen[id] {
			t.Fatalf("acknowledged event %s was not delivered after the kill", id)
		}
	}
	// In the store's order.
	for i, e := range stored {
		if got[i] != e.ID {
			t.Fatalf("delivery %d is %s, want %s (seq %d)", i, got[i], e.ID, e.Seq)
		}
	}
	t.Logf("%d acknowledged events (%d stored) delivered after SIGKILL", len(acked), len(stored))
}
