package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// DefaultTimeout bounds each helper call unless [Timeout] sets another one.
const DefaultTimeout = 30 * time.Second

// chromiumPaths are where Debian's chromium package puts the browser. The
// binary itself comes first: /usr/bin/chromium is a shell wrapper around it.
var chromiumPaths = []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium"}

// Option changes how [Start] runs the browser.
type Option func(*settings)

type settings struct {
	timeout      time.Duration
	audioFile    string
	width        int
	height       int
	insecureCert bool
	mapHosts     []string
}

// Timeout sets how long each helper call waits before it fails the test.
func Timeout(d time.Duration) Option {
	return func(s *settings) { s.timeout = d }
}

// FakeAudioFile makes the fake microphone play a WAV file instead of its
// default beep, so a test can recognise the audio it sends.
func FakeAudioFile(path string) Option {
	return func(s *settings) { s.audioFile = path }
}

// IgnoreCertErrors makes the browser accept any TLS certificate, such as a
// test's self-signed one for an HTTPS server.
func IgnoreCertErrors() Option {
	return func(s *settings) { s.insecureCert = true }
}

// MapHosts makes the browser resolve each of names to 127.0.0.1, so that
// a test can serve pages of other sites (other origins) on loopback.
func MapHosts(names ...string) Option {
	return func(s *settings) { s.mapHosts = append(s.mapHosts, names...) }
}

// WindowSize sets the size of the browser window (1280×800 by default).
func WindowSize(width, height int) Option {
	return func(s *settings) { s.width, s.height = width, height }
}

// Browser is one headless Chromium process owned by a test. It stops when the
// test ends.
type Browser struct {
	t       testing.TB
	ctx     context.Context
	timeout time.Duration

	mu    sync.Mutex
	pages int
}

// ExecPath returns the path of the Chromium binary, or an error that says how
// to install it.
func ExecPath() (string, error) {
	for _, p := range chromiumPaths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("browsertest: chromium not found (looked at %s and in PATH): install it with scripts/deps.sh or apt-get install chromium",
		strings.Join(chromiumPaths, ", "))
}

// Start launches headless Chromium with a fresh profile in t.TempDir() and
// stops it when the test ends. It fails the test at once if Chromium is not
// installed or does not start.
func Start(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	s := settings{timeout: DefaultTimeout, width: 1280, height: 800}
	for _, o := range opts {
		o(&s)
	}
	path, err := ExecPath()
	if err != nil {
		t.Fatal(err)
	}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.WindowSize(s.width, s.height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		// Without it a host whose only interface is lo gathers no ICE
		// candidates at all.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	}
	if s.insecureCert {
		flags = append(flags, chromedp.IgnoreCertErrors)
	}
	if len(s.mapHosts) > 0 {
		rules := make([]string, len(s.mapHosts))
		for i, h := range s.mapHosts {
			rules[i] = "MAP " + h + " 127.0.0.1"
		}
		flags = append(flags, chromedp.Flag("host-resolver-rules", strings.Join(rules, ",")))
	}
	if s.audioFile != "" {
		flags = append(flags, chromedp.Flag("use-file-for-fake-audio-capture", s.audioFile))
	}
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:], flags...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first action on the context starts the browser, which lives as
	// long as the context of that action: so no timeout here (the
	// allocator gives up by itself when Chromium does not come up).
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("browsertest: start chromium %s: %v", path, err)
	}
	return &Browser{t: t, ctx: bctx, timeout: s.timeout}
}

// Page is one browser tab with its own browser context (cookies, storage),
// closed when the test ends or by [Page.Close].
type Page struct {
	t       testing.TB
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
	name    string

	mu      sync.Mutex
	console []string
}

// NewPage opens a blank tab in a new browser context for the test t, which
// may be a subtest of the one that started the browser: the page's helpers
// fail t, and the tab closes when t ends. Call it on t's goroutine.
func (b *Browser) NewPage(t testing.TB) *Page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	p := &Page{t: t, ctx: ctx, cancel: cancel, timeout: b.timeout}
	b.mu.Lock()
	b.pages++
	p.name = fmt.Sprintf("page %d", b.pages)
	b.mu.Unlock()
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			p.dumpConsole()
		}
	})
	// Create the tab now and listen to its console, so that no message of
	// the first navigation is lost. As with the browser, the tab lives as
	// long as the context of its first action.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: open page: %v", err)
	}
	if err := chromedp.Listen(ctx, p.record); err != nil {
		t.Fatalf("browsertest: listen to page console: %v", err)
	}
	return p
}

// SetName names the page in failure messages and console dumps, which helps
// when a test drives several pages.
func (p *Page) SetName(name string) { p.name = name }

// Context returns the chromedp context of the page, for chromedp actions the
// helpers do not cover. Bound each use with a timeout.
func (p *Page) Context() context.Context { return p.ctx }

// Close closes the tab. It is safe to call more than once.
func (p *Page) Close() { p.cancel() }

// Console returns the console messages and uncaught exceptions of the page so
// far, one line each.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// record runs on chromedp's reader goroutine, so it only appends.
func (p *Page) record(ev any) {
	var line string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		parts := make([]string, 0, len(e.Args))
		for _, a := range e.Args {
			parts = append(parts, remoteString(a))
		}
		line = fmt.Sprintf("console.%s: %s", e.Type, strings.Join(parts, " "))
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + remoteString(d.Exception)
		}
		line = fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
	default:
		return
	}
	p.mu.Lock()
	if len(p.console) < 1000 {
		p.console = append(p.console, line)
	}
	p.mu.Unlock()
}

func remoteString(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		return string(o.Value)
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Type)
}

func (p *Page) dumpConsole() {
	lines := p.Console()
	if len(lines) == 0 {
		return
	}
	p.t.Logf("browsertest: console of %s:\n\t%s", p.name, strings.Join(lines, "\n\t"))
}

// do runs chromedp actions within the page's timeout.
func (p *Page) do(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// fail ends the test with what was being done and why it failed.
func (p *Page) fail(what string, err error) {
	p.t.Helper()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, chromedp.ErrPollingTimeout) {
		err = fmt.Errorf("gave up after %s: %w", p.timeout, err)
	}
	p.t.Fatalf("browsertest: %s: %s: %v", p.name, what, err)
}

// Run runs chromedp actions on the page and fails the test if one fails.
func (p *Page) Run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := p.do(actions...); err != nil {
		p.fail("run actions", err)
	}
}

// AddInitScript runs js in every document the page loads from now on,
// before the document's own scripts: for example to take an API away and
// see how the page copes.
func (p *Page) AddInitScript(js string) {
	p.t.Helper()
	err := p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
		return err
	}))
	if err != nil {
		p.fail("add init script", err)
	}
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(url string) {
	p.t.Helper()
	if err := p.do(chromedp.Navigate(url)); err != nil {
		p.fail("navigate to "+url, err)
	}
}

// TestID returns the CSS selector of the element whose data-testid is id.
func TestID(id string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf("[data-testid=%q]", id))
}

// Click waits until the element with data-testid id is visible and clicks it.
func (p *Page) Click(id string) {
	p.t.Helper()
	if err := p.do(chromedp.Click(TestID(id))); err != nil {
		p.fail(fmt.Sprintf("click %q", id), err)
	}
}

// Fill replaces the value of the input with data-testid id by typing text into
// it, so the page sees the same key and input events as from a person.
func (p *Page) Fill(id, text string) {
	p.t.Helper()
	sel := TestID(id)
	// chromedp.Clear resets the value attribute, not what was typed, so
	// clear the live value in the page.
	clear := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).value = ""`, string(sel)))
	if err := p.do(chromedp.WaitVisible(sel), clear, chromedp.SendKeys(sel, text)); err != nil {
		p.fail(fmt.Sprintf("fill %q", id), err)
	}
}

// Press sends keys (see chromedp/kb for special keys such as kb.Enter) to the
// element with data-testid id.
func (p *Page) Press(id, keys string) {
	p.t.Helper()
	if err := p.do(chromedp.SendKeys(TestID(id), keys)); err != nil {
		p.fail(fmt.Sprintf("send keys to %q", id), err)
	}
}

// Text returns the text content of the element with data-testid id.
func (p *Page) Text(id string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(TestID(id)))
	if err != nil {
		p.fail(fmt.Sprintf("read text of %q", id), err)
	}
	return s
}

// WaitVisible waits until the element with data-testid id is visible.
func (p *Page) WaitVisible(id string) {
	p.t.Helper()
	if err := p.do(chromedp.WaitVisible(TestID(id))); err != nil {
		p.fail(fmt.Sprintf("wait for %q to be visible", id), err)
	}
}

// WaitHidden waits until the element with data-testid id is absent or not
// visible.
func (p *Page) WaitHidden(id string) {
	p.t.Helper()
	p.WaitFor(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !e || e.offsetParent === null || getComputedStyle(e).visibility === "hidden"; })()`,
		string(TestID(id))))
}

// WaitText waits until the text content of the element with data-testid id
// contains substr. On timeout the failure shows the text it had.
func (p *Page) WaitText(id, substr string) {
	p.t.Helper()
	const fn = `(sel, want) => { const e = document.querySelector(sel); return !!e && e.textContent.includes(want); }`
	if err := p.poll(chromedp.PollFunction[chromedp.Void](fn,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(p.timeout),
		chromedp.WithPollingArgs(string(TestID(id)), substr))); err != nil {
		have := "(no such element)"
		if s, e := p.textNow(id); e == nil {
			have = fmt.Sprintf("%q", s)
		}
		p.fail(fmt.Sprintf("wait for %q to contain %q (it has %s)", id, substr, have), err)
	}
}

// WaitFor waits until the JavaScript expression js is truthy. It re-evaluates
// js every 50 ms and awaits it when it is a promise.
func (p *Page) WaitFor(js string) {
	p.t.Helper()
	if err := p.poll(chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(p.timeout))); err != nil {
		p.fail("wait for "+js, err)
	}
}

func (p *Page) poll(a chromedp.Action[chromedp.Void]) error {
	// The poll has its own timeout inside the page; leave the context
	// some slack so the page's answer wins the race.
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout+5*time.Second)
	defer cancel()
	return chromedp.Do(ctx, a)
}

func (p *Page) textNow(id string) (string, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).textContent`, string(TestID(id)))))
}

// Eval evaluates the JavaScript expression js in the page, awaits it when it is
// a promise, and decodes the result into T (JSON rules; see chromedp.Evaluate).
// It fails the test on an exception or a result that does not fit T.
func Eval[T any](p *Page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fail("evaluate "+js, err)
	}
	return v
}

// Screenshot writes a PNG of the visible part of the page to path.
func (p *Page) Screenshot(path string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.fail("screenshot", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.fail("screenshot", err)
	}
}
