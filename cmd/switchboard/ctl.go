package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/web"
)

const ctlUsage = `usage: switchboard ctl [--config FILE | --socket PATH] [--json] COMMAND

Talks to the running server over its control socket (control.socket in the
config file, default configs/switchboard.yaml).

commands:
  status                                  version, uptime and counts
  registrations                           live registrations
  calls                                   calls in progress
  hangup ID                               end a call in progress
  call FROM TO                            click-to-call: ring FROM's phones, then call TO
  users list                              accounts
  users add NAME [--display-name X] [--password P]
                                          create an account
  users remove NAME                       delete an account and its registrations
  users passwd NAME [--password P]        change a password
  trunks                                  trunks and their state
  records [--user U] [--result R] [--limit N]
                                          call records, newest first (default 20)
  webhooks                                webhook delivery state (queue, attempts, errors)
  events [--count N] [--after ID]         print events as they happen (after event ID first)
  bans                                    banned source addresses and protection counters
  unban ADDRESS                           lift a ban
  reload                                  read the config file again (users, trunks,
                                          webhooks); an invalid file is refused

Without --password the password is prompted for on a terminal, or read
from the first line of standard input.
--json prints the API's JSON instead of tables (an array for lists).

exit status: 0 done, 1 the server refused or failed, 2 usage, 3 not running
`

// Exit codes of switchboard ctl.
const (
	exitOK         = 0
	exitServer     = 1
	exitUsage      = 2
	exitNotRunning = 3
)

// ctl is one run of switchboard ctl.
type ctl struct {
	socket string
	json   bool
	http   *http.Client
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// usageError is a command line mistake (exit 2).
type usageError string

func (e usageError) Error() string { return string(e) }

// notRunningError reports that no server answers on the socket (exit 3).
type notRunningError struct {
	socket string
	err    error
}

func (e *notRunningError) Error() string {
	if errors.Is(e.err, fs.ErrNotExist) {
		return fmt.Sprintf("switchboard is not running (no control socket at %s)", e.socket)
	}
	return fmt.Sprintf("switchboard is not running (nothing answers on the control socket %s)", e.socket)
}

// apiError is an error answer from the server (exit 1).
type apiError struct {
	status int
	p      struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Errors []struct {
			Message  string `json:"message"`
			Location string `json:"location"`
		} `json:"errors"`
	}
}

func (e *apiError) Error() string {
	msg := e.p.Detail
	if msg == "" {
		msg = e.p.Title
	}
	if msg == "" {
		msg = http.StatusText(e.status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (HTTP %d)", msg, e.status)
	for _, d := range e.p.Errors {
		fmt.Fprintf(&b, "\n  %s: %s", strings.TrimPrefix(d.Location, "body."), d.Message)
	}
	return b.String()
}

// ctlCmd runs `switchboard ctl` and returns its exit code.
func ctlCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &ctl{stdin: stdin, stdout: stdout, stderr: stderr}
	fl := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	cfgPath := fl.String("config", defaultConfig, "")
	fl.StringVar(&c.socket, "socket", "", "")
	fl.BoolVar(&c.json, "json", false, "")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, ctlUsage)
			return exitOK
		}
		fmt.Fprintf(stderr, "switchboard ctl: %v (switchboard ctl help lists the commands)\n", err)
		return exitUsage
	}
	if fl.NArg() == 0 {
		fmt.Fprint(stderr, ctlUsage)
		return exitUsage
	}
	if c.socket == "" {
		explicit := false
		fl.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
		sock, err := socketFromConfig(*cfgPath, explicit)
		if err != nil {
			fmt.Fprintf(stderr, "switchboard ctl: %v\n", err)
			return exitUsage
		}
		c.socket = sock
	}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.socket)
		},
	}}
	defer c.http.CloseIdleConnections()

	err := c.run(ctx, fl.Arg(0), fl.Args()[1:])
	var (
		ue usageError
		nr *notRunningError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "switchboard ctl: %v (switchboard ctl help lists the commands)\n", err)
		return exitUsage
	case errors.As(err, &nr):
		fmt.Fprintln(stderr, err)
		return exitNotRunning
	default:
		fmt.Fprintf(stderr, "switchboard ctl: %v\n", err)
		return exitServer
	}
}

// defaultControlSocket is control.socket's default.
const defaultControlSocket = "./data/switchboard.sock"

// socketFromConfig reads control.socket from the config file. A missing
// default config file means the default socket path.
func socketFromConfig(path string, explicit bool) (string, error) {
	if _, err := os.Stat(path); !explicit && errors.Is(err, fs.ErrNotExist) {
		return defaultControlSocket, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return "", fmt.Errorf("%w (or name the socket with --socket)", err)
	}
	return cfg.Control.Socket, nil
}

func (c *ctl) run(ctx context.Context, cmd string, args []string) error {
	switch cmd {
	case "status":
		return c.status(ctx, args)
	case "registrations", "regs":
		return c.registrations(ctx, args)
	case "calls":
		return c.calls(ctx, args)
	case "hangup":
		return c.hangup(ctx, args)
	case "call":
		return c.originate(ctx, args)
	case "webhooks":
		return c.webhooks(ctx, args)
	case "events":
		return c.events(ctx, args)
	case "users":
		return c.users(ctx, args)
	case "trunks":
		return c.trunks(ctx, args)
	case "records":
		return c.records(ctx, args)
	case "reload":
		return c.reload(ctx, args)
	case "bans":
		return c.bans(ctx, args)
	case "unban":
		return c.unban(ctx, args)
	case "help":
		fmt.Fprint(c.stdout, ctlUsage)
		return nil
	}
	return usageError(fmt.Sprintf("unknown command %q", cmd))
}

// parse parses flags that may come before, between or after the want
// positional arguments.
func (c *ctl) parse(name string, fl *flag.FlagSet, args []string, want int) ([]string, error) {
	fl.SetOutput(io.Discard)
	fl.BoolVar(&c.json, "json", c.json, "")
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, usageError(fmt.Sprintf("%s: %v", name, err))
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(pos) != want {
		return nil, usageError(fmt.Sprintf("%s takes %d argument(s), got %d", name, want, len(pos)))
	}
	return pos, nil
}

// do sends a request over the socket and decodes a JSON answer into out
// (when out is not nil).
func (c *ctl) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://switchboard"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
			return &notRunningError{socket: c.socket, err: mapNoEnt(err)}
		}
		return fmt.Errorf("control socket %s: %w", c.socket, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if res.StatusCode >= 300 {
		e := &apiError{status: res.StatusCode}
		_ = json.Unmarshal(b, &e.p)
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

func mapNoEnt(err error) error {
	if errors.Is(err, syscall.ENOENT) {
		return fs.ErrNotExist
	}
	return err
}

// all fetches every page of a list.
func all[T any](ctx context.Context, c *ctl, path string) ([]T, error) {
	items := []T{}
	cursor := ""
	for {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var p web.Page[T]
		if err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &p); err != nil {
			return nil, err
		}
		items = append(items, p.Items...)
		if p.NextCursor == "" {
			return items, nil
		}
		cursor = p.NextCursor
	}
}

// printJSON writes v indented for scripts.
func (c *ctl) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns for people.
func (c *ctl) table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func (c *ctl) status(ctx context.Context, args []string) error {
	if _, err := c.parse("status", flag.NewFlagSet("status", flag.ContinueOnError), args, 0); err != nil {
		return err
	}
	var st web.Status
	if err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, &st); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(st)
	}
	ready := "yes"
	if !st.Ready {
		ready = "no"
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "version\t%s\n", st.Version)
	fmt.Fprintf(tw, "started\t%s (up %s)\n", st.StartedAt.Time().Local().Format(time.DateTime), time.Duration(st.UptimeSeconds)*time.Second)
	fmt.Fprintf(tw, "ready\t%s\n", ready)
	fmt.Fprintf(tw, "users\t%d\n", st.Users)
	fmt.Fprintf(tw, "registrations\t%d\n", st.Registrations)
	fmt.Fprintf(tw, "active calls\t%d\n", st.ActiveCalls)
	return tw.Flush()
}

func (c *ctl) registrations(ctx context.Context, args []string) error {
	if _, err := c.parse("registrations", flag.NewFlagSet("registrations", flag.ContinueOnError), args, 0); err != nil {
		return err
	}
	regs, err := all[web.Registration](ctx, c, "/api/v1/registrations")
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(regs)
	}
	rows := make([][]string, len(regs))
	for i, r := range regs {
		rows[i] = []string{r.User, r.Transport, r.Source, (time.Duration(r.ExpiresIn) * time.Second).String(), r.Contact, r.UserAgent}
	}
	return c.table("USER\tTRANSPORT\tSOURCE\tEXPIRES IN\tCONTACT\tUSER AGENT", rows)
}

func (c *ctl) calls(ctx context.Context, args []string) error {
	if _, err := c.parse("calls", flag.NewFlagSet("calls", flag.ContinueOnError), args, 0); err != nil {
		return err
	}
	calls, err := all[web.Call](ctx, c, "/api/v1/calls")
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(calls)
	}
	now := time.Now()
	rows := make([][]string, len(calls))
	for i, cl := range calls {
		var ports, pkts, loss []string
		for _, l := range cl.Legs {
			ports = append(ports, strconv.Itoa(l.RelayPort))
			pkts = append(pkts, fmt.Sprintf("%d/%d", l.PacketsIn, l.PacketsOut))
			loss = append(loss, strconv.FormatUint(l.Lost, 10))
		}
		rows[i] = []string{cl.ID, cl.Caller, cl.Callee, cl.State, strings.Join(cl.Codecs, ","), now.Sub(cl.StartedAt.Time()).Truncate(time.Second).String(),
			strings.Join(ports, ","), strings.Join(pkts, " "), strings.Join(loss, ","), trunkColumn(cl.Trunk, cl.DID)}
	}
	return c.table("ID\tCALLER\tCALLEE\tSTATE\tCODECS\tFOR\tRELAY PORTS\tPACKETS IN/OUT\tLOST\tTRUNK", rows)
}

// trunkColumn names the trunk of a call (and the DID an inbound call
// dialled), or "-" for an internal call.
func trunkColumn(trunk, did string) string {
	switch {
	case did != "":
		return trunk + " " + did
	case trunk != "":
		return trunk
	}
	return "-"
}

func (c *ctl) hangup(ctx context.Context, args []string) error {
	pos, err := c.parse("hangup", flag.NewFlagSet("hangup", flag.ContinueOnError), args, 1)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, "/api/v1/calls/"+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintf(c.stdout, "call %s hung up\n", pos[0])
	}
	return nil
}

func (c *ctl) trunks(ctx context.Context, args []string) error {
	if _, err := c.parse("trunks", flag.NewFlagSet("trunks", flag.ContinueOnError), args, 0); err != nil {
		return err
	}
	var l web.List[web.Trunk]
	if err := c.do(ctx, http.MethodGet, "/api/v1/trunks", nil, &l); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(l.Items)
	}
	if len(l.Items) == 0 {
		fmt.Fprintln(c.stdout, "no trunks")
		return nil
	}
	rows := make([][]string, len(l.Items))
	for i, t := range l.Items {
		last := "-"
		if !t.LastSuccessAt.IsZero() {
			last = t.LastSuccessAt.Time().Local().Format(time.DateTime)
		}
		lastErr := t.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		rows[i] = []string{t.Name, t.Address, t.Transport, t.State, last, lastErr}
	}
	return c.table("NAME\tADDRESS\tTRANSPORT\tSTATE\tLAST SUCCESS\tLAST ERROR", rows)
}

func (c *ctl) records(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("records", flag.ContinueOnError)
	user := fl.String("user", "", "")
	result := fl.String("result", "", "")
	limit := fl.Int("limit", 20, "")
	if _, err := c.parse("records", fl, args, 0); err != nil {
		return err
	}
	if *limit < 1 {
		return usageError("records: --limit must be at least 1")
	}
	recs := []web.Record{}
	cursor := ""
	for len(recs) < *limit {
		q := url.Values{"limit": {strconv.Itoa(min(*limit-len(recs), 1000))}}
		for k, v := range map[string]string{"user": *user, "result": *result, "cursor": cursor} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var p web.Page[web.Record]
		if err := c.do(ctx, http.MethodGet, "/api/v1/records?"+q.Encode(), nil, &p); err != nil {
			return err
		}
		recs = append(recs, p.Items...)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if c.json {
		return c.printJSON(recs)
	}
	rows := make([][]string, len(recs))
	for i, r := range recs {
		dur := "-"
		if !r.AnsweredAt.IsZero() {
			dur = (time.Duration(r.DurationMS) * time.Millisecond).Truncate(time.Second).String()
		}
		result := r.Result
		if r.EndedAt.IsZero() {
			result = "(in progress)"
		}
		rows[i] = []string{r.StartedAt.Time().Local().Format(time.DateTime), r.Caller, r.Callee, result,
			strconv.Itoa(r.Status), dur, r.HangupBy, r.ID, trunkColumn(r.Trunk, r.DID)}
	}
	return c.table("STARTED\tCALLER\tCALLEE\tRESULT\tSTATUS\tDURATION\tHANGUP BY\tID\tTRUNK", rows)
}

func (c *ctl) users(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("users: list, add, remove or passwd?")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list", "ls":
		if _, err := c.parse("users list", flag.NewFlagSet("list", flag.ContinueOnError), args, 0); err != nil {
			return err
		}
		users, err := all[web.User](ctx, c, "/api/v1/users")
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(users)
		}
		rows := make([][]string, len(users))
		for i, u := range users {
			src := "api"
			if u.FromConfig {
				src = "config"
			}
			rows[i] = []string{u.Name, u.DisplayName, src, u.UpdatedAt.Time().Local().Format(time.DateTime)}
		}
		return c.table("NAME\tDISPLAY NAME\tFROM\tUPDATED", rows)

	case "add":
		fl := flag.NewFlagSet("add", flag.ContinueOnError)
		display := fl.String("display-name", "", "")
		password := fl.String("password", "", "")
		pos, err := c.parse("users add", fl, args, 1)
		if err != nil {
			return err
		}
		pw, err := c.password(pos[0], *password, setFlag(fl, "password"))
		if err != nil {
			return err
		}
		var u web.User
		if err := c.do(ctx, http.MethodPost, "/api/v1/users", web.NewUser{Name: pos[0], DisplayName: *display, Password: pw}, &u); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(u)
		}
		fmt.Fprintf(c.stdout, "user %s created\n", u.Name)
		return nil

	case "remove", "rm", "delete":
		pos, err := c.parse("users remove", flag.NewFlagSet("remove", flag.ContinueOnError), args, 1)
		if err != nil {
			return err
		}
		if err := c.do(ctx, http.MethodDelete, "/api/v1/users/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		if !c.json {
			fmt.Fprintf(c.stdout, "user %s removed, with its registrations\n", pos[0])
		}
		return nil

	case "passwd":
		fl := flag.NewFlagSet("passwd", flag.ContinueOnError)
		password := fl.String("password", "", "")
		pos, err := c.parse("users passwd", fl, args, 1)
		if err != nil {
			return err
		}
		pw, err := c.password(pos[0], *password, setFlag(fl, "password"))
		if err != nil {
			return err
		}
		var u web.User
		if err := c.do(ctx, http.MethodPatch, "/api/v1/users/"+url.PathEscape(pos[0]), web.UserChange{Password: &pw}, &u); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(u)
		}
		fmt.Fprintf(c.stdout, "password of %s changed\n", u.Name)
		return nil
	}
	return usageError(fmt.Sprintf("users: unknown subcommand %q", sub))
}

func setFlag(fl *flag.FlagSet, name string) bool {
	set := false
	fl.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// password returns the --password value, or asks for it: twice without
// echo on a terminal, else the first line of standard input.
func (c *ctl) password(user, given string, set bool) (string, error) {
	if set {
		return given, nil
	}
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(c.stderr, "password for %s: ", user)
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprintf(c.stderr, "again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(p1, p2) {
			return "", usageError("the passwords differ")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageError("no password: give --password, type it on a terminal, or pipe it on standard input")
	}
	return pw, nil
}

func (c *ctl) reload(ctx context.Context, args []string) error {
	if _, err := c.parse("reload", flag.NewFlagSet("reload", flag.ContinueOnError), args, 0); err != nil {
		return err
	}
	var res web.ReloadResult
	if err := c.do(ctx, http.MethodPost, "/api/v1/reload", nil, &res); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(res)
	}
	fmt.Fprintf(c.stdout, "reloaded: %s\n", strings.Join(res.Applied, ", "))
	if len(res.RestartNeeded) > 0 {
		fmt.Fprintf(c.stdout, "changed, applied at the next start: %s\n", strings.Join(res.RestartNeeded, ", "))
	}
	return nil
}

func (c *ctl) bans(ctx context.Context, args []string) error {
	if _, err := c.parse("bans", flag.NewFlagSet("bans", flag.ContinueOnError), args, 0); err != nil {
		return err
	}
	var st web.ProtectionState
	if err := c.do(ctx, http.MethodGet, "/api/v1/protection", nil, &st); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(st)
	}
	rows := make([][]string, 0, len(st.Bans))
	for _, b := range st.Bans {
		rows = append(rows, []string{b.Address, b.Reason, b.Until.Time().Local().Format(time.DateTime), strconv.Itoa(b.Offences)})
	}
	if err := c.table("ADDRESS\tREASON\tUNTIL\tOFFENCES", rows); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nbans since start: %d, authentication failures: %d\n", st.BansTotal, st.AuthFailures)
	return nil
}

func (c *ctl) unban(ctx context.Context, args []string) error {
	pos, err := c.parse("unban", flag.NewFlagSet("unban", flag.ContinueOnError), args, 1)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, "/api/v1/protection/bans/"+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "ban of %s lifted\n", pos[0])
	return nil
}
