package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// phoneFiles is the browser softphone: plain HTML, CSS and JavaScript with
// no build step. sipua.js speaks SIP over the WebSocket at /ws.
//
//go:embed phone
var phoneFiles embed.FS

// PhoneConfig is what the phone page needs to know about the server.
type PhoneConfig struct {
	// Domain is the SIP domain users register in (sip.domain).
	Domain string
}

// PhoneHandler serves the browser softphone: the page at / and its files
// under /phone/. Mount it for both patterns ("GET /{$}" and "GET /phone/").
func PhoneHandler(cfg PhoneConfig) (http.Handler, error) {
	tmpl, err := template.ParseFS(phoneFiles, "phone/index.html")
	if err != nil {
		return nil, fmt.Errorf("web: phone page: %w", err)
	}
	var page bytes.Buffer
	if err := tmpl.Execute(&page, cfg); err != nil {
		return nil, fmt.Errorf("web: phone page: %w", err)
	}
	started := time.Now()
	files := http.FileServerFS(phoneFiles)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		http.ServeContent(w, r, "index.html", started, bytes.NewReader(page.Bytes()))
	})
	mux.HandleFunc("GET /phone/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/phone/index.html" || r.URL.Path == "/phone/" {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		setPageHeaders(w)
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	return mux, nil
}

// setPageHeaders keeps the page to its own origin: its scripts, styles and
// the WebSocket to /ws.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
