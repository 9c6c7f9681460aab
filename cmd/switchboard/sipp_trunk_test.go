package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/browsertest"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/web"
)

// TestSIPpTrunkCalls runs the real server with a trunk to a provider
// played by SIPp on 127.0.0.2: a SIPp phone (1001) calls an outside number,
// which leaves through the trunk, answers the provider's 401 challenge and
// gets echoed audio; then the provider calls the trunk's DID, which rings
// a SIPp phone registered as 1002, with audio through the relay.
func TestSIPpTrunkCalls(t *testing.T) {
	sipp := sippPath(t)
	provPort := freeProviderPort(t)
	provAddr := fmt.Sprintf("127.0.0.2:%d", provPort)
	extra := fmt.Sprintf(`trunks:
  - name: carrier
    address: %q
    register: false
    username: acct-77
    password: trunk-secret
    inbound: {"+15551230000": "1002"}
    outbound: '^\+[0-9]{7,15}$'
    caller_id: "+15551230000"
    ping_interval: 0
`, provAddr)
	hooks := newReceiver(t)
	hooks.start(t)
	extra += hookConfig(hooks)
	s := startServer(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"}, extra)
	dir := s.dir
	writeTone(t, filepath.Join(dir, "audio.ulaw"), 1.0)
	files := map[string]string{
		"uac.csv":      "SEQUENTIAL\n1001;[authentication username=1001 password=alice-1001]\n",
		"uas.csv":      "SEQUENTIAL\n1002;[authentication username=1002 password=bob-1002]\n",
		"provider.csv": "SEQUENTIAL\nacct-77;trunk-secret\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	scenario := func(name string) string {
		p, _ := filepath.Abs(filepath.Join("../../sipp", name))
		return p
	}
	server := fmt.Sprintf("127.0.0.1:%d", s.sipPort)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Outbound: 1001 → +15557654321 → trunk → SIPp provider.
	provider := startSIPp(t, ctx, dir, sipp, "-sf", scenario("provider_uas.xml"), "-inf", "provider.csv",
		"-i", "127.0.0.2", "-p", fmt.Sprint(provPort), "-mi", "127.0.0.2", "-mp", fmt.Sprint(freeUDPBlock(t)),
		"-rtp_echo", "-m", "1", "-nostdin", "-trace_msg", "-message_file", "provider-msgs.log")
	time.Sleep(300 * time.Millisecond)
	out, err := runSIPp(ctx, dir, sipp, server, "-sf", scenario("uac_call.xml"), "-inf", "uac.csv", "-s", "+15557654321", "-m", "1",
		"-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mi", "127.0.0.1", "-mp", fmt.Sprint(freeUDPBlock(t)),
		"-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err", "-error_file", "uac-errors.log")
	if err != nil {
		errs, _ := os.ReadFile(filepath.Join(dir, "uac-errors.log"))
		msgs, _ := os.ReadFile(filepath.Join(dir, "provider-msgs.log"))
		t.Logf("provider messages:\n%s", msgs)
		t.Fatalf("outbound call (sipp uac): %v\n%s\n%s\nprovider:\n%s\nserver:\n%s", err, tail(out, 1000), tail(string(errs), 3000), tail(provider.out.String(), 3000), tail(s.stderr.String(), 3000))
	}
	if err := provider.wait(20 * time.Second); err != nil {
		t.Fatalf("provider (sipp uas): %v\n%s", err, tail(provider.out.String(), 2000))
	}

	// Inbound: the provider calls +15551230000, which rings 1002.
	uasPort := freePort(t)
	if out, err := runSIPp(ctx, dir, sipp, server, "-sf", scenario("register_auth.xml"), "-inf", "uas.csv", "-m", "1",
		"-i", "127.0.0.1", "-p", fmt.Sprint(uasPort), "-mp", fmt.Sprint(freeUDPBlock(t)), "-nostdin", "-timeout", "10s", "-timeout_error"); err != nil {
		t.Fatalf("register 1002: %v\n%s", err, tail(out, 2000))
	}
	phone := startSIPp(t, ctx, dir, sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", fmt.Sprint(uasPort),
		"-mi", "127.0.0.1", "-mp", fmt.Sprint(freeUDPBlock(t)), "-rtp_echo", "-m", "1", "-nostdin")
	time.Sleep(300 * time.Millisecond)
	out, err = runSIPp(ctx, dir, sipp, server, "-sf", scenario("provider_uac.xml"), "-s", "+15551230000", "-m", "1",
		"-i", "127.0.0.2", "-p", fmt.Sprint(provPort), "-mi", "127.0.0.2", "-mp", fmt.Sprint(freeUDPBlock(t)),
		"-nostdin", "-timeout", "30s", "-timeout_error")
	if err != nil {
		t.Fatalf("inbound call (provider sipp uac): %v\n%s\nphone:\n%s", err, tail(out, 2000), tail(phone.out.String(), 2000))
	}
	if err := phone.wait(20 * time.Second); err != nil {
		t.Fatalf("phone 1002 (sipp uas): %v\n%s", err, tail(phone.out.String(), 2000))
	}

	checkTrunkRecords(t, dir, hooks)

	s.stop(t)
	st, err := store.Open(context.Background(), filepath.Join(dir, "sb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Calls(context.Background(), store.CallFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d call records, want 2: %+v", len(recs), recs)
	}
	want := map[string][2]string{"outbound": {"1001", "+15557654321"}, "inbound": {"+15550001111", "1002"}}
	for _, r := range recs {
		w, ok := want[r.Direction]
		if !ok || r.Caller != w[0] || r.Callee != w[1] || r.Result != "answered" {
			t.Errorf("record %+v", r)
			continue
		}
		delete(want, r.Direction)
		// 1 s of 20 ms packets from the caller, echoed by the callee.
		for _, l := range r.Legs {
			if l.PacketsIn < 40 || l.PacketsOut < 40 {
				t.Errorf("%s call, leg %s relayed too little: %+v", r.Direction, l.Name, l)
			}
		}
	}
}

// checkTrunkRecords checks that the records (through the API, as ctl
// reads them) and the webhook call.* events of the two calls of
// TestSIPpTrunkCalls name the trunk, and the DID of the inbound call.
func checkTrunkRecords(t *testing.T, dir string, hooks *hookReceiver) {
	t.Helper()
	sock := filepath.Join(dir, "sb.sock")
	want := map[string][2]string{"outbound": {"carrier", ""}, "inbound": {"carrier", "+15551230000"}}
	code, out, errs := ctlRun(t, "", "--socket", sock, "--json", "records")
	var recs []web.Record
	if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 2 {
		t.Fatalf("ctl records --json: %d %s %s", code, out, errs)
	}
	ids := map[string]string{} // call ID → direction
	for _, r := range recs {
		if w := want[r.Direction]; r.Trunk != w[0] || r.DID != w[1] {
			t.Errorf("%s record names trunk %q and DID %q, want %q and %q", r.Direction, r.Trunk, r.DID, w[0], w[1])
		}
		ids[r.ID] = r.Direction
	}
	code, out, _ = ctlRun(t, "", "--socket", sock, "records")
	if code != 0 || !regexpLine(out, `^STARTED\s+CALLER\s+CALLEE\s+RESULT\s.*\sID\s+TRUNK$`) ||
		!regexpLine(out, `\s1001\s+\+15557654321\s+answered\s.*\scarrier$`) ||
		!regexpLine(out, `\s\+15550001111\s+1002\s+answered\s.*\scarrier \+15551230000$`) {
		t.Errorf("ctl records:\n%s", out)
	}

	// Every call.* event but the outbound call's call.started (no trunk
	// is chosen then) names the trunk; the inbound call's also the DID.
	var evs []hookEvent
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, _ = hooks.events()
		ended := 0
		for _, ev := range evs {
			if ev.Type == "call.ended" {
				ended++
			}
		}
		if ended == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	checked := 0
	for _, ev := range evs {
		if !strings.HasPrefix(ev.Type, "call.") {
			continue
		}
		var data struct {
			ID, Trunk, DID string
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatalf("%s data: %v", ev.Type, err)
		}
		dir := ids[data.ID]
		w := want[dir]
		if dir == "outbound" && ev.Type == "call.started" {
			w[0] = ""
		}
		if dir == "" || data.Trunk != w[0] || data.DID != w[1] {
			t.Errorf("%s of the %s call: %s", ev.Type, dir, ev.Data)
		}
		checked++
	}
	if checked < 6 {
		t.Errorf("%d call events checked, want at least 6 (started, answered, ended of two calls)", checked)
	}
}

// freeProviderPort is a UDP port free on 127.0.0.2.
func freeProviderPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// sippProc is a SIPp process running in the background.
type sippProc struct {
	out  *lockedBuffer
	done chan struct{}
	err  error
}

// startSIPp starts SIPp in dir; it is killed when the test ends if it is
// still running.
func startSIPp(t *testing.T, ctx context.Context, dir, sipp string, args ...string) *sippProc {
	t.Helper()
	cmd := exec.CommandContext(ctx, sipp, args...)
	cmd.Dir = dir
	p := &sippProc{out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits up to d for SIPp to exit and returns how it did.
func (p *sippProc) wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return errors.New("still running")
	}
}

// runSIPp runs SIPp in dir to the end and returns its output.
func runSIPp(ctx context.Context, dir, sipp string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, sipp, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestBrowserCallsThroughTrunk has the browser phone page (headless
// Chromium, WebRTC) dial an outside number: the call leaves through the
// trunk to the SIPp provider as plain RTP, answers its digest challenge,
// and the provider's echo comes back to the browser.
func TestBrowserCallsThroughTrunk(t *testing.T) {
	sipp := sippPath(t)
	provPort := freeProviderPort(t)
	extra := fmt.Sprintf(`trunks:
  - {name: carrier, address: "127.0.0.2:%d", register: false, username: acct-77, password: trunk-secret, outbound: '^\+[0-9]{7,15}$', ping_interval: 0}
`, provPort)
	s := startServer(t, map[string]string{"1003": "carol-1003"}, extra)
	cfg, err := config.Load(filepath.Join(s.dir, "switchboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := &browserEnv{server: s, base: "http://" + cfg.Web.Listen, browser: browsertest.Start(t)}
	if err := os.WriteFile(filepath.Join(s.dir, "provider.csv"), []byte("SEQUENTIAL\nacct-77;trunk-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scenario, _ := filepath.Abs("../../sipp/provider_uas.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	provider := startSIPp(t, ctx, s.dir, sipp, "-sf", scenario, "-inf", "provider.csv",
		"-i", "127.0.0.2", "-p", fmt.Sprint(provPort), "-mi", "127.0.0.2", "-mp", fmt.Sprint(freeUDPBlock(t)),
		"-rtp_echo", "-m", "1", "-nostdin")

	page := e.signIn(t, "1003", "carol-1003")
	page.Fill("dial-number", "+15557654321")
	page.Click("call-button")
	page.WaitText("call-state", "In call")
	// The browser's audio goes out to the provider, which echoes it back.
	page.WaitFor(inboundPackets + `.then(n => n > 25)`)
	page.Click("hangup-button")
	page.WaitText("call-state", "Call ended")
	if err := provider.wait(20 * time.Second); err != nil {
		t.Fatalf("provider (sipp uas): %v\n%s", err, tail(provider.out.String(), 2000))
	}
}
