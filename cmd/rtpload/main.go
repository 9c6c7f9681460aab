// Command rtpload measures the capacity of the media relay: it runs a
// media.Relay in a child process and drives it with simulated calls over
// loopback UDP, reporting loss, relay latency, CPU and memory per call.
//
//	rtpload gen   --calls N [--duration 20s] [--pps 50] [--size 172] [--json]
//	rtpload sweep --calls 100,250,500 [--duration 10s] [--json]
//	rtpload relay [--addr 127.0.0.1] [--ports 40000-59999] [--cpuprofile FILE]
//
// The relay runs behind a process boundary (rtpload re-executes itself as
// "rtpload relay" and talks to it over stdin and stdout, see relay.go) so that
// its CPU time and memory are measured on their own; with --relay rtpengine,
// rtpengine in userspace mode takes its place, driven through its ng control
// protocol (ngrelay.go), for a side-by-side comparison.
//
// By default the phones share a few unconnected sockets and move packets with
// sendmmsg and recvmmsg (shared.go), so that the generator costs less per
// packet than the relay it measures; --sockets phone gives each phone a
// socket of its own.
//
// All traffic stays on 127.0.0.1, and every load is bounded: see the limits
// in genConfig.Validate.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  rtpload gen   --calls N [--duration 20s] [--pps 50] [--size 172] [--relay switchboard|rtpengine] [--json]
                run N calls through a relay child process and report one line
  rtpload sweep --calls 100,250,500,1000,2000 [--duration 10s] [--json]
                run gen for each call count and print a table
  rtpload relay [--addr 127.0.0.1] [--ports 40000-59999] [--cpuprofile FILE]
                run a relay controlled over stdin/stdout (started by gen)

Run "rtpload CMD --help" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "gen":
		return genCmd(ctx, args[1:], stdout, stderr)
	case "sweep":
		return sweepCmd(ctx, args[1:], stdout, stderr)
	case "relay":
		return relayCmd(ctx, args[1:], stdin, stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "rtpload: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
