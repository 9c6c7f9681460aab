package webhook_test

import (
	"testing"

	"github.com/switchboard/switchboard/internal/crashtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// TestDeliveryAfterKill re-runs this binary as a child that appends
	// events and kills itself.
	if args, ok := crashtest.Args(); ok {
		runCrashChild(args[0], args[1])
	}
	goleak.VerifyTestMain(m)
}
