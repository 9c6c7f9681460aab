package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard/switchboard/web"
)

// originate places a click-to-call: switchboard ctl call FROM TO.
func (c *ctl) originate(ctx context.Context, args []string) error {
	pos, err := c.parse("call", flag.NewFlagSet("call", flag.ContinueOnError), args, 2)
	if err != nil {
		return err
	}
	var o web.Originate
	if err := c.do(ctx, http.MethodPost, "/api/v1/calls", web.OriginateRequest{From: pos[0], To: pos[1]}, &o); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(o)
	}
	fmt.Fprintf(c.stdout, "ringing %s; %s is called when they answer (%s)\n", o.From, o.To, o.ID)
	return nil
}

// webhooks prints each webhook's delivery state.
func (c *ctl) webhooks(ctx context.Context, args []string) error {
	if _, err := c.parse("webhooks", flag.NewFlagSet("webhooks", flag.ContinueOnError), args, 0); err != nil {
		return err
	}
	var list web.List[web.WebhookStatus]
	if err := c.do(ctx, http.MethodGet, "/api/v1/webhooks", nil, &list); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(list.Items)
	}
	now := time.Now()
	rows := make([][]string, len(list.Items))
	for i, w := range list.Items {
		oldest, next := "-", "-"
		if !w.OldestPendingAt.IsZero() {
			oldest = now.Sub(w.OldestPendingAt.Time()).Truncate(time.Second).String()
		}
		if !w.NextAttemptAt.IsZero() {
			next = "in " + w.NextAttemptAt.Time().Sub(now).Truncate(time.Second).String()
		}
		lastErr := w.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		rows[i] = []string{w.URL, strconv.Itoa(w.Pending), strconv.Itoa(w.Delivered), strconv.Itoa(w.Expired),
			oldest, strconv.Itoa(w.Attempts), next, lastErr}
	}
	return c.table("URL\tPENDING\tDELIVERED\tEXPIRED\tOLDEST PENDING\tATTEMPTS\tNEXT\tLAST ERROR", rows)
}

// events prints the event stream: one line per event (the webhook body
// with --json), until interrupted or --count events were printed.
func (c *ctl) events(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("events", flag.ContinueOnError)
	count := fl.Int("count", 0, "")
	after := fl.Int64("after", -1, "")
	if _, err := c.parse("events", fl, args, 0); err != nil {
		return err
	}
	path := "/api/v1/events"
	if *after >= 0 {
		path += "?after=" + strconv.FormatInt(*after, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://switchboard"+path, nil)
	if err != nil {
		return err
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
	if res.StatusCode != http.StatusOK {
		e := &apiError{status: res.StatusCode}
		_ = json.NewDecoder(res.Body).Decode(&e.p)
		return e
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var id string
	printed := 0
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			id = v
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if c.json {
			fmt.Fprintln(c.stdout, data)
		} else {
			var m web.EventMessage
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				return fmt.Errorf("event %s: %w", id, err)
			}
			fmt.Fprintf(c.stdout, "%s\t%s\t%s\t%s\n", id, m.Timestamp.Local().Format("15:04:05.000"), m.Type, m.Data)
		}
		printed++
		if *count > 0 && printed >= *count {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("event stream: %w", err)
	}
	return errors.New("the server closed the event stream")
}
