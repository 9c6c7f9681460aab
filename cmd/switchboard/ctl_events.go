package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strconv"
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
			oldest = now.Sub(w.OldestPendingAt).Truncate(time.Second).String()
		}
		if !w.NextAttemptAt.IsZero() {
			next = "in " + w.NextAttemptAt.Sub(now).Truncate(time.Second).String()
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
