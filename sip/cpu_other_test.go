//go:build !unix

package sip

import "time"

func processCPU() time.Duration { return 0 }
