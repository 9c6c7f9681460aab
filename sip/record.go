package sip

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// recordWriter orders the writes of one call's record: the answer is
// stored as soon as the call is answered, so that a crash afterwards still
// leaves its answer time, and it never overwrites the final record.
type recordWriter struct {
	mu    sync.Mutex
	final bool
}

// saveAnswered stores the record of a call that was just answered, unless
// its final record is already written.
func (c *call) saveAnswered() {
	c.recW.mu.Lock()
	defer c.recW.mu.Unlock()
	if c.recW.final {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.s.records.UpdateCall(ctx, c.snapshot()); err != nil {
		c.log.Error("store call record", "error", err)
	}
}

// saveFinal stores the final record of a call.
func (c *call) saveFinal(ctx context.Context, rec store.CallRecord) {
	c.recW.mu.Lock()
	defer c.recW.mu.Unlock()
	c.recW.final = true
	if err := c.s.records.UpdateCall(ctx, rec); err != nil {
		c.log.Error("store call record", "error", err)
	}
}
