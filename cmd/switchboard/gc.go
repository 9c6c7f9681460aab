package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// serveGCPercent is the garbage collector's target for the server: the heap
// may grow to three times what is live before a collection (Go's default
// is twice). Every SIP message allocates its parsed headers and every
// transaction its timers, so under REGISTER or call load the collector ran
// often enough to take 10-15% of the CPU; with this target it runs half as
// often, for a larger but bounded heap (docs/bench/notes.md). GOGC in the
// environment, when set, wins.
const serveGCPercent = 200

// tuneGC applies serveGCPercent unless GOGC is set.
func tuneGC(log *slog.Logger) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		log.Debug("garbage collector target from the environment", "GOGC", v)
		return
	}
	debug.SetGCPercent(serveGCPercent)
}
