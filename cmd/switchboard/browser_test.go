package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/rtp"

	"github.com/switchboard/switchboard/internal/browsertest"
	"github.com/switchboard/switchboard/internal/config"
)

// browserEnv is the real server with a headless Chromium to open its phone
// page.
type browserEnv struct {
	*server
	base    string // http://127.0.0.1:port
	browser *browsertest.Browser
}

func startBrowserEnv(t *testing.T, users map[string]string) *browserEnv {
	t.Helper()
	return startBrowserEnvExtra(t, users, "")
}

// startBrowserEnvExtra is startBrowserEnv with extra configuration YAML.
func startBrowserEnvExtra(t *testing.T, users map[string]string, extra string) *browserEnv {
	t.Helper()
	s := startServer(t, users, extra)
	cfg, err := config.Load(filepath.Join(s.dir, "switchboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	logServerOnFailure(t, s)
	return &browserEnv{server: s, base: "http://" + cfg.Web.Listen, browser: browsertest.Start(t)}
}

// startBrowserEnvWeb is startBrowserEnv with more keys under web:
// (webKeys, YAML lines indented by two spaces), the page's scheme (http or
// https) and the browser started with opts. dir holds the server's files.
func startBrowserEnvWeb(t *testing.T, dir string, users map[string]string, webKeys, scheme string, opts ...browsertest.Option) *browserEnv {
	t.Helper()
	s := &server{sipPort: freePort(t), dir: dir, done: make(chan int, 1), stderr: &lockedBuffer{}}
	cfgPath := writeServerConfig(t, s, users, "")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const tokens = "api_tokens: [\"test-token-1\"]\n"
	if !strings.Contains(string(b), tokens) {
		t.Fatalf("no web.api_tokens line to add web keys after in:\n%s", b)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(b), tokens, tokens+webKeys, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start(t, cfgPath)
	logServerOnFailure(t, s)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return &browserEnv{server: s, base: scheme + "://" + cfg.Web.Listen, browser: browsertest.Start(t, opts...)}
}

// logServerOnFailure shows the end of the server's log when t fails.
func logServerOnFailure(t *testing.T, s *server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", tail(s.stderr.String(), 4000))
		}
	})
}

// signIn opens the phone page and signs in as user.
func (e *browserEnv) signIn(t *testing.T, user, pass string) *browsertest.Page {
	t.Helper()
	return e.signInPage(t, e.browser.NewPage(t), user, pass)
}

// signInPage signs in as user on p.
func (e *browserEnv) signInPage(t *testing.T, p *browsertest.Page, user, pass string) *browsertest.Page {
	t.Helper()
	p.SetName("page of " + user)
	p.Navigate(e.base + "/")
	p.Fill("login-user", user)
	p.Fill("login-password", pass)
	p.Click("login-submit")
	p.WaitText("reg-state", "Registered")
	p.WaitVisible("phone-panel")
	return p
}

// inboundPackets is the number of audio packets the page's call received.
const inboundPackets = `(async () => {
  const pc = window.switchboard.pc;
  if (!pc) return 0;
  let n = 0;
  for (const s of (await pc.getStats()).values()) if (s.type === "inbound-rtp" && s.kind === "audio") n += s.packetsReceived;
  return n;
})()`

// rtpPhone is the media side of a test phone: it sends a PCMU stream to
// the relay and counts what comes back, by payload type.
type rtpPhone struct {
	conn *net.UDPConn
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  map[uint8]int
}

// deskPhone registers a SIP phone as 1001 (alice-1001) and gives it an RTP
// endpoint for its media.
func (e *browserEnv) deskPhone(t *testing.T) (*sipPhone, *rtpPhone) {
	t.Helper()
	phone := newPhone(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1001", "alice-1001", "test-phone")
	if code := phone.register(300); code != 200 {
		t.Fatalf("phone REGISTER: %d", code)
	}
	return phone, newRTPPhone(t)
}

// dialDeskPhone dials 1001 from the page and returns the INVITE the phone
// gets, where its media must go and the telephone-event type offered.
func dialDeskPhone(t *testing.T, page *browsertest.Page, phone *sipPhone) (*sipMsg, *net.UDPAddr, int) {
	t.Helper()
	page.Fill("dial-number", "1001")
	page.Click("call-button")
	inv := phone.readRequest("INVITE")
	dst, event := plainTarget(t, inv.body)
	return inv, dst, event
}

func newRTPPhone(t *testing.T) *rtpPhone {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &rtpPhone{conn: conn, stop: make(chan struct{}), got: map[uint8]int{}}
	p.wg.Add(1)
	go p.receive()
	t.Cleanup(p.close)
	return p
}

func (p *rtpPhone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *rtpPhone) receive() {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		p.mu.Lock()
		p.got[pkt.PayloadType]++
		p.mu.Unlock()
	}
}

func (p *rtpPhone) count(pt uint8) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got[pt]
}

// send streams 20 ms PCMU packets of a tone to dst until close.
func (p *rtpPhone) send(dst *net.UDPAddr) {
	tone := make([]byte, 160)
	for i := range tone {
		tone[i] = linearToULaw(int16(6000 * sinTable(i)))
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x1001}, Payload: tone}
		for i := 0; i < 3000; i++ { // at most a minute
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			pkt.SequenceNumber++
			pkt.Timestamp += 160
			pkt.Marker = i == 0
			b, _ := pkt.Marshal()
			if _, err := p.conn.WriteToUDP(b, dst); err != nil {
				return
			}
		}
	}()
}

func (p *rtpPhone) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.conn.Close()
	p.wg.Wait()
}

// sinTable is a 400 Hz sine at 8 kHz (20 samples a period).
func sinTable(i int) float64 {
	return []float64{0, .31, .59, .81, .95, 1, .95, .81, .59, .31, 0, -.31, -.59, -.81, -.95, -1, -.95, -.81, -.59, -.31}[i%20]
}

var (
	sdpConn  = regexp.MustCompile(`(?m)^c=IN IP4 (\S+)`)
	sdpAudio = regexp.MustCompile(`(?m)^m=audio (\d+) (\S+) ([0-9 ]+)`)
	sdpEvent = regexp.MustCompile(`(?m)^a=rtpmap:(\d+) telephone-event/8000`)
)

// plainTarget checks that body is a plain RTP offer or answer with PCMU and
// returns where to send RTP and the telephone-event payload type (0 if none).
func plainTarget(t *testing.T, body string) (*net.UDPAddr, int) {
	t.Helper()
	c, m := sdpConn.FindStringSubmatch(body), sdpAudio.FindStringSubmatch(body)
	if c == nil || m == nil {
		t.Fatalf("SDP without connection or audio line:\n%s", body)
	}
	if m[2] != "RTP/AVP" {
		t.Fatalf("phone got transport %s, want plain RTP/AVP:\n%s", m[2], body)
	}
	if !regexp.MustCompile(`(^| )0( |$)`).MatchString(m[3]) {
		t.Fatalf("phone was not offered PCMU:\n%s", body)
	}
	port, _ := strconv.Atoi(m[1])
	ev := 0
	if e := sdpEvent.FindStringSubmatch(body); e != nil {
		ev, _ = strconv.Atoi(e[1])
	}
	return &net.UDPAddr{IP: net.ParseIP(c[1]), Port: port}, ev
}

func phoneSDP(port, event int) string {
	s := fmt.Sprintf("v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0", port)
	if event != 0 {
		s += fmt.Sprintf(" %d", event)
	}
	s += "\r\na=rtpmap:0 PCMU/8000\r\n"
	if event != 0 {
		s += fmt.Sprintf("a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", event, event)
	}
	return s + "a=sendrecv\r\n"
}

// waitAtLeast polls count until it reaches n.
func waitAtLeast(t *testing.T, what string, n int, count func() int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want at least %d", what, count(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The browser (1003, on our page) calls a SIP phone (1001): audio flows
// both ways through the WebRTC bridge, the keypad reaches the phone as
// RFC 4733 events, and the page hangs up.
func TestBrowserCallsPhone(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	phone, media := e.deskPhone(t)
	page := e.signIn(t, "1003", "carol-1003")

	inv, dst, event := dialDeskPhone(t, page, phone)
	if event == 0 {
		t.Fatalf("no telephone-event offered to the phone:\n%s", inv.body)
	}
	phone.respond(inv, 180, "")
	page.WaitText("call-state", "Ringing")
	phone.respond(inv, 200, phoneSDP(media.port(), event))
	phone.readRequest("ACK")
	media.send(dst)
	page.WaitText("call-state", "In call")

	// Phone → browser: the page's peer connection counts the packets.
	page.WaitFor(inboundPackets + `.then(n => n > 25)`)
	// Browser → phone: PCMU from the browser's fake microphone.
	waitAtLeast(t, "PCMU packets from the browser", 25, func() int { return media.count(0) })

	// The call lists the codecs agreed (what the phone answered), not
	// everything the browser offered.
	var calls struct {
		Items []struct {
			Codecs []string `json:"codecs"`
		} `json:"items"`
	}
	req, _ := http.NewRequest("GET", e.base+"/api/v1/calls", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		err = json.NewDecoder(res.Body).Decode(&calls)
		res.Body.Close()
		if err != nil || len(calls.Items) != 1 || len(calls.Items[0].Codecs) == 0 || calls.Items[0].Codecs[0] != "PCMU/8000" ||
			slices.ContainsFunc(calls.Items[0].Codecs, func(c string) bool { return strings.HasPrefix(c, "opus/") }) {
			t.Errorf("codecs of the call: %+v (%v)", calls.Items, err)
		}
	}

	// The keypad sends telephone events to the phone.
	page.Click("key-5")
	waitAtLeast(t, "telephone-event packets from the browser", 3, func() int { return media.count(uint8(event)) })
	page.WaitText("dtmf-sent", "5")

	page.WaitFor(`document.querySelector('[data-testid=call-timer]').textContent.length > 0`)
	shot := filepath.Join(t.TempDir(), "browser-call.png")
	page.Screenshot(shot)
	// SWITCHBOARD_SCREENSHOT=docs/browser-phone.png refreshes the README's
	// picture of the phone during a call.
	if path := os.Getenv("SWITCHBOARD_SCREENSHOT"); path != "" {
		ctx, cancel := context.WithTimeout(page.Context(), 10*time.Second)
		png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("main.phone")))
		cancel()
		if err != nil {
			t.Fatalf("screenshot of the phone: %v", err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", path), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	page.Click("hangup-button")
	bye := phone.readRequest("BYE")
	phone.respond(bye, 200, "")
	page.WaitText("call-state", "Call ended")
	// The page closes its peer connection as it sends BYE: the record
	// still says the caller hung up, not that the browser's media failed.
	var rec struct {
		Items []struct {
			HangupBy string `json:"hangup_by"`
			Reason   string `json:"reason"`
			EndedAt  string `json:"ended_at"`
		} `json:"items"`
	}
	waitFor(t, "the call's record", func() bool {
		req, _ := http.NewRequest("GET", e.base+"/api/v1/records?limit=1", nil)
		req.Header.Set("Authorization", "Bearer test-token-1")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return json.NewDecoder(res.Body).Decode(&rec) == nil && len(rec.Items) == 1 && rec.Items[0].EndedAt != ""
	})
	if r := rec.Items[0]; r.HangupBy != "caller" || r.Reason != "BYE" {
		t.Errorf("browser hang-up recorded as hangup_by %q reason %q, want the caller's BYE", r.HangupBy, r.Reason)
	}
}

// A SIP phone (1001) calls the browser: the page rings with caller ID, the
// test answers, audio flows both ways, and the phone hangs up.
func TestPhoneCallsBrowser(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	phone := newPhone(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1001", "alice-1001", "test-phone")
	media := newRTPPhone(t)
	page := e.signIn(t, "1003", "carol-1003")
	deskPhoneCallsPage(t, page, phone, media, "the browser")
}

// deskPhoneCallsPage has phone (1001) call the page's user 1003: the page
// rings with the caller's ID and is answered, audio flows both ways, and
// the phone hangs up. what names the page in failures.
func deskPhoneCallsPage(t *testing.T, page *browsertest.Page, phone *sipPhone, media *rtpPhone, what string) {
	t.Helper()
	c := &outCall{callee: "1003", callID: randHex(8), fromTag: randHex(4), branch: "z9hG4bK" + randHex(8), cseq: 1}
	phone.sendInvite(c, phoneSDP(media.port(), 101))
	page.WaitVisible("incoming")
	page.WaitText("incoming-caller", "1001")
	page.Click("answer-button")
	res := phone.finalResponse(c)
	if res.status != 200 {
		t.Fatalf("INVITE to %s: %d", what, res.status)
	}
	dst, _ := plainTarget(t, res.body)
	media.send(dst)
	page.WaitText("call-state", "In call")
	page.WaitFor(inboundPackets + `.then(n => n > 25)`)
	waitAtLeast(t, "PCMU packets from the browser", 25, func() int { return media.count(0) })
	phone.bye(c, res)
	page.WaitText("call-state", "ended by the other side")
}

// Two browsers call each other through the server (Opus may pass through).
func TestBrowserCallsBrowser(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1002": "bob-1002", "1003": "carol-1003"})
	carol := e.signIn(t, "1003", "carol-1003")
	bob := e.signIn(t, "1002", "bob-1002")

	carol.Fill("dial-number", "1002")
	carol.Click("call-button")
	bob.WaitText("incoming-caller", "1003")
	bob.Click("answer-button")
	carol.WaitText("call-state", "In call")
	bob.WaitText("call-state", "In call")
	carol.WaitFor(inboundPackets + `.then(n => n > 25)`)
	bob.WaitFor(inboundPackets + `.then(n => n > 25)`)

	bob.Click("hangup-button")
	carol.WaitText("call-state", "ended by the other side")
}

// sendInvite sends an INVITE with sdp to c.callee, answering the server's
// 407 challenge; read the final response with finalResponse.
func (p *sipPhone) sendInvite(c *outCall, sdp string) {
	p.t.Helper()
	build := func(auth string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "INVITE sip:%s@switchboard.local SIP/2.0\r\n", c.callee)
		fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n", p.addr(), c.branch)
		fmt.Fprintf(&b, "From: \"Alice\" <sip:%s@switchboard.local>;tag=%s\r\nTo: <sip:%s@switchboard.local>\r\n", p.user, c.fromTag, c.callee)
		fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d INVITE\r\nContact: <sip:%s@%s>\r\n", c.callID, c.cseq, p.user, p.addr())
		if auth != "" {
			fmt.Fprintf(&b, "Proxy-Authorization: %s\r\n", auth)
		}
		fmt.Fprintf(&b, "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(sdp), sdp)
		return b.String()
	}
	p.send(p.server, build(""))
	res := p.readFinal(c.callID, c.cseq)
	if res.status != 407 {
		p.t.Fatalf("INVITE without credentials: %d, want 407", res.status)
	}
	p.ack(c, res)
	c.cseq, c.branch = 2, "z9hG4bK"+randHex(8)
	p.send(p.server, build(p.authorization(res.get("proxy-authenticate"), "INVITE", "sip:"+c.callee+"@switchboard.local")))
}

// bye hangs up the call that res answered and checks the server's 200.
func (p *sipPhone) bye(c *outCall, res *sipMsg) {
	p.t.Helper()
	uri := "sip:" + c.callee + "@switchboard.local"
	if ct := res.get("contact"); ct != "" {
		if i, j := strings.Index(ct, "<"), strings.Index(ct, ">"); i >= 0 && j > i {
			uri = ct[i+1 : j]
		}
	}
	c.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n", uri, p.addr(), randHex(8))
	fmt.Fprintf(&b, "From: <sip:%s@switchboard.local>;tag=%s\r\nTo: %s\r\n", p.user, c.fromTag, res.get("to"))
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d BYE\r\nContent-Length: 0\r\n\r\n", c.callID, c.cseq)
	p.send(p.server, b.String())
	if st := p.readFinal(c.callID, c.cseq).status; st != 200 {
		p.t.Fatalf("BYE: %d", st)
	}
}

// The page says plainly what went wrong.
func TestPhonePageErrors(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})

	t.Run("wrong password", func(t *testing.T) {
		p := e.browser.NewPage(t)
		p.Navigate(e.base + "/")
		p.Fill("login-user", "1003")
		p.Fill("login-password", "not-the-password")
		p.Click("login-submit")
		p.WaitText("error", "Wrong extension or password")
		p.WaitVisible("login-form")
		if got := p.Text("reg-state"); got == "Registered" {
			t.Fatalf("registration state %q after a wrong password", got)
		}
	})

	t.Run("callee offline", func(t *testing.T) {
		p := e.signIn(t, "1003", "carol-1003")
		p.Fill("dial-number", "1001")
		p.Click("call-button")
		p.WaitText("error", "1001 is offline")
		p.WaitVisible("call-button")
	})

	t.Run("connection lost and back", func(t *testing.T) {
		p := e.signIn(t, "1003", "carol-1003")
		browsertest.Eval[bool](p, `window.switchboard.ua.ws.close(), true`)
		p.WaitText("reg-state", "Reconnecting")
		p.WaitText("error", "Connection to the server lost")
		p.WaitText("reg-state", "Registered")
		p.WaitHidden("error")
	})

	t.Run("microphone denied", func(t *testing.T) {
		// The test browser grants the fake microphone without asking, so
		// the refusal a person would give is played by the page's API.
		p := e.browser.NewPage(t)
		p.AddInitScript(`navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));`)
		e.signInPage(t, p, "1003", "carol-1003")
		p.Fill("dial-number", "1001")
		p.Click("call-button")
		p.WaitText("error", "Microphone access was denied")
		p.WaitVisible("call-button")
	})

	t.Run("no WebRTC", func(t *testing.T) {
		p := e.browser.NewPage(t)
		p.AddInitScript(`delete window.RTCPeerConnection;`)
		p.Navigate(e.base + "/")
		p.WaitText("unsupported", "does not support WebRTC")
		p.WaitHidden("login-form")
	})
}

// With web.tls the page is served over HTTPS and registers over wss://;
// a call to a phone carries audio as over plain HTTP.
func TestBrowserOverHTTPS(t *testing.T) {
	e := startHTTPSBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	phone, media := e.deskPhone(t)
	page := e.signIn(t, "1003", "carol-1003")
	if url := browsertest.Eval[string](page, `window.switchboard.ua.url`); !strings.HasPrefix(url, "wss://") {
		t.Fatalf("page connected to %s, want wss://", url)
	}
	inv, dst, event := dialDeskPhone(t, page, phone)
	phone.respond(inv, 200, phoneSDP(media.port(), event))
	phone.readRequest("ACK")
	media.send(dst)
	page.WaitText("call-state", "In call")
	page.WaitFor(inboundPackets + `.then(n => n > 25)`)
	waitAtLeast(t, "PCMU packets from the browser", 25, func() int { return media.count(0) })
	page.Click("hangup-button")
	phone.respond(phone.readRequest("BYE"), 200, "")
}

// Closing the tab during a call hangs up at once: the phone gets its BYE
// without waiting for the browser's media to time out.
func TestBrowserTabClosedEndsCall(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	phone, media := e.deskPhone(t)
	page := e.signIn(t, "1003", "carol-1003")
	inv, dst, event := dialDeskPhone(t, page, phone)
	phone.respond(inv, 200, phoneSDP(media.port(), event))
	phone.readRequest("ACK")
	media.send(dst)
	page.WaitText("call-state", "In call")

	// The page's own hang-up on unload is taken away: only the closed
	// WebSocket tells the server.
	browsertest.Eval[bool](page, `window.switchboard.ua.hangup = () => {}, window.switchboard.ua.stop = () => {}, true`)
	closed := time.Now()
	page.Close()
	bye := phone.readRequest("BYE")
	phone.respond(bye, 200, "")
	if d := time.Since(closed); d > 5*time.Second {
		t.Fatalf("BYE came %s after the tab closed", d)
	}
}

// With media.webrtc_port every browser call's ICE runs on that one port.
func TestBrowserCallOnSharedICEPort(t *testing.T) {
	port := freePort(t)
	e := startBrowserEnvExtra(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"},
		fmt.Sprintf("media:\n  webrtc_port: %d\n", port))
	phone, media := e.deskPhone(t)
	page := e.signIn(t, "1003", "carol-1003")
	inv, dst, event := dialDeskPhone(t, page, phone)
	phone.respond(inv, 200, phoneSDP(media.port(), event))
	phone.readRequest("ACK")
	media.send(dst)
	page.WaitText("call-state", "In call")
	page.WaitFor(inboundPackets + `.then(n => n > 25)`)
	waitAtLeast(t, "PCMU packets from the browser", 25, func() int { return media.count(0) })
	answer := browsertest.Eval[string](page, `window.switchboard.pc.remoteDescription.sdp`)
	if !strings.Contains(answer, fmt.Sprintf("127.0.0.1 %d typ host", port)) {
		t.Fatalf("server's candidates are not on port %d:\n%s", port, answer)
	}
	page.Click("hangup-button")
	phone.respond(phone.readRequest("BYE"), 200, "")
}

// A phone's early media (183 with SDP: ringback, announcements) reaches the
// calling browser before the answer, and the call goes on after it.
func TestBrowserHearsEarlyMedia(t *testing.T) {
	e := startBrowserEnv(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"})
	phone, media := e.deskPhone(t)
	page := e.signIn(t, "1003", "carol-1003")
	inv, dst, event := dialDeskPhone(t, page, phone)
	phone.respond(inv, 183, phoneSDP(media.port(), event))
	media.send(dst)
	page.WaitText("call-state", "Ringing")
	page.WaitFor(inboundPackets + `.then(n => n > 25)`)
	if st := page.Text("call-state"); st != "Ringing…" {
		t.Fatalf("call state %q while only early media flows", st)
	}
	phone.respond(inv, 200, phoneSDP(media.port(), event))
	phone.readRequest("ACK")
	page.WaitText("call-state", "In call")
	before := browsertest.Eval[int](page, inboundPackets)
	page.WaitFor(inboundPackets + fmt.Sprintf(`.then(n => n > %d)`, before+25))
	waitAtLeast(t, "PCMU packets from the browser", 25, func() int { return media.count(0) })
	page.Click("hangup-button")
	phone.respond(phone.readRequest("BYE"), 200, "")
}
