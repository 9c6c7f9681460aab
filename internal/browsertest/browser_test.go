package browsertest_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchboard/switchboard/internal/browsertest"
)

const testPage = `<!doctype html>
<html><body>
<input data-testid="name" value="old">
<button data-testid="greet" onclick="greet()">Greet</button>
<p data-testid="out"></p>
<p data-testid="later" style="display:none">shown later</p>
<script>
function greet() {
  const n = document.querySelector('[data-testid=name]').value;
  console.log("greeting", n);
  setTimeout(() => { document.querySelector('[data-testid=out]').textContent = "Hello, " + n; }, 200);
  setTimeout(() => { document.querySelector('[data-testid=later]').style.display = ""; }, 300);
}
</script>
</body></html>`

func servePage(t *testing.T, html string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPageHelpers(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("drive", func(t *testing.T) {
		url := servePage(t, testPage)
		b := browsertest.Start(t)
		p := b.NewPage(t)
		p.Navigate(url)
		p.Fill("name", "1003")
		p.Click("greet")
		p.WaitText("out", "Hello, 1003")
		p.WaitVisible("later")
		if got := p.Text("out"); got != "Hello, 1003" {
			t.Fatalf("text = %q, want %q", got, "Hello, 1003")
		}
		if n := browsertest.Eval[int](p, `Promise.resolve(40 + 2)`); n != 42 {
			t.Fatalf("eval = %d, want 42", n)
		}
		p.WaitFor(`document.title === "" && document.querySelectorAll("p").length === 2`)
		found := false
		for _, l := range p.Console() {
			if strings.Contains(l, "greeting") && strings.Contains(l, "1003") {
				found = true
			}
		}
		if !found {
			t.Fatalf("console %q has no greeting line", p.Console())
		}
		shot := filepath.Join(t.TempDir(), "page.png")
		p.Screenshot(shot)
		data, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) || len(data) < 1000 {
			t.Fatalf("screenshot is not a PNG (%d bytes)", len(data))
		}
	})
}

// Two pages are separate users: storage set in one is not seen by the other.
func TestPagesAreIsolated(t *testing.T) {
	url := servePage(t, `<!doctype html><p data-testid="x">x</p>`)
	b := browsertest.Start(t)
	p1, p2 := b.NewPage(t), b.NewPage(t)
	p1.Navigate(url)
	p2.Navigate(url)
	browsertest.Eval[bool](p1, `localStorage.setItem("who", "p1"), true`)
	if got := browsertest.Eval[*string](p2, `localStorage.getItem("who")`); got != nil {
		t.Fatalf("second page sees first page's storage: %q", *got)
	}
	p1.Close()
	p1.Close() // idempotent
	if got := browsertest.Eval[string](p2, `document.querySelector("[data-testid=x]").textContent`); got != "x" {
		t.Fatalf("second page after closing first: %q", got)
	}
}

// The fake microphone and loopback ICE candidates are what the softphone
// tests rely on: two peer connections in one page must connect on 127.0.0.1
// and carry audio.
func TestWebRTCOnLoopback(t *testing.T) {
	url := servePage(t, `<!doctype html><p>rtc</p>`)
	b := browsertest.Start(t)
	p := b.NewPage(t)
	p.Navigate(url)
	browsertest.Eval[bool](p, `(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = e => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = e => e.candidate && a.addIceCandidate(e.candidate);
  stream.getTracks().forEach(t => a.addTrack(t, stream));
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  window.rx = b;
  return true;
})()`)
	p.WaitFor(`(async () => {
  const stats = await window.rx.getStats();
  for (const s of stats.values()) if (s.type === "inbound-rtp" && s.kind === "audio" && s.packetsReceived > 10) return true;
  return false;
})()`)
}

func TestExecPath(t *testing.T) {
	path, err := browsertest.ExecPath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ExecPath returned %q: %v", path, err)
	}
}

func TestAddInitScript(t *testing.T) {
	url := servePage(t, `<!doctype html><p data-testid="x"></p><script>document.querySelector("p").textContent = typeof window.RTCPeerConnection;</script>`)
	b := browsertest.Start(t)
	p := b.NewPage(t)
	p.AddInitScript(`delete window.RTCPeerConnection;`)
	p.Navigate(url)
	p.WaitText("x", "undefined")
}
