package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked reports a database that another process has open: two servers
// on one database would each take the other's calls for crashed ones and
// send their events twice.
var ErrLocked = errors.New("store: the database is in use by another process")

// lockFile takes an exclusive lock on path+".lock" and writes our process
// ID in it. The lock lives as long as the returned file stays open, and
// the kernel lets it go when the process dies, so a kill -9 leaves no
// stale lock behind.
func lockFile(path string) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner := "another process"
			if pid := strings.TrimSpace(string(b[:n])); pid != "" {
				owner = "process " + pid
			}
			return nil, fmt.Errorf("%w: %s holds %s; stop it first, or give this server its own storage.path", ErrLocked, owner, name)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
