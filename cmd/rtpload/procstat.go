package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc: USER_HZ, which the kernel
// fixes at 100 for user space on every architecture Go supports on Linux.
const userHZ = 100

// procCPU returns the CPU time (user plus system) a process has used, from
// fields 14 and 15 of /proc/PID/stat (proc(5)).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// parseProcStat extracts utime+stime from the text of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f)+2)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: bad utime %q or stime %q", f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// procRSS returns a process's resident set size in KiB (VmRSS in
// /proc/PID/status).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("proc status: no VmRSS")
}

// machineCPU is the first line of /proc/stat: time spent by all CPUs, in
// USER_HZ ticks, and the number of CPUs (not runtime.NumCPU, which is the
// calling process's CPU affinity).
type machineCPU struct {
	busy, idle, steal, softirq uint64
	cpus                       int
}

// readMachineCPU reads /proc/stat.
func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, err
	}
	line, rest, _ := bytes.Cut(b, []byte("\n"))
	cpus := 0
	for l := range strings.Lines(string(rest)) {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			cpus++
		}
	}
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("proc stat: unexpected %q", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return machineCPU{}, fmt.Errorf("proc stat: %w", err)
		}
	}
	return machineCPU{
		busy:    v[0] + v[1] + v[2] + v[5] + v[6],
		idle:    v[3] + v[4],
		steal:   v[7],
		softirq: v[6],
		cpus:    max(cpus, 1),
	}, nil
}

// udpCounters are the kernel's UDP counters from /proc/net/snmp, the figures
// "netstat -su" prints. They count every UDP socket of the network
// namespace, not only rtpload's.
type udpCounters struct {
	InDatagrams, NoPorts, InErrors, OutDatagrams, RcvbufErrors, SndbufErrors uint64
}

// readUDPCounters reads the Udp lines of /proc/net/snmp.
func readUDPCounters() (udpCounters, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return udpCounters{}, err
	}
	var names, values []string
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Udp: "); ok {
			if names == nil {
				names = strings.Fields(rest)
			} else {
				values = strings.Fields(rest)
			}
		}
	}
	if len(names) == 0 || len(names) != len(values) {
		return udpCounters{}, fmt.Errorf("proc net snmp: no Udp counters")
	}
	var c udpCounters
	dst := map[string]*uint64{
		"InDatagrams": &c.InDatagrams, "NoPorts": &c.NoPorts, "InErrors": &c.InErrors,
		"OutDatagrams": &c.OutDatagrams, "RcvbufErrors": &c.RcvbufErrors, "SndbufErrors": &c.SndbufErrors,
	}
	for i, n := range names {
		if p, ok := dst[n]; ok {
			if *p, err = strconv.ParseUint(values[i], 10, 64); err != nil {
				return udpCounters{}, fmt.Errorf("proc net snmp: %s: %w", n, err)
			}
		}
	}
	return c, nil
}

// sub returns the counters' increase since before.
func (c udpCounters) sub(before udpCounters) udpCounters {
	return udpCounters{
		InDatagrams:  c.InDatagrams - before.InDatagrams,
		NoPorts:      c.NoPorts - before.NoPorts,
		InErrors:     c.InErrors - before.InErrors,
		OutDatagrams: c.OutDatagrams - before.OutDatagrams,
		RcvbufErrors: c.RcvbufErrors - before.RcvbufErrors,
		SndbufErrors: c.SndbufErrors - before.SndbufErrors,
	}
}
