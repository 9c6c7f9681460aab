package sip

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/jsontime"
	"github.com/switchboard/switchboard/internal/store"
)

// Event types the signalling plane emits.
const (
	EventRegistrationCreated = "registration.created"
	EventRegistrationExpired = "registration.expired"
	EventRegistrationRemoved = "registration.removed"
	EventCallStarted         = "call.started"
	EventCallRinging         = "call.ringing"
	EventCallAnswered        = "call.answered"
	EventCallEnded           = "call.ended"
)

// RegistrationEvent is the data of the registration.* events.
type RegistrationEvent struct {
	ID        string          `json:"id"`
	User      string          `json:"user"`
	Contact   string          `json:"contact"`
	Source    string          `json:"source"`
	Transport string          `json:"transport"`
	UserAgent string          `json:"user_agent"`
	ExpiresAt jsontime.Millis `json:"expires_at"`
}

func registrationEvent(b store.Binding) RegistrationEvent {
	return RegistrationEvent{ID: b.ID, User: b.User, Contact: b.Contact, Source: b.Source,
		Transport: b.Transport, UserAgent: b.UserAgent, ExpiresAt: jsontime.Millis(b.Expires)}
}

// CallEvent is the data of the call.* events: the call record as it stands
// when the event happens. The fields that describe the end are set only in
// call.ended. Its times are to the millisecond, as the record is stored
// and /api/v1/records shows it, with three fractional digits (jsontime).
type CallEvent struct {
	ID         string          `json:"id"`
	Caller     string          `json:"caller"`
	Callee     string          `json:"callee"`
	CallerURI  string          `json:"caller_uri"`
	CalleeURI  string          `json:"callee_uri"`
	Direction  string          `json:"direction"`
	Trunk      string          `json:"trunk,omitempty"` // outbound and inbound calls
	DID        string          `json:"did,omitempty"`   // inbound calls: the number dialled
	StartedAt  jsontime.Millis `json:"started_at"`
	AnsweredAt jsontime.Millis `json:"answered_at,omitzero"`
	EndedAt    jsontime.Millis `json:"ended_at,omitzero"`
	DurationMS int64           `json:"duration_ms"`
	Result     string          `json:"result,omitempty"`
	Status     int             `json:"status,omitempty"`
	HangupBy   string          `json:"hangup_by,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Legs       []CallEventLeg  `json:"legs,omitempty"`
}

// CallEventLeg is the media summary of one leg in call.ended.
type CallEventLeg struct {
	Name       string  `json:"name"`
	PacketsIn  uint64  `json:"packets_in"`
	PacketsOut uint64  `json:"packets_out"`
	BytesIn    uint64  `json:"bytes_in"`
	BytesOut   uint64  `json:"bytes_out"`
	Lost       uint64  `json:"lost"`
	JitterMS   float64 `json:"jitter_ms"`
}

// NewCallEvent returns the data of a call event for the record r.
func NewCallEvent(r store.CallRecord) CallEvent { return callEvent(r) }

func callEvent(r store.CallRecord) CallEvent {
	ev := CallEvent{ID: r.ID, Caller: r.Caller, Callee: r.Callee, CallerURI: r.CallerURI, CalleeURI: r.CalleeURI,
		Direction: r.Direction, Trunk: r.Trunk, DID: r.DID, StartedAt: jsontime.Millis(r.StartedAt), AnsweredAt: jsontime.Millis(r.AnsweredAt), EndedAt: jsontime.Millis(r.EndedAt),
		DurationMS: r.Duration.Milliseconds(), Result: r.Result, Status: r.Status, HangupBy: r.HangupBy, Reason: r.Reason}
	for _, l := range r.Legs {
		ev.Legs = append(ev.Legs, CallEventLeg{Name: l.Name, PacketsIn: l.PacketsIn, PacketsOut: l.PacketsOut,
			BytesIn: l.BytesIn, BytesOut: l.BytesOut, Lost: l.Lost, JitterMS: l.Jitter})
	}
	return ev
}

// Committer is told of events that were written to the outbox in the same
// transaction as the state change they report. When Deps.Events implements
// it and the stores implement the *WithEvents writes (as *store.Store
// does), the registrar and call records commit their events with their
// state; otherwise events go to Notify after the write.
type Committer interface {
	Committed(evs ...store.Event)
}

// bindingEventStore writes bindings and their events in one transaction.
type bindingEventStore interface {
	ApplyBindingsWithEvents(ctx context.Context, put []store.Binding, del []string, events ...store.Event) error
}

// bindingThenStore writes bindings and their events without waiting for
// the commit (store.Store.ApplyBindingsThen).
type bindingThenStore interface {
	ApplyBindingsThen(put []store.Binding, del []string, events []store.Event, then func(error))
}

// callEventStore writes call records and their events in one transaction.
type callEventStore interface {
	StartCallWithEvents(ctx context.Context, r store.CallRecord, events ...store.Event) error
	UpdateCallWithEvents(ctx context.Context, r store.CallRecord, events ...store.Event) error
}

// pendingEvent is an event to write with a state change.
type pendingEvent struct {
	typ  string
	data any
}

// encodeEvents turns evs into outbox events. An event that cannot be
// encoded is logged and left out: the state change matters more.
func (s *Server) encodeEvents(evs []pendingEvent) []store.Event {
	out := make([]store.Event, 0, len(evs))
	for _, e := range evs {
		ev, err := store.NewEvent(e.typ, e.data)
		if err != nil {
			s.log.Error("event not recorded", "event_type", e.typ, "error", err)
			continue
		}
		out = append(out, ev)
	}
	return out
}

// notify hands evs to the notifier, for events not written with a state
// change.
func (s *Server) notify(evs []pendingEvent) {
	for _, e := range evs {
		s.events.Notify(e.typ, e.data)
	}
}

// applyBindings writes a registrar change and its events together.
func (s *Server) applyBindings(ctx context.Context, put []store.Binding, del []string, evs ...pendingEvent) error {
	es, ok := s.store.(bindingEventStore)
	cm, ok2 := s.events.(Committer)
	if !ok || !ok2 || len(evs) == 0 {
		if err := s.store.ApplyBindings(ctx, put, del); err != nil {
			return err
		}
		s.notify(evs)
		return nil
	}
	events := s.encodeEvents(evs)
	if err := es.ApplyBindingsWithEvents(ctx, put, del, events...); err != nil {
		return err
	}
	cm.Committed(events...)
	return nil
}

// applyBindingsThen is applyBindings without waiting: then gets the
// outcome on the store's writer goroutine once the change is committed,
// after the events are handed on.
func (s *Server) applyBindingsThen(st bindingThenStore, put []store.Binding, del []string, evs []pendingEvent, then func(error)) {
	cm, ok := s.events.(Committer)
	if !ok || len(evs) == 0 {
		st.ApplyBindingsThen(put, del, nil, func(err error) {
			if err == nil {
				s.notify(evs)
			}
			then(err)
		})
		return
	}
	events := s.encodeEvents(evs)
	st.ApplyBindingsThen(put, del, events, func(err error) {
		if err == nil {
			cm.Committed(events...)
		}
		then(err)
	})
}

// How emit writes the call record along with an event.
const (
	recordNone   = iota // no record change: the event alone
	recordStart         // the record's first write
	recordUpdate        // a later write
)

// callEvents orders one call's events: they are written one at a time, in
// the order they happen, and nothing follows call.ended. A call's events
// come from several goroutines (setup, forks, BYE handling), and an event
// written after call.ended (or a record write of an earlier state after
// the final one) would tell receivers the call came back.
type callEvents struct {
	mu    sync.Mutex
	ended bool
	setup bool // the setup time was measured
	// invited is when the caller's INVITE arrived: setup time counts from
	// it. The record's start can be earlier (a click-to-call's starts
	// when the first phone is rung).
	invited time.Time
}

// emit writes the call's record as write says, with an event of type typ
// carrying the record as it is now, in one transaction when the store
// allows.
func (c *call) emit(ctx context.Context, write int, typ string) {
	c.events.mu.Lock()
	defer c.events.mu.Unlock()
	if c.events.ended {
		return
	}
	if typ == EventCallEnded {
		c.events.ended = true
	}
	// The write completes even when the call's context ends meanwhile.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if typ == EventCallAnswered {
		// The dialogs are stored before the answer is: once a record says
		// answered, a crash can be cleaned up after (orphans.go).
		c.saveDialogs()
	}
	rec := c.snapshot()
	switch {
	case (typ == EventCallRinging || typ == EventCallAnswered) && !c.events.setup:
		c.events.setup = true
		from := c.events.invited
		if from.IsZero() {
			from = rec.StartedAt
		}
		c.s.counters.observeSetup(c.s.now().Sub(from))
	case typ == EventCallEnded:
		c.s.counters.endedMedia(rec.Legs)
	}
	ev := pendingEvent{typ, callEvent(rec)}
	var err error
	switch write {
	case recordNone:
		err = c.s.appendEvents(ctx, ev)
	case recordStart:
		err = c.s.writeCall(ctx, true, rec, ev)
	default:
		err = c.s.writeCall(ctx, false, rec, ev)
	}
	if err != nil {
		c.log.Error("store call record", "event_type", typ, "error", err)
	}
}

// eventAppender writes events that go with no state change.
type eventAppender interface {
	AppendEvents(ctx context.Context, events ...store.Event) error
}

// appendEvents writes events at once when the store allows, so that they
// take their place in order among the events written with state changes;
// otherwise it hands them to Notify.
func (s *Server) appendEvents(ctx context.Context, evs ...pendingEvent) error {
	ap, ok := s.records.(eventAppender)
	cm, ok2 := s.events.(Committer)
	if !ok || !ok2 {
		s.notify(evs)
		return nil
	}
	events := s.encodeEvents(evs)
	if err := ap.AppendEvents(ctx, events...); err != nil {
		s.notify(evs)
		return err
	}
	cm.Committed(events...)
	return nil
}

// writeCall writes a call record (the first write when start) and its
// events together. The events are recorded even if the write fails.
func (s *Server) writeCall(ctx context.Context, start bool, r store.CallRecord, evs ...pendingEvent) error {
	es, ok := s.records.(callEventStore)
	cm, ok2 := s.events.(Committer)
	if !ok || !ok2 {
		var err error
		if start {
			err = s.records.StartCall(ctx, r)
		} else {
			err = s.records.UpdateCall(ctx, r)
		}
		s.notify(evs)
		return err
	}
	events := s.encodeEvents(evs)
	var err error
	if start {
		err = es.StartCallWithEvents(ctx, r, events...)
	} else {
		err = es.UpdateCallWithEvents(ctx, r, events...)
	}
	if err != nil {
		// The events still happened: queue them on their own.
		s.notify(evs)
		return err
	}
	cm.Committed(events...)
	return nil
}
