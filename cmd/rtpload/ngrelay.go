package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ngRelay is rtpengine in userspace mode (--table=-1: no kernel forwarding),
// started as a child process and controlled over its ng protocol: bencoded
// dictionaries in UDP datagrams, each prefixed with a cookie that the answer
// echoes. A call is an "offer" with phone A's SDP, which returns the port
// phone B sends to, and an "answer" with phone B's SDP, which returns the
// port phone A sends to — what a SIP proxy does with rtpengine.
type ngRelay struct {
	cmd    *exec.Cmd
	conn   *net.UDPConn // connected to the ng port
	seq    int
	prefix string // call-id prefix, unique per run
	buf    []byte
}

const (
	ngTimeout     = 2 * time.Second  // one command's answer
	ngStartBudget = 15 * time.Second // until rtpengine answers ping
	ngMaxAnswer   = 64 << 10
)

// startNGRelay starts rtpengine on cfg.Addr with cfg.Ports and waits until
// it answers ping. The child is killed when ctx ends and, on Linux, when this
// process dies.
func startNGRelay(ctx context.Context, cfg genConfig, stderr io.Writer) (*ngRelay, error) {
	lo, hi, ok := strings.Cut(cfg.Ports, "-")
	if !ok {
		return nil, fmt.Errorf("rtpengine: ports %q: want MIN-MAX", cfg.Ports)
	}
	ngPort, err := freeUDPPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("rtpengine: %w", err)
	}
	ng := netip.AddrPortFrom(cfg.Addr, uint16(ngPort))
	args := []string{
		"--table=-1", "--foreground", "--log-stderr", "--log-level=3",
		"--interface=" + cfg.Addr.String(), "--listen-ng=" + ng.String(),
		"--port-min=" + lo, "--port-max=" + hi,
		"--no-fallback", "--timeout=600", "--silent-timeout=600",
	}
	if cfg.RelayThreads > 0 {
		args = append(args, "--num-threads="+strconv.Itoa(cfg.RelayThreads))
	}
	cmd := exec.CommandContext(ctx, cfg.RTPEngine, args...)
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rtpengine: %w", err)
	}
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ng))
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("rtpengine: %w", err)
	}
	r := &ngRelay{cmd: cmd, conn: conn, prefix: fmt.Sprintf("rtpload-%d-%d", os.Getpid(), time.Now().UnixNano()), buf: make([]byte, ngMaxAnswer)}
	deadline := time.Now().Add(ngStartBudget)
	for {
		ans, err := r.command(map[string]any{"command": "ping"}, 200*time.Millisecond)
		if err == nil && ans["result"] == "pong" {
			return r, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = r.Close()
			return nil, fmt.Errorf("rtpengine did not answer ping on %s: %v", ng, err)
		}
	}
}

// freeUDPPort returns a UDP port on addr that was free a moment ago.
func freeUDPPort(addr netip.Addr) (int, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// command sends one ng command and returns the answer's dictionary.
// Answers to earlier, timed-out commands are skipped by their cookie.
func (r *ngRelay) command(cmd map[string]any, timeout time.Duration) (map[string]any, error) {
	r.seq++
	cookie := strconv.Itoa(r.seq) + "_" + strconv.Itoa(os.Getpid())
	msg, err := bencode([]byte(cookie+" "), cmd)
	if err != nil {
		return nil, err
	}
	if _, err := r.conn.Write(msg); err != nil {
		return nil, fmt.Errorf("ng %s: %w", cmd["command"], err)
	}
	if err := r.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	for {
		n, err := r.conn.Read(r.buf)
		if err != nil {
			return nil, fmt.Errorf("ng %s: %w", cmd["command"], err)
		}
		got, body, ok := strings.Cut(string(r.buf[:n]), " ")
		if !ok || got != cookie {
			continue
		}
		v, _, err := bdecode([]byte(body))
		if err != nil {
			return nil, fmt.Errorf("ng %s: %w", cmd["command"], err)
		}
		ans, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("ng %s: answer is %T, not a dictionary", cmd["command"], v)
		}
		if res, _ := ans["result"].(string); res == "error" {
			return nil, fmt.Errorf("ng %s: %v", cmd["command"], ans["error-reason"])
		}
		return ans, nil
	}
}

// Pid returns rtpengine's process ID.
func (r *ngRelay) Pid() int { return r.cmd.Process.Pid }

// phoneSDP is the SDP offer or answer of a phone sending PCMU from addr.
func phoneSDP(addr netip.AddrPort) string {
	a := addr.Addr().String()
	return "v=0\r\no=- 1 1 IN IP4 " + a + "\r\ns=-\r\nc=IN IP4 " + a + "\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(int(addr.Port())) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
}

// sdpAudioPort returns the port of the first audio stream of sdp.
func sdpAudioPort(sdp string) (int, error) {
	for line := range strings.SplitSeq(sdp, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "m=audio "); ok {
			f, _, _ := strings.Cut(rest, " ")
			port, err := strconv.Atoi(f)
			if err != nil || port < 1 || port > 65535 {
				return 0, fmt.Errorf("bad port in %q", line)
			}
			return port, nil
		}
	}
	return 0, errors.New("no m=audio line")
}

// Open offers and answers one call per entry of calls.
func (r *ngRelay) Open(calls []callAddrs) ([]legPorts, error) {
	ports := make([]legPorts, len(calls))
	for i, c := range calls {
		id := r.prefix + "-" + strconv.Itoa(i)
		off, err := r.command(map[string]any{
			"command": "offer", "call-id": id, "from-tag": "a", "sdp": phoneSDP(c.a),
		}, ngTimeout)
		if err != nil {
			return nil, fmt.Errorf("rtpengine call %d: %w", i, err)
		}
		ans, err := r.command(map[string]any{
			"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": phoneSDP(c.b),
		}, ngTimeout)
		if err != nil {
			return nil, fmt.Errorf("rtpengine call %d: %w", i, err)
		}
		offSDP, _ := off["sdp"].(string)
		ansSDP, _ := ans["sdp"].(string)
		if ports[i].b, err = sdpAudioPort(offSDP); err != nil {
			return nil, fmt.Errorf("rtpengine call %d offer: %w", i, err)
		}
		if ports[i].a, err = sdpAudioPort(ansSDP); err != nil {
			return nil, fmt.Errorf("rtpengine call %d answer: %w", i, err)
		}
	}
	return ports, nil
}

// Stats returns rtpengine's session count and relayed packets (it counts
// each forwarded packet once, so PacketsIn and PacketsOut are the same).
func (r *ngRelay) Stats() (relayStats, error) {
	ans, err := r.command(map[string]any{"command": "statistics"}, ngTimeout)
	if err != nil {
		return relayStats{}, fmt.Errorf("rtpengine: %w", err)
	}
	stats, _ := ans["statistics"].(map[string]any)
	cur, _ := stats["currentstatistics"].(map[string]any)
	total, _ := stats["totalstatistics"].(map[string]any)
	num := func(m map[string]any, k string) uint64 {
		switch v := m[k].(type) {
		case int64:
			if v > 0 {
				return uint64(v)
			}
		case string:
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
		return 0
	}
	pk := num(total, "relayedpackets_user")
	if pk == 0 {
		pk = num(total, "relayedpackets")
	}
	return relayStats{Sessions: num(cur, "sessionsown"), PacketsIn: pk, PacketsOut: pk}, nil
}

// Close stops rtpengine (SIGTERM, then SIGKILL after the WaitDelay) and waits
// for it. An exit by SIGTERM is the expected end.
func (r *ngRelay) Close() error {
	_ = r.conn.Close()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		err = <-done
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("rtpengine: %w", err)
	}
	return nil
}
