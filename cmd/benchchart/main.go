// Command benchchart turns the raw figures of `make bench` (scripts/bench.sh)
// into docs/benchmarks.md and an SVG chart, and prepares the user table the
// side-by-side run gives Kamailio.
//
//	benchchart report --dir docs/bench --doc docs/benchmarks.md --chart docs/bench/chart.svg
//	benchchart users --n 20000 --out DIR/kdb/htable
//
// report reads, from --dir: machine.txt (key: value lines), results.tsv
// (test, system, parameter, repetition, metric, value), commands.tsv (test,
// system, command), relay-SYSTEM-REP.json (rtpload sweep --json), go.txt
// (go test -bench output) and notes.md (the hand-written analysis, copied
// into the document). Every comparison is a median over repetitions, and
// every ratio is the median of the per-repetition ratios of two systems
// measured back to back.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage:
  benchchart report --dir docs/bench --doc docs/benchmarks.md --chart docs/bench/chart.svg
  benchchart users --n N --out FILE
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "report":
		return reportCmd(args[1:], stderr)
	case "users":
		return usersCmd(args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "benchchart: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
