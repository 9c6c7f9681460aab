package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"
)

// crashChildEnv names the database a child process of TestBindingsSurviveKill
// writes to.
const crashChildEnv = "SWITCHBOARD_STORE_CRASH_CHILD"

// crashAfter is how many acknowledged writes the child waits for before it
// kills itself, with more writes still in flight.
const crashAfter = 400

// runCrashChild runs in the child process: it writes bindings from many
// goroutines, prints the index of each one ApplyBindings acknowledged, and
// kills itself with SIGKILL (no deferred function, no Close, no flush) as
// soon as crashAfter have been acknowledged.
func runCrashChild(path string) int {
	ctx := context.Background()
	s, err := Open(ctx, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	if err := s.CreateUser(ctx, User{Name: "1001"}); err != nil {
		fmt.Fprintln(os.Stderr, "create user:", err)
		return 2
	}
	var (
		mu    sync.Mutex
		acked int
		next  int
	)
	kill := func() {
		p, _ := os.FindProcess(os.Getpid())
		_ = p.Kill() // SIGKILL on Unix
		select {}    // the signal is on its way
	}
	for range 32 {
		go func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if err := s.ApplyBindings(ctx, []Binding{testBinding("1001", i)}, nil); err != nil {
					fmt.Fprintln(os.Stderr, "apply:", err)
					os.Exit(2)
				}
				mu.Lock()
				// One write(2) per line on an unbuffered os.Stdout: the
				// parent reads every acknowledgement made before the kill.
				fmt.Fprintf(os.Stdout, "%d\n", i)
				acked++
				if acked == crashAfter {
					kill()
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Minute)
	fmt.Fprintln(os.Stderr, "child: timed out")
	return 3
}

// TestBindingsSurviveKill checks durability: every binding ApplyBindings
// acknowledged is in the database after the process is killed with
// SIGKILL, with every field intact.
func TestBindingsSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := t.TempDir() + "/switchboard.db"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Exited() {
		t.Fatalf("child ended with %v, want killed by a signal; stderr:\n%s", err, stderr.String())
	}

	var acked []int
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		i, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		acked = append(acked, i)
	}
	if len(acked) < crashAfter {
		t.Fatalf("child acknowledged %d writes, want at least %d", len(acked), crashAfter)
	}
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
	for _, i := range acked {
		want := testBinding("1001", i).stored()
		if !reflect.DeepEqual(got[want.ID], want) {
			t.Fatalf("acknowledged binding %d after kill = %+v, want %+v", i, got[want.ID], want)
		}
	}
	t.Logf("%d acknowledged bindings survived SIGKILL (%d stored)", len(acked), len(got))
}
