// Package crashtest checks what survives a kill -9. The test binary starts
// itself again as a child process that writes from many goroutines, prints
// a key for every write that was acknowledged, and kills itself with
// SIGKILL (no deferred function, no Close, no flush) in the middle of more
// writes. The parent then opens what the child left and checks that every
// acknowledged key is there.
package crashtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// childEnv carries the child's arguments, JSON-encoded.
const childEnv = "SWITCHBOARD_CRASH_CHILD"

// Args returns the arguments Run gave this process, and whether it is a
// crash child at all. A package's TestMain calls it first.
func Args() ([]string, bool) {
	v := os.Getenv(childEnv)
	if v == "" {
		return nil, false
	}
	var args []string
	if err := json.Unmarshal([]byte(v), &args); err != nil {
		Fail("arguments: %v", err)
	}
	return args, true
}

// Fail ends a crash child that could not set up or write, in a way the
// parent reports (exit status 2 and the message on stderr).
func Fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", a...)
	os.Exit(2)
}

// Kill runs in the child: workers goroutines call write with their number
// and a count of their own writes, and the key of each acknowledged write
// is printed; after n acknowledgements the process kills itself while the
// other writes are in flight. It never returns.
func Kill(workers, n int, write func(worker, i int) (key string, err error)) {
	var (
		mu    sync.Mutex
		acked int
	)
	for w := range workers {
		go func() {
			for i := 0; ; i++ {
				key, err := write(w, i)
				if err != nil {
					Fail("write: %v", err)
				}
				mu.Lock()
				// One write(2) per line on the unbuffered os.Stdout: the
				// parent reads every acknowledgement made before the kill.
				fmt.Fprintln(os.Stdout, key)
				acked++
				if acked == n {
					p, _ := os.FindProcess(os.Getpid())
					_ = p.Kill() // SIGKILL on Unix
					select {}    // the signal is on its way
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Minute)
	Fail("timed out before %d acknowledged writes", n)
}

// Run starts this test binary as a crash child with args, waits until it
// has killed itself, and returns the keys it acknowledged, in order. It
// fails the test when the child exited instead of being killed, or
// acknowledged fewer than n writes.
func Run(t testing.TB, n int, args ...string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a child process")
	}
	enc, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(enc))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Exited() {
		t.Fatalf("crash child ended with %v, want killed by a signal; stderr:\n%s", err, stderr.String())
	}
	var keys []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		keys = append(keys, sc.Text())
	}
	if len(keys) < n {
		t.Fatalf("crash child acknowledged %d writes, want at least %d", len(keys), n)
	}
	return keys
}
