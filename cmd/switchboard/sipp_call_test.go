package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// freeUDPBlock returns a port p such that p..p+3 are free UDP ports on
// 127.0.0.1 (SIPp uses a media port and its neighbours).
func freeUDPBlock(t *testing.T) int {
	t.Helper()
	for range 50 {
		base := 30000 + 4*int(time.Now().UnixNano()%7000)
		ok := true
		for p := base; p < base+4 && ok; p++ {
			c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free UDP block")
	return 0
}

// writeTone writes seconds of a 440 Hz tone as G.711 µ-law, the raw file
// SIPp streams as PCMU.
func writeTone(t *testing.T, path string, seconds float64) {
	t.Helper()
	n := int(8000 * seconds)
	b := make([]byte, n)
	for i := range b {
		b[i] = linearToULaw(int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000)))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// linearToULaw is the G.711 µ-law encoder.
func linearToULaw(s int16) byte {
	const bias, clip = 0x84, 32635
	v := int(s)
	sign := 0
	if v < 0 {
		sign, v = 0x80, -v
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; exp > 0 && v&mask == 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// TestSIPpCallsWithRTP runs a SIPp UAC (user 1001, digest auth, PCMU RTP)
// calling a SIPp UAS registered as 1002 that echoes the RTP, through the
// real server, and checks each call's record and relayed packet counts.
func TestSIPpCallsWithRTP(t *testing.T) {
	sipp := sippPath(t)
	const calls = 10
	s := startServer(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"}, "")
	dir := s.dir
	writeTone(t, filepath.Join(dir, "audio.ulaw"), 1.0)
	if err := os.WriteFile(filepath.Join(dir, "uas.csv"), []byte("SEQUENTIAL\n1002;[authentication username=1002 password=bob-1002]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uac.csv"), []byte("SEQUENTIAL\n1001;[authentication username=1001 password=alice-1001]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("127.0.0.1:%d", s.sipPort)
	uasPort := freePort(t)
	register, _ := filepath.Abs("../../sipp/register_auth.xml")
	uac, _ := filepath.Abs("../../sipp/uac_call.xml")

	// The UAS registers from the port it will answer on, as a phone does.
	reg := exec.Command(sipp, server, "-sf", register, "-inf", "uas.csv", "-m", "1", "-i", "127.0.0.1", "-p", fmt.Sprint(uasPort), "-mp", fmt.Sprint(freeUDPBlock(t)), "-nostdin", "-timeout", "10s", "-timeout_error")
	reg.Dir = dir
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("register UAS: %v\n%s", err, tail(string(out), 2000))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	uasMedia := freeUDPBlock(t)
	uas := exec.CommandContext(ctx, sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", fmt.Sprint(uasPort),
		"-mi", "127.0.0.1", "-mp", fmt.Sprint(uasMedia), "-rtp_echo", "-m", fmt.Sprint(calls), "-nostdin")
	uas.Dir = dir
	uasOut := &lockedBuffer{}
	uas.Stdout, uas.Stderr = uasOut, uasOut
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	uasDone := make(chan error, 1)
	go func() { uasDone <- uas.Wait() }()
	time.Sleep(300 * time.Millisecond)

	uacMedia := freeUDPBlock(t)
	cmd := exec.CommandContext(ctx, sipp, server, "-sf", uac, "-inf", "uac.csv", "-s", "1002", "-m", fmt.Sprint(calls), "-r", "5",
		"-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mi", "127.0.0.1", "-mp", fmt.Sprint(uacMedia),
		"-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(dir, "uac-errors.log"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(filepath.Join(dir, "uac-errors.log"))
		t.Fatalf("sipp uac: %v\n%s\n%s", err, tail(string(out), 2000), tail(string(errs), 2000))
	}
	select {
	case err := <-uasDone:
		if err != nil {
			t.Fatalf("sipp uas: %v\n%s", err, tail(uasOut.String(), 2000))
		}
	case <-time.After(20 * time.Second):
		cancel()
		<-uasDone
		t.Fatal("sipp uas did not finish")
	}

	s.stop(t)
	st, err := store.Open(context.Background(), filepath.Join(dir, "sb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Calls(context.Background(), store.CallFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != calls {
		t.Fatalf("%d call records, want %d", len(recs), calls)
	}
	for _, r := range recs {
		if r.Result != "answered" || r.Caller != "1001" || r.Callee != "1002" || r.HangupBy != "caller" || r.AnsweredAt.IsZero() || r.EndedAt.IsZero() {
			t.Fatalf("record %+v", r)
		}
		if len(r.Legs) != 2 {
			t.Fatalf("legs %+v", r.Legs)
		}
		// 1 s of 20 ms packets from the UAC (50), echoed back by the UAS;
		// a loaded machine may cut the stream short, never to nothing.
		for _, l := range r.Legs {
			if l.PacketsIn < 20 || l.PacketsOut < 20 {
				t.Fatalf("leg %s relayed too little: %+v", l.Name, l)
			}
		}
	}
}
