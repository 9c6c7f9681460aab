package sip

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestLibraryLogger: what sipgo logs through its package logger reaches
// ours, in our format, without its info chatter and refcount notes.
func TestLibraryLogger(t *testing.T) {
	var buf syncBuffer
	SetLibraryLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { sip.SetDefaultLogger(nil) })
	sip.DefaultLogger().Info("TransactionLayer: Unhandled sip response")
	sip.DefaultLogger().Warn("UDP ref went negative on try close")
	sip.DefaultLogger().Warn("write failed", "error", "boom")
	out := buf.String()
	if strings.Contains(out, "Unhandled") || strings.Contains(out, "ref went negative") {
		t.Errorf("chatter passed:\n%s", out)
	}
	if !strings.Contains(out, `level=WARN msg="write failed" component=sipgo error=boom`) {
		t.Errorf("warning missing or not in our format:\n%s", out)
	}
}
