package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/webhook"
)

// The child process of TestDeliveryAfterKill gets the database path and the
// webhook URL in these variables.
const (
	crashChildEnv    = "SWITCHBOARD_WEBHOOK_CRASH_CHILD"
	crashChildURLEnv = "SWITCHBOARD_WEBHOOK_CRASH_URL"
)

// crashAfter is how many acknowledged events the child waits for before it
// kills itself, with more writes in flight.
const crashAfter = 200

// runCrashChild runs in the child process: it appends events from many
// goroutines, prints the ID of each one AppendEvents acknowledged, and kills
// itself with SIGKILL (no Close, no flush) once crashAfter are acknowledged.
func runCrashChild(path, url string) int {
	ctx := context.Background()
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	if err := st.SetWebhooks([]store.WebhookTarget{{Key: url}}); err != nil {
		fmt.Fprintln(os.Stderr, "set webhooks:", err)
		return 2
	}
	var (
		mu    sync.Mutex
		acked int
	)
	for g := range 16 {
		go func() {
			for i := 0; ; i++ {
				e, err := store.NewEvent("call.ended", map[string]int{"g": g, "i": i})
				if err != nil {
					fmt.Fprintln(os.Stderr, "event:", err)
					os.Exit(2)
				}
				if err := st.AppendEvents(ctx, e); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				mu.Lock()
				// One write(2) per line on unbuffered stdout: the parent
				// reads every acknowledgement made before the kill.
				fmt.Fprintln(os.Stdout, e.ID)
				acked++
				if acked == crashAfter {
					p, _ := os.FindProcess(os.Getpid())
					_ = p.Kill() // SIGKILL on Unix
					select {}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Minute)
	fmt.Fprintln(os.Stderr, "child: timed out")
	return 3
}

// TestDeliveryAfterKill: every event whose write was acknowledged before the
// process was killed with SIGKILL is delivered by the next process, in seq
// order.
func TestDeliveryAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	rc := newReceiver(t, nil)
	path := t.TempDir() + "/switchboard.db"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashChildURLEnv+"="+rc.URL())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Exited() {
		t.Fatalf("child ended with %v, want killed by a signal; stderr:\n%s", err, stderr.String())
	}
	var acked []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		acked = append(acked, sc.Text())
	}
	if len(acked) < crashAfter {
		t.Fatalf("child acknowledged %d events, want at least %d", len(acked), crashAfter)
	}
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
