package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestProcessGrows: busy work shows up in the process's CPU time.
func TestProcessGrows(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("CPU time is not read on " + runtime.GOOS)
	}
	before := Process()
	x := 0
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
		x++
	}
	if after := Process(); after <= before {
		t.Fatalf("CPU time %s then %s after busy work (%d loops)", before, after, x)
	}
}
