package media

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLoggers adapts slog to pion's logging interfaces, so that pion's logs
// go where the rest of the media plane's go, with the call's attributes.
// Levels follow pion's own default, which shows errors only: pion's Info
// and Warn lines (every state change, and the expected noise of a
// connection being set up or torn down) are Debug here, and its errors,
// which end one browser leg and not the server, are Warn. Trace is dropped.
type pionLoggers struct{ log *slog.Logger }

// NewLogger returns the logger of one pion component.
func (f pionLoggers) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

// pionLogger is one pion component's logger.
type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l pionLogger) emitf(level slog.Level, format string, args []any) {
	// Formatting is the expensive part: skip it for disabled levels.
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (pionLogger) Trace(string)                     {}
func (pionLogger) Tracef(string, ...any)            {}
func (l pionLogger) Debug(msg string)               { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, a ...any) { l.emitf(slog.LevelDebug, format, a) }
func (l pionLogger) Info(msg string)                { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, a ...any)  { l.emitf(slog.LevelDebug, format, a) }
func (l pionLogger) Warn(msg string)                { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, a ...any)  { l.emitf(slog.LevelDebug, format, a) }
func (l pionLogger) Error(msg string)               { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Errorf(format string, a ...any) { l.emitf(slog.LevelWarn, format, a) }
