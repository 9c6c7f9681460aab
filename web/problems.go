package web

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// documentBodyErrors adds to every operation that takes a request body the
// two answers huma gives before the handler runs: 400 for a body that is not
// JSON and 415 for a Content-Type other than JSON. Run it once every
// operation is registered.
func documentBodyErrors(o *huma.OpenAPI) {
	errSchema := o.Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "")
	for _, item := range o.Paths {
		for _, op := range []*huma.Operation{item.Post, item.Put, item.Patch, item.Delete, item.Get} {
			if op == nil || op.RequestBody == nil {
				continue
			}
			if op.Responses == nil {
				op.Responses = map[string]*huma.Response{}
			}
			for _, code := range []int{http.StatusBadRequest, http.StatusUnsupportedMediaType} {
				key := strconv.Itoa(code)
				if op.Responses[key] != nil {
					continue
				}
				op.Responses[key] = &huma.Response{
					Description: http.StatusText(code),
					Content:     map[string]*huma.MediaType{"application/problem+json": {Schema: errSchema}},
				}
			}
		}
	}
}

// serveMux serves a request with the mux, except that a request under /api/
// that matches no operation is answered with problem details, like every
// other API error, instead of the mux's plain text: 404 for an unknown
// path, 405 (with Allow) for a method its path does not have.
func (s *Server) serveMux(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		// A pattern is "" only when nothing matches: the mux then hands
		// back its own error handler, run here into a recorder to learn
		// which error it is.
		if h, pattern := s.mux.Handler(r); pattern == "" {
			rec := &errorRecorder{header: http.Header{}, status: http.StatusOK}
			h.ServeHTTP(rec, r)
			writeProblem(w, rec.status, rec.header.Get("Allow"), r)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// writeProblem answers an API request that matched no operation.
func writeProblem(w http.ResponseWriter, status int, allow string, r *http.Request) {
	detail := "no such API path: " + r.URL.Path + " (see /api/v1/openapi.json)"
	if status == http.StatusMethodNotAllowed {
		detail = r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + allow
		w.Header().Set("Allow", allow)
	} else if status < 400 {
		status = http.StatusNotFound
	}
	b, err := json.Marshal(&huma.ErrorModel{Title: http.StatusText(status), Status: status, Detail: detail})
	if err != nil {
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// errorRecorder keeps the status and headers of the mux's error answer
// and drops its plain-text body.
type errorRecorder struct {
	header http.Header
	status int
}

func (e *errorRecorder) Header() http.Header         { return e.header }
func (e *errorRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (e *errorRecorder) WriteHeader(status int)      { e.status = status }
