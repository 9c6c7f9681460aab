package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard/switchboard/internal/browsertest"
	"github.com/switchboard/switchboard/web"
)

// updateScreenshotEnv set to 1 makes TestAdminPage write its screenshot to
// docs/admin.png (shown in README.md).
const updateScreenshotEnv = "SWITCHBOARD_UPDATE_SCREENSHOTS"

func TestAdminPage(t *testing.T) {
	e := startAPI(t, map[string]string{"1001": "alice-1001", "1002": "bob-1002"})
	sipAddr := fmt.Sprintf("127.0.0.1:%d", e.sipPort)
	b := browsertest.Start(t, browsertest.WindowSize(1280, 1100))
	p := b.NewPage(t)
	p.SetName("admin page")
	p.Navigate(e.base + "/admin")

	// A wrong token is refused; the right one opens the page.
	p.Fill("login-token", "not-the-token")
	p.Click("login-submit")
	p.WaitText("login-error", "not accepted")
	p.Fill("login-token", apiToken)
	p.Click("login-submit")
	p.WaitVisible("users-table")
	p.WaitText("status", "2 users")
	p.WaitText("live", "live")

	// Add a user; it can register at once, and the registration shows up
	// (pushed by the event stream).
	p.Fill("user-name", "2001")
	p.Fill("user-display", "Dora")
	p.Fill("user-password", "dora-pw-1")
	p.Click("user-add")
	p.WaitText("user-row-2001", "Dora")
	dora := newPhone(t, sipAddr, "2001", "dora-pw-1", "softphone/2.0")
	if code := dora.register(300); code != 200 {
		t.Fatalf("user added on the admin page: REGISTER %d", code)
	}
	p.WaitText("reg-row-2001", dora.addr())
	p.WaitText("reg-row-2001", "softphone/2.0")

	// Edit the display name.
	p.Click("edit-2001")
	p.Fill("edit-display-2001", "Dora D.")
	p.Click("edit-save-2001")
	p.WaitText("user-display-2001", "Dora D.")
	var u web.User
	e.api("GET", "/api/v1/users/2001", nil, 200, &u)
	if u.DisplayName != "Dora D." {
		t.Fatalf("display name after edit: %q", u.DisplayName)
	}

	// A live call appears, and is hung up from the page.
	alice := newPhone(t, sipAddr, "1001", "alice-1001", "")
	bob := newPhone(t, sipAddr, "1002", "bob-1002", "")
	if code := bob.register(300); code != 200 {
		t.Fatalf("bob REGISTER: %d", code)
	}
	id := upCall(t, e, alice, bob)
	p.WaitText("call-row-"+id, "answered")
	p.WaitText("calls-count", "(1)")

	shot := filepath.Join(t.TempDir(), "admin.png")
	if os.Getenv(updateScreenshotEnv) == "1" {
		shot = filepath.Join("..", "..", "docs", "admin.png")
	}
	p.Screenshot(shot)

	p.Click("hangup-" + id)
	alice.respond(alice.readRequest("BYE"), 200, "")
	bob.respond(bob.readRequest("BYE"), 200, "")
	p.WaitHidden("call-row-" + id)
	p.WaitText("record-row-"+id, "answered")
	p.WaitText("record-row-"+id, "system")
	p.WaitText("events", "call.ended 1001 → 1002")

	// The API reference page renders the OpenAPI document, with no token.
	docs := b.NewPage(t)
	docs.SetName("API reference")
	docs.Navigate(e.base + "/api/docs")
	docs.WaitFor(`document.body.dataset.ready === "1"`)
	docs.WaitText("op-originate-call", "Place a call (click-to-call)")
	docs.WaitText("toc", "GET /api/v1/events")

	// The history filter.
	p.Fill("records-user", "1003")
	p.Click("records-filter")
	p.WaitHidden("record-row-" + id)
	p.WaitText("records-table", "No calls match")
}
