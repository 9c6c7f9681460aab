package main

// BenchmarkBridgedCalls is the WebRTC load client of `make bench`: N pion
// peers (browsers without a browser) register over SIP over WebSocket and
// call N plain RTP phones through the real server, so every call crosses
// the WebRTC bridge. It reports call setup time (INVITE sent to the first
// audio packet at the browser) and packet loss both ways. Run it with
//
//	WEBRTC_CALLS=200 WEBRTC_HOLD=20s go test -run '^$' -bench BridgedCalls -benchtime 1x ./cmd/switchboard/

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard/switchboard/internal/config"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// seqCounter counts an RTP stream's packets and its expected count from the
// sequence numbers (RFC 3550 §A.3), for loss.
type seqCounter struct {
	mu         sync.Mutex
	started    bool
	first, max uint32 // extended sequence numbers
	received   uint64
}

func (c *seqCounter) add(seq uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received++
	if !c.started {
		c.started, c.first, c.max = true, uint32(seq), uint32(seq)
		return
	}
	ext := c.max&^0xffff | uint32(seq)
	switch {
	case int16(seq-uint16(c.max)) > 0 && ext < c.max:
		ext += 1 << 16
	case int16(seq-uint16(c.max)) < 0 && ext > c.max:
		ext -= 1 << 16
	}
	c.max = max(c.max, ext)
}

// counts returns packets received and expected.
func (c *seqCounter) counts() (uint64, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		return 0, 0
	}
	return c.received, uint64(c.max-c.first) + 1
}

// pcmuPacer sends 20 ms PCMU packets through send until stop.
func pcmuPacer(stop <-chan struct{}, ssrc uint32, send func([]byte) error) {
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = 0xff
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: ssrc}, Payload: payload}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		b, _ := pkt.Marshal()
		if send(b) != nil {
			return
		}
	}
}

// loadPhone is the RTP side of one call.
type loadPhone struct {
	conn *net.UDPConn
	rx   seqCounter
}

func BenchmarkBridgedCalls(b *testing.B) { bridgedCallsLoad(b) }

func bridgedCallsLoad(b testing.TB) {
	n := envInt("WEBRTC_CALLS", 20)
	hold := envDuration("WEBRTC_HOLD", 5*time.Second)
	const pass = "load-pass"
	users := map[string]string{}
	for i := range n {
		users[strconv.Itoa(20000+i)] = pass // phones
		users[strconv.Itoa(50000+i)] = pass // browsers
	}
	portMin := 30000 + 4*int(time.Now().UnixNano()%2000)
	extra := fmt.Sprintf("media:\n  address: \"127.0.0.1\"\n  port_min: %d\n  port_max: %d\n", portMin, portMin+4*n+200)
	s := startServer(b, users, extra)
	cfg, err := config.Load(filepath.Join(s.dir, "switchboard.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	sipAddr := fmt.Sprintf("127.0.0.1:%d", s.sipPort)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// The phones: one SIP user agent on UDP answers for all of them.
	phoneUA, err := sipgo.NewUA(sipgo.WithUserAgent("load-phone"))
	if err != nil {
		b.Fatal(err)
	}
	defer phoneUA.Close()
	phoneSrv, _ := sipgo.NewServer(phoneUA)
	phoneCli, _ := sipgo.NewClient(phoneUA, sipgo.WithClientHostname("127.0.0.1"))
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	phonePort := udp.LocalAddr().(*net.UDPAddr).Port
	var phonesMu sync.Mutex
	phones := map[string]*loadPhone{} // by phone user
	phoneSrv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		dst, _ := plainTargetErr(string(req.Body()))
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil || dst == nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
			return
		}
		p := &loadPhone{conn: conn}
		phonesMu.Lock()
		phones[req.To().Address.User] = p
		phonesMu.Unlock()
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				k, _, err := conn.ReadFromUDP(buf)
				if err != nil {
					return
				}
				var h rtp.Header
				if _, err := h.Unmarshal(buf[:k]); err == nil && h.PayloadType == 0 {
					p.rx.add(h.SequenceNumber)
				}
			}
		}()
		go func() {
			defer wg.Done()
			pcmuPacer(stop, 0x2000, func(pkt []byte) error { _, err := conn.WriteToUDP(pkt, dst); return err })
		}()
		res := sip.NewSDPResponseFromRequest(req, []byte(phoneSDP(conn.LocalAddr().(*net.UDPAddr).Port, 0)))
		res.To().Params.Add("tag", randHex(4))
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "phone", Host: "127.0.0.1", Port: phonePort}})
		_ = tx.Respond(res)
	})
	phoneSrv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	phoneSrv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	go func() { _ = phoneSrv.ServeUDP(udp) }()
	defer udp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range n {
		user := strconv.Itoa(20000 + i)
		if err := register(ctx, phoneCli, "UDP", sipAddr, user, pass, fmt.Sprintf("<sip:%s@127.0.0.1:%d>", user, phonePort)); err != nil {
			b.Fatalf("phone %s: %v", user, err)
		}
	}

	// The browsers: pion peers over SIP over WebSocket, ramped up at 20
	// calls a second.
	wsHost := cfg.Web.Listen
	calls := make([]*loadCall, n)
	var failed atomic.Int64
	var callsWG sync.WaitGroup
	if bb, ok := b.(*testing.B); ok {
		bb.ResetTimer()
	}
	start := time.Now()
	for i := range n {
		callsWG.Add(1)
		go func() {
			defer callsWG.Done()
			c, err := placeBrowserCall(ctx, wsHost, strconv.Itoa(50000+i), pass, strconv.Itoa(20000+i), stop, &wg)
			if err != nil {
				failed.Add(1)
				b.Logf("call %d: %v", i, err)
				return
			}
			calls[i] = c
		}()
		time.Sleep(50 * time.Millisecond)
	}
	callsWG.Wait()
	ramp := time.Since(start)
	if failed.Load() > 0 {
		b.Logf("server log:\n%s", tail(s.stderr.String(), 30))
	}
	time.Sleep(hold)
	if bb, ok := b.(*testing.B); ok {
		bb.StopTimer()
	}

	// Measure before hanging up: every stream is still running.
	var setups []time.Duration
	var toPhoneRx, toPhoneExp, toBrowserRx, toBrowserExp uint64
	for _, c := range calls {
		if c == nil {
			continue
		}
		if d := c.setup(); d > 0 {
			setups = append(setups, d)
		}
		r, e := c.rx.counts()
		toBrowserRx, toBrowserExp = toBrowserRx+r, toBrowserExp+e
		phonesMu.Lock()
		p := phones[c.phoneUser]
		phonesMu.Unlock()
		if p != nil {
			r, e := p.rx.counts()
			toPhoneRx, toPhoneExp = toPhoneRx+r, toPhoneExp+e
		}
	}
	close(stop)
	for _, c := range calls {
		if c != nil {
			c.hangup()
		}
	}
	phonesMu.Lock()
	for _, p := range phones {
		p.conn.Close()
	}
	phonesMu.Unlock()

	slices.Sort(setups)
	pct := func(q float64) time.Duration {
		if len(setups) == 0 {
			return 0
		}
		return setups[min(len(setups)-1, int(q*float64(len(setups))))]
	}
	loss := func(rx, exp uint64) float64 {
		if exp == 0 {
			return 100
		}
		return 100 * (1 - float64(rx)/float64(exp))
	}
	if bb, ok := b.(*testing.B); ok {
		bb.ReportMetric(float64(n-int(failed.Load())), "calls")
		bb.ReportMetric(float64(pct(0.5).Milliseconds()), "setup-p50-ms")
		bb.ReportMetric(float64(pct(0.95).Milliseconds()), "setup-p95-ms")
		bb.ReportMetric(loss(toPhoneRx, toPhoneExp), "loss-to-phone-%")
		bb.ReportMetric(loss(toBrowserRx, toBrowserExp), "loss-to-browser-%")
	}
	b.Logf("%d calls (%d failed) ramped in %s, held %s; setup p50 %s p95 %s; to phones %d/%d packets, to browsers %d/%d packets",
		n, failed.Load(), ramp.Round(time.Millisecond), hold, pct(0.5), pct(0.95), toPhoneRx, toPhoneExp, toBrowserRx, toBrowserExp)
}

func tagParams() sip.HeaderParams {
	p := sip.NewParams()
	p.Add("tag", randHex(4))
	return p
}

// plainTargetErr is plainTarget without a test: where a plain SDP wants RTP.
func plainTargetErr(body string) (*net.UDPAddr, error) {
	c, m := sdpConn.FindStringSubmatch(body), sdpAudio.FindStringSubmatch(body)
	if c == nil || m == nil {
		return nil, fmt.Errorf("no connection or audio line")
	}
	port, _ := strconv.Atoi(m[1])
	return &net.UDPAddr{IP: net.ParseIP(c[1]), Port: port}, nil
}

// register registers user's contact, answering the digest challenge.
func register(ctx context.Context, cli *sipgo.Client, transport, dst, user, pass, contact string) error {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "switchboard.local"})
	aor := sip.Uri{Scheme: "sip", User: user, Host: "switchboard.local"}
	req.AppendHeader(&sip.FromHeader{Address: aor, Params: tagParams()})
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Contact", contact))
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	req.SetDestination(dst)
	req.SetTransport(transport)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := cli.Do(rctx, req, sipgo.ClientRequestBuild)
	if err == nil && res.StatusCode == 401 {
		res, err = cli.DoDigestAuth(rctx, req, res, sipgo.DigestAuth{Username: user, Password: pass})
	}
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// loadCall is one browser's call.
type loadCall struct {
	ua        *sipgo.UserAgent
	pc        *webrtc.PeerConnection
	dialog    *sipgo.DialogClientSession
	phoneUser string // the callee, which names its phone
	invited   time.Time
	firstRx   atomic.Int64 // unix nanoseconds of the first audio packet
	rx        seqCounter
}

func (c *loadCall) setup() time.Duration {
	if t := c.firstRx.Load(); t != 0 {
		return time.Unix(0, t).Sub(c.invited)
	}
	return 0
}

func (c *loadCall) hangup() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.dialog.Bye(ctx)
	_ = c.pc.Close()
	c.ua.Close()
}

// placeBrowserCall registers a pion browser as user over WebSocket and calls
// callee; its audio runs until stop.
func placeBrowserCall(ctx context.Context, wsHost, user, pass, callee string, stop <-chan struct{}, wg *sync.WaitGroup) (*loadCall, error) {
	ws := &sip.TransportWS{DialURI: func(host string) string { return "ws://" + host + "/ws" }}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("load-browser"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerTransports(sip.TransportsConfig{WS: ws})))
	if err != nil {
		return nil, err
	}
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	uriParams := sip.NewParams()
	uriParams.Add("transport", "ws")
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: randHex(4) + ".invalid", UriParams: uriParams}}
	if err := register(ctx, cli, "WS", wsHost, user, pass, contact.Address.String()); err != nil {
		ua.Close()
		return nil, err
	}

	me := &webrtc.MediaEngine{}
	_ = me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0}, webrtc.RTPCodecTypeAudio)
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetDTLSRetransmissionInterval(100 * time.Millisecond)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		ua.Close()
		return nil, err
	}
	c := &loadCall{ua: ua, pc: pc}
	fail := func(err error) (*loadCall, error) {
		_ = pc.Close()
		ua.Close()
		return nil, err
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "audio", "load")
	if err != nil {
		return fail(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		return fail(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			c.firstRx.CompareAndSwap(0, time.Now().UnixNano())
			c.rx.add(p.SequenceNumber)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	<-gathered

	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: callee, Host: "switchboard.local"})
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "switchboard.local"}, Params: tagParams()})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: callee, Host: "switchboard.local"}, Params: sip.NewParams()})
	req.AppendHeader(&contact)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(pc.LocalDescription().SDP))
	req.SetDestination(wsHost)
	req.SetTransport("WS")
	dua := &sipgo.DialogUA{Client: cli, ContactHDR: contact}
	c.invited = time.Now()
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := dua.WriteInvite(ictx, req)
	if err != nil {
		return fail(err)
	}
	if err := d.WaitAnswer(ictx, sipgo.AnswerOptions{Username: user, Password: pass}); err != nil {
		return fail(fmt.Errorf("INVITE: %w", err))
	}
	c.dialog = d
	if err := d.Ack(ictx); err != nil {
		return fail(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(d.InviteResponse.Body())}); err != nil {
		return fail(err)
	}
	c.phoneUser = callee
	wg.Add(1)
	go func() {
		defer wg.Done()
		pcmuPacer(stop, 0x5000, func(pkt []byte) error {
			var p rtp.Packet
			if err := p.Unmarshal(pkt); err != nil {
				return err
			}
			err := track.WriteRTP(&p)
			if err != nil && strings.Contains(err.Error(), "closed") {
				return err
			}
			return nil
		})
	}()
	return c, nil
}
