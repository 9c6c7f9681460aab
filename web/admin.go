package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// adminFiles is the admin page: plain HTML, CSS and JavaScript with no
// build step and nothing loaded from elsewhere. It works with the API
// token the operator logs in with.
//
//go:embed admin
var adminFiles embed.FS

// mountAdmin serves the admin page at /admin and its files under /admin/.
// The page holds no data: everything it shows comes from the API, with the
// token.
func (s *Server) mountAdmin() {
	// Paths under /admin/ are the embedded files' paths.
	files := http.FileServerFS(adminFiles)
	s.mux.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin/", http.StatusFound)
	})
	s.mux.HandleFunc("GET /admin/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// apiDocsFiles is the API reference page, rendered in the browser from the
// OpenAPI document by our own script: nothing is loaded from elsewhere.
//
//go:embed apidocs
var apiDocsFiles embed.FS

// apiDocsPath is where the reference page is served. Like the OpenAPI
// document, it needs no token: it holds no data.
const apiDocsPath = "/api/docs"

// mountAPIDocs serves the API reference page at /api/docs/.
func (s *Server) mountAPIDocs() {
	// fs.Sub fails only on an invalid name, and "apidocs" is a valid one.
	sub, _ := fs.Sub(apiDocsFiles, "apidocs")
	files := http.StripPrefix(apiDocsPath+"/", http.FileServerFS(sub))
	s.mux.HandleFunc("GET "+apiDocsPath, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, apiDocsPath+"/", http.StatusFound)
	})
	s.mux.HandleFunc("GET "+apiDocsPath+"/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
