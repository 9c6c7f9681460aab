// Command switchboard is the Switchboard call server and its admin client.
//
//	switchboard serve [--config FILE]   run the server
//	switchboard ctl COMMAND             control the running server
//	switchboard version                 print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped by the Makefile with -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage:
  switchboard serve [--config FILE]   run the server (default config: configs/switchboard.yaml)
  switchboard ctl [--socket PATH] [--json] COMMAND
                                      control the running server (switchboard ctl help)
  switchboard version                 print the version
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		// The server handles its signals itself: the first SIGTERM drains,
		// a second stops at once, SIGHUP reloads.
		lc := newLifecycle()
		lc.notifySignals()
		os.Exit(serveCmd(context.Background(), os.Args[2:], os.Stdout, os.Stderr, lc))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stdout, stderr, nil)
	case "ctl":
		return ctlCmd(ctx, args[1:], os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "switchboard %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
