package sip

import (
	"log/slog"
	"strings"
	"testing"
)

// TestLibraryLogger: what sipgo logs reaches ours, in our format, without
// its info chatter and refcount notes. (The package logger itself is a
// global that sipgo goroutines of other tests read: it is not set here.)
func TestLibraryLogger(t *testing.T) {
	var buf syncBuffer
	l := libraryLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	l.Info("TransactionLayer: Unhandled sip response")
	l.Warn("UDP ref went negative on try close")
	l.Warn("write failed", "error", "boom")
	out := buf.String()
	if strings.Contains(out, "Unhandled") || strings.Contains(out, "ref went negative") {
		t.Errorf("chatter passed:\n%s", out)
	}
	if !strings.Contains(out, `level=WARN msg="write failed" component=sipgo error=boom`) {
		t.Errorf("warning missing or not in our format:\n%s", out)
	}
}
