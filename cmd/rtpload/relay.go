package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/switchboard/switchboard/media"
)

// The relay child speaks a line protocol on stdin and stdout. Every command
// is one line and gets zero or more data lines followed by exactly one final
// line, "ok ..." or "err MESSAGE":
//
//	open N            allocate N sessions; data lines "s INDEX PORT_A PORT_B"
//	remote I A B      set the SDP addresses (ip:port, or "-" for none) of the
//	                  phones facing leg A and leg B of session I
//	stats             "ok key=value ..." with counters summed over all sessions
//	                  and the Go runtime's memory figures
//	close             close every session
//	quit              close everything and exit
//
// On start it prints "ready pid=PID" once the relay is listening. End of input
// counts as quit.

// relayFlags are the flags of "rtpload relay".
type relayFlags struct {
	addr       string
	ports      string
	cpuProfile string
}

func relayCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtpload relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f relayFlags
	fs.StringVar(&f.addr, "addr", "127.0.0.1", "loopback `address` the relay binds")
	fs.StringVar(&f.ports, "ports", defaultPorts, "relay port `range` MIN-MAX (four ports per session)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the relay's whole life to `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := relayConfig(f.addr, f.ports)
	if err != nil {
		fmt.Fprintf(stderr, "rtpload relay: %v\n", err)
		return 2
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "rtpload relay: %v\n", err)
			return 1
		}
		defer stop()
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	relay, err := media.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "rtpload relay: %v\n", err)
		return 1
	}
	srv := &relayServer{relay: relay}
	err = srv.serve(ctx, pollable(stdin), stdout)
	if cerr := relay.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rtpload relay: %v\n", err)
		return 1
	}
	return 0
}

// defaultPorts is the relay's default port range: 5000 sessions, above the
// ports the media tests pick (10000-32000).
const defaultPorts = "40000-59999"

// relayConfig builds the media configuration from the flags. The address
// must be a loopback address: rtpload is a loopback benchmark.
func relayConfig(addr, ports string) (media.Config, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return media.Config{}, fmt.Errorf("addr: %w", err)
	}
	if !ip.Unmap().IsLoopback() {
		return media.Config{}, fmt.Errorf("addr %s is not a loopback address", ip)
	}
	lo, hi, err := parsePortRange(ports)
	if err != nil {
		return media.Config{}, err
	}
	cfg := media.Config{Address: ip, PortMin: lo, PortMax: hi}
	return cfg, cfg.Validate()
}

// parsePortRange parses "MIN-MAX".
func parsePortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		lo, err = strconv.Atoi(a)
		if err == nil {
			hi, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("ports %q: want MIN-MAX", s)
	}
	return lo, hi, nil
}

// startCPUProfile starts the CPU profiler writing to path and returns the
// function that stops it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// pollable returns a file reader as a duplicate descriptor in non-blocking
// mode, which joins the Go netpoller, so that closing it interrupts a pending
// read. A pipe inherited from a parent is in blocking mode, where Close would
// not stop the read and the relay would ignore SIGTERM while waiting for
// input. Other readers, and files that cannot be converted, are returned as
// they are.
func pollable(in io.Reader) io.Reader {
	f, ok := in.(*os.File)
	if !ok {
		return in
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return in
	}
	dup := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { dup, derr = syscall.Dup(int(fd)) }); err != nil || derr != nil {
		return in
	}
	syscall.CloseOnExec(dup)
	if err := syscall.SetNonblock(dup, true); err != nil {
		_ = syscall.Close(dup)
		return in
	}
	return os.NewFile(uintptr(dup), f.Name())
}

// relayServer executes control commands against a relay. It is used by one
// goroutine.
type relayServer struct {
	relay    *media.Relay
	sessions []*media.Session
}

// errQuit ends serve without an error.
var errQuit = errors.New("quit")

// serve reads commands from in until quit, end of input or the end of ctx,
// which closes in (when it is an io.Closer) to unblock the read.
func (s *relayServer) serve(ctx context.Context, in io.Reader, out io.Writer) error {
	if c, ok := in.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
	}
	w := bufio.NewWriter(out)
	sc := bufio.NewScanner(in)
	fmt.Fprintf(w, "ready pid=%d\n", os.Getpid())
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	for sc.Scan() {
		err := s.exec(w, strings.Fields(sc.Text()))
		if errors.Is(err, errQuit) {
			fmt.Fprintln(w, "ok")
			return w.Flush()
		}
		if err != nil {
			fmt.Fprintf(w, "err %v\n", err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// exec runs one command. It writes data lines and the final "ok" line; the
// caller writes "err" lines for the error it returns.
func (s *relayServer) exec(w io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New("empty command")
	}
	switch cmd := args[0]; {
	case cmd == "open" && len(args) == 2:
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 || n > maxCalls {
			return fmt.Errorf("open %q: want 1-%d sessions", args[1], maxCalls)
		}
		first := len(s.sessions)
		for i := first; i < first+n; i++ {
			sess, err := s.relay.NewSession("load-" + strconv.Itoa(i))
			if err != nil {
				return fmt.Errorf("open session %d: %w", i, err)
			}
			s.sessions = append(s.sessions, sess)
			fmt.Fprintf(w, "s %d %d %d\n", i, sess.A().Port(), sess.B().Port())
		}
		fmt.Fprintf(w, "ok %d\n", n)
	case cmd == "remote" && len(args) == 4:
		i, err := strconv.Atoi(args[1])
		if err != nil || i < 0 || i >= len(s.sessions) {
			return fmt.Errorf("remote: no session %q", args[1])
		}
		a, err := parseRemote(args[2])
		if err != nil {
			return err
		}
		b, err := parseRemote(args[3])
		if err != nil {
			return err
		}
		s.sessions[i].A().SetRemote(a)
		s.sessions[i].B().SetRemote(b)
		fmt.Fprintln(w, "ok")
	case cmd == "stats" && len(args) == 1:
		fmt.Fprintf(w, "ok %s\n", s.stats())
	case cmd == "close" && len(args) == 1:
		var errs []error
		for _, sess := range s.sessions {
			errs = append(errs, sess.Close())
		}
		s.sessions = nil
		if err := errors.Join(errs...); err != nil {
			return err
		}
		fmt.Fprintln(w, "ok")
	case cmd == "quit" && len(args) == 1:
		return errQuit
	default:
		return fmt.Errorf("unknown command %q", strings.Join(args, " "))
	}
	return nil
}

// parseRemote parses an SDP address: ip:port, or "-" for none.
func parseRemote(s string) (netip.AddrPort, error) {
	if s == "-" {
		return netip.AddrPort{}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("remote: %w", err)
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("remote %s is not a loopback address", ap)
	}
	return ap, nil
}

// stats sums the counters of both legs of every session and adds the Go
// runtime's view of the relay's memory.
func (s *relayServer) stats() string {
	var in, out, dropped, lost uint64
	for _, sess := range s.sessions {
		for _, l := range []*media.Leg{sess.A(), sess.B()} {
			st := l.Stats()
			in += st.PacketsIn
			out += st.PacketsOut
			dropped += st.Dropped
			lost += st.Lost
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("sessions=%d packets_in=%d packets_out=%d dropped=%d lost=%d goroutines=%d heap_inuse=%d stack_inuse=%d sys=%d num_gc=%d",
		len(s.sessions), in, out, dropped, lost, runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse, ms.Sys, ms.NumGC)
}
