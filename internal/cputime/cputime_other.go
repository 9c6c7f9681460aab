//go:build !unix

// Package cputime reads the CPU time the process has used, for benchmarks
// that report CPU per operation.
package cputime

import "time"

// Process returns 0: the CPU time is not read on this system.
func Process() time.Duration { return 0 }
