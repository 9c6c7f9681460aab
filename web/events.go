package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/switchboard/switchboard/internal/jsontime"
)

// Event is one event of the application, as the event stream sends it.
type Event struct {
	Seq  int64           // position in the event log; the stream's event id
	ID   string          // unique ID, the webhook-id of its deliveries
	Type string          // such as "call.ended"
	Time time.Time       // when it happened
	Data json.RawMessage // the event's object
}

// Subscription is a live feed of events.
type Subscription interface {
	// Next returns the next event. It fails when ctx ends, or with
	// ErrSubscriptionLost when the subscriber fell too far behind (it may
	// catch up from EventLog and subscribe again).
	Next(ctx context.Context) (Event, error)
	// Close ends the subscription; it is idempotent.
	Close()
}

// ErrSubscriptionLost reports a subscription dropped for being too slow.
var ErrSubscriptionLost = errors.New("web: event subscription lost")

// EventLog is the application's event feed, for /api/v1/events. It is
// optional: without one the stream answers 503.
type EventLog interface {
	// Subscribe returns a feed of the events written from now on.
	Subscribe(ctx context.Context) Subscription
	// EventsAfter returns up to limit stored events with Seq above after,
	// in order.
	EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error)
}

// EventMessage is the data of each message of the event stream: the
// body a webhook receives.
type EventMessage struct {
	Type      string          `json:"type" doc:"Event type, such as call.ended."`
	Timestamp time.Time       `json:"timestamp" doc:"When the event happened: RFC 3339 in UTC with exactly three fractional digits (milliseconds)." example:"2026-11-25T23:07:41.600Z"`
	Data      json.RawMessage `json:"data" doc:"The event's object: the registration or call."`
}

// MarshalJSON writes the timestamp with exactly three fractional digits
// (jsontime), as webhook bodies have it.
func (m EventMessage) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp jsontime.Millis `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{m.Type, jsontime.Millis(m.Timestamp), m.Data})
}

const eventsPath = "/api/v1/events"

// Stream tuning.
const (
	// replayPage is how many stored events one read of a replay returns.
	replayPage = 500
	// maxReplay bounds how many stored events a reconnecting client is
	// sent before it gets live events.
	maxReplay = 10000
	// keepAlive is how often an idle stream sends a comment, so that
	// proxies and clients see it is alive.
	keepAlive = 15 * time.Second
)

const eventsDescription = `A Server-Sent Events stream of every event, as they happen: ` +
	"`registration.created`, `registration.expired`, `registration.removed`, `call.started`, `call.ringing`, " +
	"`call.answered`, `call.ended`, `trunk.up`, `trunk.down`." + `

Each message has ` + "`id:`" + ` (the event's position in the event log), ` + "`event:`" + ` (its type) and
` + "`data:`" + ` (one line of JSON, the body a webhook receives: type, timestamp, data). A client
that reconnects with ` + "`Last-Event-ID`" + ` (or ` + "`?after=`" + `) first gets the events it missed, as long
as they are still stored, then live ones. A comment line is sent every 15 s while idle.`

// registerEvents documents the event stream in the OpenAPI document and
// mounts its handler; the stream is not a huma operation because it is not
// a single JSON body.
func (s *Server) registerEvents(api huma.API) {
	o := op("stream-events", http.MethodGet, eventsPath, tagEvents, "Stream events (Server-Sent Events)", http.StatusUnprocessableEntity, http.StatusServiceUnavailable)
	o.Description = eventsDescription
	msg := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[EventMessage](), true, "")
	o.Parameters = []*huma.Param{
		{Name: "Last-Event-ID", In: "header", Description: "id of the last event received: the stream starts after it.", Schema: &huma.Schema{Type: huma.TypeInteger, Minimum: ptr(0.0)}},
		{Name: "after", In: "query", Description: "Like Last-Event-ID, for clients that cannot set headers (EventSource in a browser sends it only on reconnect).", Schema: &huma.Schema{Type: huma.TypeInteger, Minimum: ptr(0.0)}},
	}
	errSchema := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "")
	o.Responses = map[string]*huma.Response{
		"200": {Description: "An endless stream of events.", Content: map[string]*huma.MediaType{
			"text/event-stream": {Schema: &huma.Schema{Type: huma.TypeString,
				Description: "Server-Sent Events; the data line of each message is an EventMessage (x-event-data).",
				Extensions:  map[string]any{"x-event-data": msg}}},
		}},
	}
	for _, code := range o.Errors {
		o.Responses[strconv.Itoa(code)] = &huma.Response{Description: http.StatusText(code),
			Content: map[string]*huma.MediaType{"application/problem+json": {Schema: errSchema}}}
	}
	o.Errors = nil
	api.OpenAPI().AddOperation(&o)
	s.mux.HandleFunc("GET "+eventsPath, s.streamEvents)
	registerWebhookDoc(api, msg)
}

// registerWebhookDoc describes, in the document's webhooks section, the
// request Switchboard sends to each configured webhook URL.
func registerWebhookDoc(api huma.API, msg *huma.Schema) {
	header := func(name, doc string) *huma.Param {
		return &huma.Param{Name: name, In: "header", Required: true, Description: doc, Schema: &huma.Schema{Type: huma.TypeString}}
	}
	doc := api.OpenAPI()
	if doc.Webhooks == nil {
		doc.Webhooks = map[string]*huma.PathItem{}
	}
	doc.Webhooks["event"] = &huma.PathItem{Post: &huma.Operation{
		OperationID: "webhook-event",
		Tags:        []string{tagEvents},
		Summary:     "An event, sent to each webhook URL in the config file",
		Description: "One POST per event, signed per the Standard Webhooks convention: the signature is " +
			"`v1,` and the base64 HMAC-SHA256, keyed with the webhook's secret (for a secret that starts with `whsec_`, the base64-decoded rest), of `webhook-id.webhook-timestamp.body`. " +
			"Any 2xx answer is a delivery; anything else, or no answer, is retried with backoff until " +
			"`events.retry_period` has passed. Events of one call are delivered in order.",
		Parameters: []*huma.Param{
			header("webhook-id", "The event's ID; the same on every retry, so receivers can drop duplicates."),
			header("webhook-timestamp", "When this attempt was signed, in Unix seconds."),
			header("webhook-signature", "`v1,<base64 HMAC-SHA256>`; see the description."),
		},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"application/json": {Schema: msg},
		}},
		Responses: map[string]*huma.Response{
			"2XX":     {Description: "Delivered."},
			"default": {Description: "Not delivered: retried later."},
		},
		Security: []map[string][]string{},
	}}
}

func ptr[T any](v T) *T { return &v }

// problemJSON writes an RFC 9457 problem details answer outside huma.
func problemJSON(w http.ResponseWriter, status int, detail string, errs ...*huma.ErrorDetail) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(huma.ErrorModel{Title: http.StatusText(status), Status: status, Detail: detail, Errors: errs})
}

// streamEvents serves /api/v1/events.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	if s.events == nil {
		problemJSON(w, http.StatusServiceUnavailable, "the event stream is not available")
		return
	}
	after := int64(-1) // live only
	for _, p := range []struct{ loc, v string }{
		{"header.Last-Event-ID", r.Header.Get("Last-Event-ID")},
		{"query.after", r.URL.Query().Get("after")},
	} {
		if p.v == "" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(p.v), 10, 64)
		if err != nil || n < 0 {
			problemJSON(w, http.StatusUnprocessableEntity, "validation failed",
				&huma.ErrorDetail{Message: "must be the id of an event (an integer, 0 or more)", Location: p.loc, Value: p.v})
			return
		}
		after = n
		break
	}
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.stopCtx, cancel) // the server is stopping
	defer stop()

	// Subscribe before replaying, so that nothing falls between the two;
	// what both deliver is sent once.
	sub := s.events.Subscribe(ctx)
	defer sub.Close()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": switchboard events\nretry: 2000\n\n"); err != nil {
		return
	}
	_ = rc.Flush()

	last := after
	if after >= 0 {
		for sent := 0; sent < maxReplay; {
			evs, err := s.events.EventsAfter(ctx, last, replayPage)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("event stream replay failed", "error", err)
				}
				return
			}
			for _, e := range evs {
				if writeEvent(w, e) != nil {
					return
				}
				last = e.Seq
			}
			sent += len(evs)
			if len(evs) < replayPage {
				break
			}
		}
		if rc.Flush() != nil {
			return
		}
	}

	for {
		// Next blocks; wait for it with a keep-alive timer.
		nctx, ncancel := context.WithTimeout(ctx, keepAlive)
		e, err := sub.Next(nctx)
		ncancel()
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			continue
		default:
			// The client left, the server stops, or the subscriber fell
			// behind: the client reconnects with Last-Event-ID.
			return
		}
		if e.Seq <= last {
			continue // replayed already
		}
		if writeEvent(w, e) != nil || rc.Flush() != nil {
			return
		}
		last = e.Seq
	}
}

// writeEvent writes one SSE message.
func writeEvent(w http.ResponseWriter, e Event) error {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	b, err := json.Marshal(EventMessage{Type: e.Type, Timestamp: e.Time.UTC(), Data: data})
	if err != nil {
		return err
	}
	// json.Marshal output has no newline: one data line.
	_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b)
	return err
}
