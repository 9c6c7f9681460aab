// Package certs serves a TLS certificate from a certificate and key file
// and picks up new files when they change (a renewed certificate), without
// a restart.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultCheckInterval is how often, at most, the files are looked at again.
const DefaultCheckInterval = 5 * time.Second

// Reloader holds the current certificate of a TLS listener.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time
	interval          time.Duration

	mu      sync.Mutex
	cur     *tls.Certificate
	stamp   string // the files' sizes and modification times at the last load
	checked time.Time
}

// New loads the pair once: an error names the file and what is wrong with
// it. Check is how often, at most, the files are looked at again (0 means
// DefaultCheckInterval).
func New(certFile, keyFile string, check time.Duration, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if check <= 0 {
		check = DefaultCheckInterval
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now, interval: check}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, err
	}
	c, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur, r.stamp, r.checked = c, stamp, r.now()
	return r, nil
}

func (r *Reloader) fileStamp() (string, error) {
	var out string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		out += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return out, nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	if c.Leaf == nil && len(c.Certificate) > 0 {
		c.Leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	return &c, nil
}

// Certificate returns the current certificate, loading the files again
// when they changed since the last look (at most every check interval). A
// pair that fails to load is logged and the previous certificate stays.
func (r *Reloader) Certificate() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < r.interval {
		return r.cur
	}
	r.checked = now
	stamp, err := r.fileStamp()
	if err != nil || stamp == r.stamp {
		if err != nil {
			r.log.Warn("tls certificate files unreadable: keeping the loaded one", "error", err)
		}
		return r.cur
	}
	c, err := r.load()
	if err != nil {
		// Often the certificate is written before its key: try again
		// at the next check.
		r.log.Warn("new tls certificate not usable: keeping the loaded one", "error", err)
		return r.cur
	}
	r.cur, r.stamp = c, stamp
	if c.Leaf != nil {
		r.log.Info("tls certificate reloaded", "file", r.certFile, "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter)
	}
	return r.cur
}

// ServerConfig is a TLS server configuration with secure defaults (TLS 1.2
// or later, Go's default cipher suites) that serves the current
// certificate.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.Certificate(), nil
		},
	}
}
