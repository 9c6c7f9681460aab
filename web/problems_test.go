package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAPIErrorsAreDocumentedProblems sends the requests that fail before
// any handler runs (a body that is not JSON, a Content-Type that is not
// JSON, a path or method the API lacks, a cursor the server did not issue)
// and checks that each is answered with problem details, as the OpenAPI
// document says where it lists the operation.
func TestAPIErrorsAreDocumentedProblems(t *testing.T) {
	e := newEnv(t)
	e.svc.users["a"] = User{Name: "a"}
	send := func(h http.Handler, method, path, contentType, body string) (*http.Response, []byte) {
		t.Helper()
		srv := e.http
		if h != nil {
			srv = httptest.NewServer(h)
			defer srv.Close()
		}
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, res.Body); err != nil {
			t.Fatal(err)
		}
		return res, []byte(b.String())
	}
	problemOf := func(t *testing.T, res *http.Response, b []byte, want int) problem {
		t.Helper()
		var p problem
		if res.StatusCode != want || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("status %d %s, want %d problem+json: %s", res.StatusCode, res.Header.Get("Content-Type"), want, b)
		}
		if err := json.Unmarshal(b, &p); err != nil || p.Status != want || p.Detail == "" {
			t.Fatalf("problem %s (%v)", b, err)
		}
		return p
	}

	// Documented: every response is checked against the document.
	for name, tc := range map[string]struct {
		method, path, contentType, body string
		want                            int
	}{
		"malformed JSON":         {"POST", "/api/v1/users", "application/json", `{"name":"b","password":"secret-pw", bad`, 400},
		"short password":         {"POST", "/api/v1/users", "application/json", `{"name":"b","password":"sec"}`, 422},
		"malformed JSON patch":   {"PATCH", "/api/v1/users/a", "application/json", `{bad`, 400},
		"text/plain body":        {"POST", "/api/v1/users", "text/plain", `{"name":"b","password":"secret-pw"}`, 415},
		"text/plain click":       {"POST", "/api/v1/calls", "text/plain", `{"from":"a","to":"1002"}`, 415},
		"garbage user cursor":    {"GET", "/api/v1/users?cursor=garbage", "", "", 422},
		"garbage reg cursor":     {"GET", "/api/v1/registrations?cursor=garbage", "", "", 422},
		"garbage call cursor":    {"GET", "/api/v1/calls?cursor=garbage", "", "", 422},
		"garbage record cursor":  {"GET", "/api/v1/records?cursor=Z2FyYmFnZQ", "", "", 422},
		"cursor of another page": {"GET", "/api/v1/users?cursor=" + encodeCursor("a")[1:], "", "", 422},
	} {
		t.Run(name, func(t *testing.T) {
			res, b := send(nil, tc.method, tc.path, tc.contentType, tc.body)
			p := problemOf(t, res, b, tc.want)
			if err := e.doc.Check(tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Type"), b); err != nil {
				t.Fatalf("response does not match the OpenAPI document: %v", err)
			}
			// A problem never echoes a password.
			if strings.Contains(string(b), `"password"`) || strings.Contains(string(b), "secret-pw") || strings.Contains(string(b), `"sec"`) {
				t.Fatalf("the problem echoes the password: %s", b)
			}
			if tc.want == 422 && strings.Contains(tc.path, "cursor") && (len(p.Errors) != 1 || p.Errors[0].Location != "query.cursor") {
				t.Fatalf("422 does not name the cursor: %s", b)
			}
		})
	}

	// Not in the document (no such operation), on both listeners.
	for _, h := range []struct {
		name string
		h    http.Handler
	}{{"web.listen", nil}, {"control socket", e.srv.ControlHandler()}} {
		t.Run(h.name, func(t *testing.T) {
			res, b := send(h.h, "PUT", "/api/v1/users", "application/json", `{}`)
			problemOf(t, res, b, 405)
			if allow := res.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
				t.Errorf("405 Allow %q", allow)
			}
			for _, path := range []string{"/api/v1/nope", "/api/v1/users/a/b", "/api/v2/users"} {
				res, b = send(h.h, "GET", path, "", "")
				problemOf(t, res, b, 404)
			}
			// A real operation still answers.
			if res, b = send(h.h, "GET", "/api/v1/users/a", "", ""); res.StatusCode != 200 {
				t.Errorf("GET /api/v1/users/a: %d %s", res.StatusCode, b)
			}
		})
	}
	// Outside /api/ the plain answers stay.
	if res, _ := send(nil, "GET", "/nope", "", ""); res.StatusCode != 404 || strings.Contains(res.Header.Get("Content-Type"), "problem") {
		t.Errorf("GET /nope: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}
