package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzAPIJSON sends arbitrary bodies to every API operation that reads
// JSON: the answer is never a server error, and nothing panics.
func FuzzAPIJSON(f *testing.F) {
	for _, seed := range []string{
		`{"name":"2001","password":"secret-1","display_name":"Dora"}`,
		`{"display_name":"D","password":"x"}`,
		`{"from":"1001","to":"1002"}`,
		`{}`, `[]`, `null`, `{"name":`, `{"name":"\u0000"}`, `{"name":1e999}`,
		`{"name":"a","name":"b","password":"pppppppp"}`,
		string(bytes.Repeat([]byte(`{"a":`), 200)),
	} {
		for _, target := range []uint8{0, 1, 2} {
			f.Add(target, []byte(seed))
		}
	}
	svc := newFake()
	srv, err := New(Config{Tokens: []string{testToken}}, Deps{Service: svc, Originator: svc, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, target uint8, body []byte) {
		var method, path string
		switch target % 3 {
		case 0:
			method, path = http.MethodPost, "/api/v1/users"
		case 1:
			method, path = http.MethodPatch, "/api/v1/users/1001"
		default:
			method, path = http.MethodPost, "/api/v1/calls"
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", method, path, body, rec.Code, rec.Body.String())
		}
	})
}
