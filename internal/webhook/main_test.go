package webhook_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// TestDeliveryAfterKill re-runs this binary as a child that appends
	// events and kills itself.
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(runCrashChild(path, os.Getenv(crashChildURLEnv)))
	}
	goleak.VerifyTestMain(m)
}
