package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// legPorts are the relay's RTP ports of one session.
type legPorts struct{ a, b int }

// relayStats is the answer to the "stats" command: packet counters summed
// over all sessions, and the child's Go runtime memory.
type relayStats struct {
	Sessions, PacketsIn, PacketsOut, Dropped, Lost uint64
	Goroutines, HeapInuse, StackInuse, Sys         uint64
}

// relayProc is a relay child process driven over its stdin and stdout.
type relayProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startRelay starts argv (a command line ending in "rtpload relay ...") with
// env (nil: this process's environment) and waits for its "ready" line. The
// child is killed when ctx ends and, on Linux, when this process dies.
func startRelay(ctx context.Context, argv, env []string, stderr io.Writer) (*relayProc, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("relay child: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("relay child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("relay child: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	p := &relayProc{cmd: cmd, in: in, out: sc}
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "ready") {
		_ = p.kill()
		return nil, fmt.Errorf("relay child did not start: %q %v", sc.Text(), sc.Err())
	}
	return p, nil
}

// Pid returns the child's process ID.
func (p *relayProc) Pid() int { return p.cmd.Process.Pid }

// call sends one command and returns its data lines and the text after "ok".
func (p *relayProc) call(cmd string) (data []string, ok string, err error) {
	if _, err := io.WriteString(p.in, cmd+"\n"); err != nil {
		return nil, "", fmt.Errorf("relay %s: %w", cmd, err)
	}
	for p.out.Scan() {
		line := p.out.Text()
		switch {
		case line == "ok" || strings.HasPrefix(line, "ok "):
			return data, strings.TrimPrefix(strings.TrimPrefix(line, "ok"), " "), nil
		case strings.HasPrefix(line, "err "):
			return data, "", fmt.Errorf("relay %s: %s", strings.Fields(cmd)[0], line[4:])
		default:
			data = append(data, line)
		}
	}
	err = p.out.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return data, "", fmt.Errorf("relay %s: %w", cmd, err)
}

// Open allocates a session per call, gives each the phones' addresses and
// returns their ports.
func (p *relayProc) Open(calls []callAddrs) ([]legPorts, error) {
	ports, err := p.open(len(calls))
	if err != nil {
		return nil, err
	}
	for i, c := range calls {
		if err := p.setRemote(i, c.a, c.b); err != nil {
			return nil, err
		}
	}
	return ports, nil
}

// open allocates n sessions and returns their ports.
func (p *relayProc) open(n int) ([]legPorts, error) {
	data, _, err := p.call("open " + strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	ports := make([]legPorts, 0, n)
	for _, line := range data {
		var i int
		var lp legPorts
		if _, err := fmt.Sscanf(line, "s %d %d %d", &i, &lp.a, &lp.b); err != nil {
			return nil, fmt.Errorf("relay open: bad line %q", line)
		}
		ports = append(ports, lp)
	}
	if len(ports) != n {
		return nil, fmt.Errorf("relay open: %d sessions, want %d", len(ports), n)
	}
	return ports, nil
}

// setRemote gives session i the phones' addresses, as signalling would from
// their SDP.
func (p *relayProc) setRemote(i int, a, b netip.AddrPort) error {
	_, _, err := p.call(fmt.Sprintf("remote %d %s %s", i, a, b))
	return err
}

// Stats returns the relay's counters.
func (p *relayProc) Stats() (relayStats, error) {
	_, kv, err := p.call("stats")
	if err != nil {
		return relayStats{}, err
	}
	var st relayStats
	fields := map[string]*uint64{
		"sessions": &st.Sessions, "packets_in": &st.PacketsIn, "packets_out": &st.PacketsOut,
		"dropped": &st.Dropped, "lost": &st.Lost, "goroutines": &st.Goroutines,
		"heap_inuse": &st.HeapInuse, "stack_inuse": &st.StackInuse, "sys": &st.Sys,
	}
	for _, f := range strings.Fields(kv) {
		k, v, _ := strings.Cut(f, "=")
		if dst, ok := fields[k]; ok {
			if *dst, err = strconv.ParseUint(v, 10, 64); err != nil {
				return relayStats{}, fmt.Errorf("relay stats: %q: %w", f, err)
			}
		}
	}
	return st, nil
}

// Close asks the child to quit and waits for it; a child that does not exit
// within the cmd's WaitDelay is killed. It is called once.
func (p *relayProc) Close() error {
	_, _, qerr := p.call("quit")
	_ = p.in.Close()
	err := p.cmd.Wait()
	if qerr != nil && err == nil {
		err = qerr
	}
	if err != nil {
		return fmt.Errorf("relay child: %w", err)
	}
	return nil
}

// kill ends a child that failed to start properly.
func (p *relayProc) kill() error {
	_ = p.in.Close()
	_ = p.cmd.Process.Kill()
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil
	}
	return err
}

// relayArgv returns the command line that starts "rtpload relay" from this
// executable.
func relayArgv(addr netip.Addr, ports, cpuProfile string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	argv := []string{exe, "relay", "--addr", addr.String(), "--ports", ports}
	if cpuProfile != "" {
		argv = append(argv, "--cpuprofile", cpuProfile)
	}
	return argv, nil
}
