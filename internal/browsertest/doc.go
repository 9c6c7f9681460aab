// Package browsertest runs headless Chromium for tests and drives it with
// chromedp.
//
// A test starts one [Browser] with [Start], opens one or more [Page] values
// with [Browser.NewPage] (each in its own browser context, so two pages are two
// independent users; a page belongs to the test or subtest that opened it),
// and drives them with small helpers that fail the test
// with a clear message instead of returning errors:
//
//	b := browsertest.Start(t)
//	p := b.NewPage(t)
//	p.Navigate(srv.URL + "/")
//	p.Fill("login-user", "1003")
//	p.Click("login-submit")
//	p.WaitText("reg-state", "Registered")
//	n := browsertest.Eval[int](p, `document.querySelectorAll("li").length`)
//	p.Screenshot(filepath.Join(t.TempDir(), "page.png"))
//
// Elements are found by their data-testid attribute. Every helper waits up to
// the browser's timeout (30 s by default, see [Timeout]) and must be called on
// the goroutine of the page's test, since it calls t.Fatal. [Page.Context] gives the
// chromedp context for anything the helpers do not cover.
//
// Chromium runs with a fake microphone and camera that need no permission
// prompt, and may use loopback addresses for WebRTC, so pages can place calls
// against a server on 127.0.0.1. When a test fails, the console output of its
// pages is written to the test log.
package browsertest
