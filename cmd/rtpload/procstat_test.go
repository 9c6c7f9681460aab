package main

import (
	"os"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	tests := map[string]struct {
		in   string
		want time.Duration
		ok   bool
	}{
		"plain":           {"1234 (rtpload) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0", 3 * time.Second, true},
		"spaces in name":  {"1234 (a b) c) R 1 1234 1234 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 100 * time.Millisecond, true},
		"truncated":       {"1234 (x) S 1 2 3", 0, false},
		"no command name": {"1234 x S", 0, false},
		"not a number":    {"1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 3 0", 0, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.in))
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parseProcStat = %v, %v; want %v, ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

// TestProcReaders reads this process's figures and the machine's.
func TestProcReaders(t *testing.T) {
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU: %v", err)
	}
	if rss, err := procRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("procRSS = %d, %v", rss, err)
	}
	if m, err := readMachineCPU(); err != nil || m.busy+m.idle == 0 || m.cpus < 1 {
		t.Errorf("readMachineCPU = %+v, %v", m, err)
	}
	if _, err := readUDPCounters(); err != nil {
		t.Errorf("readUDPCounters: %v", err)
	}
}
