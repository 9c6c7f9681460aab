package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/browsertest"
)

// jssipVersion is the JsSIP release the interop test loads. It is
// installed from npm into .cache/ (never committed), by scripts/deps.sh or
// by the test itself.
const jssipVersion = "3.13.8"

// npmModules returns the node_modules folder holding the npm package
// pkg@version, installing it with npm into .cache/<dir> (never committed)
// when it is not there yet.
func npmModules(t *testing.T, dir, pkg, version string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", ".cache", dir))
	if err != nil {
		t.Fatal(err)
	}
	modules := filepath.Join(dir, "node_modules")
	if b, err := os.ReadFile(filepath.Join(modules, pkg, "package.json")); err == nil &&
		strings.Contains(string(b), `"version": "`+version+`"`) {
		return modules
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("this test needs npm to install %s@%s: run scripts/deps.sh or apt-get install npm", pkg, version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", dir, pkg+"@"+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s@%s: %v\n%s", pkg, version, err, out)
	}
	return modules
}

// jssipModules returns the node_modules folder holding JsSIP.
func jssipModules(t *testing.T) string {
	t.Helper()
	return npmModules(t, "jssip", "jssip", jssipVersion)
}

// jssipPage loads JsSIP's CommonJS modules in the browser with a small
// require (JsSIP ships no browser bundle, and we keep no build step), then
// runs a JsSIP user agent against the server's /ws.
const jssipPage = `<!doctype html>
<html><body><p data-testid="state">loading</p>
<script>
function makeRequire(base) {
  const modules = {}, sources = {};
  function load(url) {
    if (url in sources) return sources[url];
    const x = new XMLHttpRequest();
    x.open("GET", url, false);
    x.send();
    return sources[url] = x.status === 200 ? x.responseText : null;
  }
  function resolve(from, name) {
    if (name.startsWith("./") || name.startsWith("../")) {
      const u = new URL(name, from).href;
      // A bare name is a file or a folder (whose listing is no module).
      for (const c of [u + ".js", u + "/index.js", u]) if (/\.(js|json)$/.test(c) && load(c) !== null) return c;
      throw new Error("cannot find " + name + " from " + from);
    }
    const root = new URL(name + "/", base).href;
    const pkg = JSON.parse(load(root + "package.json"));
    const main = (typeof pkg.browser === "string" ? pkg.browser : pkg.main) || "index.js";
    return resolve(root, "./" + main.replace(/^\.\//, ""));
  }
  function req(from, name) {
    const url = resolve(from, name);
    if (modules[url]) return modules[url].exports;
    const module = { exports: {} };
    modules[url] = module;
    const src = load(url);
    if (url.endsWith(".json")) { module.exports = JSON.parse(src); return module.exports; }
    new Function("module", "exports", "require", src + "\n//# sourceURL=" + url)(module, module.exports, n => req(url, n));
    return module.exports;
  }
  return name => req(base, name);
}
const state = s => { document.querySelector("[data-testid=state]").textContent = s; };
window.process = window.process || { env: {} };
const JsSIP = makeRequire(location.origin + "/node_modules/")("jssip");
if (params0().get("debug")) JsSIP.debug.enable("JsSIP:RTCSession*");
function params0() { return new URLSearchParams(location.search); }
const params = new URLSearchParams(location.search);
const ua = new JsSIP.UA({
  sockets: [new JsSIP.WebSocketInterface(params.get("ws"))],
  uri: "sip:" + params.get("user") + "@switchboard.local",
  password: params.get("password"),
  session_timers: false,
});
ua.on("registered", () => state("registered"));
ua.on("registrationFailed", e => state("registration failed: " + e.cause));
window.jssipCall = target => {
  const s = ua.call("sip:" + target + "@switchboard.local", { mediaConstraints: { audio: true, video: false } });
  window.session = s;
  s.on("progress", () => state("ringing"));
  s.on("confirmed", () => state("in call"));

  s.on("ended", e => state("ended: " + e.originator));
  s.on("failed", e => state("failed: " + e.cause));
};
ua.start();
</script></body></html>`

// A page running JsSIP (a third-party browser SIP library) registers over
// /ws and calls a SIP phone through the server: audio flows both ways.
func TestJsSIPCallsPhone(t *testing.T) {
	modules := jssipModules(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jssip.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, jssipPage)
	})
	mux.Handle("GET /node_modules/", http.StripPrefix("/node_modules/", http.FileServer(http.Dir(modules))))
	site := httptest.NewServer(mux)
	defer site.Close()
	// The page is on another site: web.allowed_origins lets it use /ws.
	e := startBrowserEnvAllowing(t, map[string]string{"1001": "alice-1001", "1003": "carol-1003"}, site.URL)

	phone := newPhone(t, fmt.Sprintf("127.0.0.1:%d", e.sipPort), "1001", "alice-1001", "test-phone")
	if code := phone.register(300); code != 200 {
		t.Fatalf("phone REGISTER: %d", code)
	}
	media := newRTPPhone(t)
	page := e.browser.NewPage(t)
	page.SetName("JsSIP page")
	ws := "ws" + strings.TrimPrefix(e.base, "http") + "/ws"
	page.Navigate(site.URL + "/jssip.html?debug=1&user=1003&password=carol-1003&ws=" + ws)
	page.WaitText("state", "registered")

	browsertest.Eval[bool](page, `jssipCall("1001"), true`)
	inv := phone.readRequest("INVITE")
	dst, event := plainTarget(t, inv.body)
	phone.respond(inv, 180, "")
	phone.respond(inv, 200, phoneSDP(media.port(), event))
	phone.readRequest("ACK")
	media.send(dst)
	page.WaitText("state", "in call")
	page.WaitFor(`(async () => {
  let n = 0;
  for (const s of (await window.session.connection.getStats()).values()) if (s.type === "inbound-rtp" && s.kind === "audio") n += s.packetsReceived;
  return n > 25;
})()`)
	waitAtLeast(t, "PCMU packets from JsSIP", 25, func() int { return media.count(0) })

	// Hold and resume are re-INVITEs that the bridge answers itself; the
	// audio goes on afterwards.
	// JsSIP calls done once the server's 200 for the re-INVITE is in.
	browsertest.Eval[bool](page, `window.session.hold({}, () => state("on hold")), true`)
	page.WaitText("state", "on hold")
	browsertest.Eval[bool](page, `window.session.unhold({}, () => state("resumed")), true`)
	page.WaitText("state", "resumed")
	sent := media.count(0)
	page.WaitFor(`(async () => {
  let n = 0;
  for (const s of (await window.session.connection.getStats()).values()) if (s.type === "inbound-rtp" && s.kind === "audio") n += s.packetsReceived;
  window.rxAfterResume = window.rxAfterResume || n;
  return n > window.rxAfterResume + 25;
})()`)
	waitAtLeast(t, "PCMU packets from JsSIP after resuming", sent+25, func() int { return media.count(0) })

	browsertest.Eval[bool](page, `window.session.terminate(), true`)
	bye := phone.readRequest("BYE")
	phone.respond(bye, 200, "")
	page.WaitText("state", "ended")
}
