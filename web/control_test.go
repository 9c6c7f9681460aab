package web

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// unixClient talks HTTP over the socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

func TestControlSocket(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "sb.sock")
	e.srv.cfg.ControlSocket = path
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.RunControl(ctx) }()
	// The file appears at bind, a moment before the socket listens: wait
	// until it takes a connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("control socket not listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}

	// The API answers without a token.
	c := unixClient(path)
	res, err := c.Get("http://switchboard/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status over the socket: %d", res.StatusCode)
	}
	c.CloseIdleConnections()

	// A second server refuses the live socket and leaves it alone.
	if _, err := ListenControl(context.Background(), path); !errors.Is(err, ErrControlInUse) {
		t.Fatalf("second listener: %v, want ErrControlInUse", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("refused start removed the live socket: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("control server did not stop")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file left after stop: %v", err)
	}
}

func TestControlSocketStaleAndForeign(t *testing.T) {
	dir := t.TempDir()
	t.Run("stale socket replaced", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close() // as if the server had been killed
		ln, err := ListenControl(context.Background(), path)
		if err != nil {
			t.Fatalf("stale socket not replaced: %v", err)
		}
		ln.Close()
	})
	t.Run("regular file refused", func(t *testing.T) {
		path := filepath.Join(dir, "file.sock")
		if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ListenControl(context.Background(), path)
		if err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("regular file: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep me" {
			t.Fatal("regular file was touched")
		}
	})
	t.Run("missing directory created private", func(t *testing.T) {
		path := filepath.Join(dir, "sub", "sb.sock")
		ln, err := ListenControl(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		fi, err := os.Stat(filepath.Dir(path))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("directory %v %v", fi.Mode(), err)
		}
	})
}
