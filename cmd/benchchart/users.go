package main

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
)

// maxUsers bounds the table so that a typo cannot fill the disk.
const maxUsers = 1_000_000

// benchRealm is Switchboard's default SIP domain, the digest realm of both
// systems in the benchmark.
const benchRealm = "switchboard.local"

func usersCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchchart users", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 0, "number of users u0…u(N-1), password pass0…")
	out := fs.String("out", "", "db_text table `file` to write")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 1 || *n > maxUsers || *out == "" {
		fmt.Fprintf(stderr, "benchchart users: want --n in 1-%d and --out\n", maxUsers)
		return 2
	}
	if err := writeUserTable(*out, *n); err != nil {
		fmt.Fprintf(stderr, "benchchart users: %v\n", err)
		return 1
	}
	return 0
}

// writeUserTable writes a Kamailio db_text table in the htable module's
// layout holding, for each user, the digest HA1 (RFC 2617 §3.2.2.2:
// MD5(user:realm:password)) — what Switchboard stores for the same user.
func writeUserTable(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id(int,auto) key_name(str) key_type(int) value_type(int) key_value(str) expires(int)")
	for i := range n {
		sum := md5.Sum(fmt.Appendf(nil, "u%d:%s:pass%d", i, benchRealm, i))
		fmt.Fprintf(w, "%d:u%d:0:0:%s:0\n", i+1, i, hex.EncodeToString(sum[:]))
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
