package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/web"
)

// TestTrunksStatus runs the server with a trunk whose provider never
// answers, reads its state through `switchboard ctl trunks` (the API over
// the control socket) and receives its trunk.down event by webhook.
func TestTrunksStatus(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := c.LocalAddr().String()
	c.Close()
	hooks := newReceiver(t)
	hooks.start(t)
	extra := fmt.Sprintf("webhooks:\n  - {url: %q, secret: %q, events: [trunk.up, trunk.down]}\n", hooks.url(), hookSecret)
	extra += fmt.Sprintf("trunks:\n  - {name: carrier, address: %q, register: false, outbound: '^\\+[0-9]{7,15}$', ping_interval: 1s, timeout: 200ms}\n", dead)
	s := startServer(t, map[string]string{"1001": "alice-1001"}, extra)
	sock := filepath.Join(s.dir, "sb.sock")

	var ts []web.Trunk
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, errs := ctlRun(t, "", "--socket", sock, "--json", "trunks")
		if code != 0 {
			t.Fatalf("ctl trunks --json: %d %s", code, errs)
		}
		if err := json.Unmarshal([]byte(out), &ts); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		if len(ts) == 1 && ts[0].State == "down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trunk never went down: %+v", ts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tr := ts[0]
	if tr.Name != "carrier" || tr.Address != dead || tr.Transport != "udp" || tr.Register || tr.Registered ||
		!strings.Contains(tr.LastError, "no answer within 200ms") || tr.LastErrorAt.IsZero() || !tr.LastSuccessAt.IsZero() {
		t.Errorf("trunk %+v", tr)
	}
	evs := hooks.waitEvents(t, 10*time.Second, "trunk.down")
	var data web.Trunk // the event's data has the API's field names
	if err := json.Unmarshal(evs[0].Data, &data); err != nil || data.Name != "carrier" || data.State != "down" || data.LastError == "" {
		t.Errorf("trunk.down data %s (%v)", evs[0].Data, err)
	}
	cfg, err := config.Load(filepath.Join(s.dir, "switchboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get("http://" + cfg.Web.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`switchboard_trunk_up{trunk="carrier"} 0`, `switchboard_trunk_state{state="down",trunk="carrier"} 1`, `switchboard_trunk_state{state="up",trunk="carrier"} 0`} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	code, out, _ := ctlRun(t, "", "--socket", sock, "trunks")
	if code != 0 || !regexpLine(out, `^NAME\s+ADDRESS\s+TRANSPORT\s+STATE\s+LAST SUCCESS\s+LAST ERROR$`) ||
		!regexpLine(out, `^carrier\s+`+strings.ReplaceAll(dead, ".", `\.`)+`\s+udp\s+down\s+-\s+options: `) {
		t.Errorf("ctl trunks:\n%s", out)
	}

	// A reload applies a changed trunk list at once.
	path := filepath.Join(s.dir, "switchboard.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "name: carrier", "name: backup", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := ctlReload(t, sock); code != 0 {
		t.Fatalf("ctl reload: %d %s %s", code, out, errs)
	}
	code, out, _ = ctlRun(t, "", "--socket", sock, "--json", "trunks")
	if err := json.Unmarshal([]byte(out), &ts); code != 0 || err != nil || len(ts) != 1 || ts[0].Name != "backup" {
		t.Errorf("trunks after the reload: %d %q", code, out)
	}
}
