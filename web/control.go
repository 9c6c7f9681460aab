package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrControlInUse reports a control socket on which another live server
// answers.
var ErrControlInUse = errors.New("web: control socket in use by another running server")

// RunControl serves the API without tokens on the Unix socket
// Config.ControlSocket until ctx ends, then removes the socket file. The
// socket is created with mode 0600: file permissions are its access
// control. A stale socket file (nothing answers on it) is replaced; if a
// live server answers, RunControl fails with ErrControlInUse.
func (s *Server) RunControl(ctx context.Context) error {
	ln, err := ListenControl(ctx, s.cfg.ControlSocket)
	if err != nil {
		return err
	}
	s.log.Info("control socket listening", "path", s.cfg.ControlSocket)
	return s.serve(ctx, ln, s.ControlHandler())
}

// ListenControl creates the control socket at path: mode 0600 from the
// start, replacing a stale socket file, refusing a live one or a path that
// is not a socket. Closing the listener removes the file.
func ListenControl(ctx context.Context, path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("web: control socket: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("web: control socket: %w (control.socket: choose a directory this user may create or write, such as the storage directory)", err)
	}
	if err := removeStale(ctx, path); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		// On Linux the socket file takes the mode of the socket's inode
		// (less the umask) at bind: set it before bind, so that there is
		// no moment at which others may connect.
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), 0o600) }); cerr != nil {
			return cerr
		}
		return err
	}}
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("web: control socket %s: %w", path, err)
	}
	// Elsewhere the mode may not have carried over: set it now.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("web: control socket %s: %w", path, err)
	}
	return ln, nil
}

// removeStale deletes a socket file nobody answers on (left by a server
// that was killed).
func removeStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("web: control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("web: control socket %s: exists and is not a socket", path)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s", ErrControlInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("web: control socket %s: probe: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("web: control socket %s: remove stale: %w", path, err)
	}
	return nil
}
