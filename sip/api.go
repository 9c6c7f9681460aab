package sip

import (
	"context"
	"sort"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// CallInfo is a live call as the control plane sees it.
type CallInfo struct {
	ID         string
	Caller     string
	Callee     string
	State      string // "ringing" or "answered"
	StartedAt  time.Time
	AnsweredAt time.Time
	Legs       []LegInfo
	// Codecs are the audio formats offered while ringing, those in use
	// once answered, e.g. PCMU/8000.
	Codecs []string
	// Trunk is the trunk the call goes out or came in through (empty for
	// internal calls); DID the provider's number an inbound call dialled.
	Trunk, DID string
}

// LegInfo is one leg of a live call.
type LegInfo struct {
	Name      string // "caller" or "callee"
	RelayPort int
	Remote    string // where the relay sends this leg's audio
	Stats     MediaStats
}

func (c *call) info() CallInfo {
	c.mu.Lock()
	ci := CallInfo{ID: c.id, Caller: c.rec.Caller, Callee: c.rec.Callee, StartedAt: c.rec.StartedAt, AnsweredAt: c.rec.AnsweredAt, State: "ringing"}
	if c.answered {
		ci.State = "answered"
	}
	ci.Codecs = append([]string(nil), c.codecs...)
	ci.Trunk, ci.DID = c.rec.Trunk, c.rec.DID
	c.mu.Unlock()
	if c.media != nil {
		for _, leg := range []Leg{LegA, LegB} {
			st := c.media.Stats(leg)
			li := LegInfo{Name: leg.String(), RelayPort: c.media.Port(leg), Stats: st}
			if st.Latched.IsValid() {
				li.Remote = st.Latched.String()
			}
			ci.Legs = append(ci.Legs, li)
		}
	}
	return ci
}

// Calls lists the calls in progress, oldest first.
func (s *Server) Calls() []CallInfo {
	calls := s.calls.all()
	out := make([]CallInfo, 0, len(calls))
	placed := make(map[string]bool, len(calls))
	for _, c := range calls {
		out = append(out, c.info())
		placed[c.id] = true
	}
	// Click-to-calls whose caller's devices still ring are calls too.
	for _, o := range s.orig.all() {
		if ci, ok := o.callInfo(); ok && !placed[o.id] {
			out = append(out, ci)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out
}

// Call returns one call in progress.
func (s *Server) Call(id string) (CallInfo, bool) {
	s.calls.mu.Lock()
	c, ok := s.calls.byID[id]
	s.calls.mu.Unlock()
	if !ok {
		if o, ok := s.orig.get(id); ok {
			return o.callInfo()
		}
		return CallInfo{}, false
	}
	return c.info(), true
}

// Hangup ends a call in progress with BYE on both legs (or a final
// response to a caller still waiting); false when there is no such call.
func (s *Server) Hangup(id string) bool {
	s.calls.mu.Lock()
	c, ok := s.calls.byID[id]
	s.calls.mu.Unlock()
	if !ok {
		// A click-to-call still ringing its caller's devices: they are
		// CANCELled and its record says so.
		if o, ok := s.orig.get(id); ok {
			o.end("operator")
			return true
		}
		return false
	}
	c.end(0, "system", "hung up by operator")
	return true
}

// RemoveBinding deletes one registration by its ID; false when there is no
// such binding.
func (s *Server) RemoveBinding(ctx context.Context, id string) (bool, error) {
	return s.reg.removeBinding(ctx, id)
}

func (r *registrar) removeBinding(ctx context.Context, id string) (bool, error) {
	var b store.Binding
	found := false
	r.mu.RLock()
	for _, e := range r.exp {
		if e.b.ID == id {
			b, found = e.b, true
			break
		}
	}
	r.mu.RUnlock()
	if !found {
		return false, nil
	}
	l := r.lockUser(b.User)
	defer l.Unlock()
	r.mu.RLock()
	still := r.findLocked(b.User, id) != nil
	r.mu.RUnlock()
	if !still {
		return false, nil // removed meanwhile
	}
	if err := r.s.applyBindings(ctx, nil, []string{id}, pendingEvent{EventRegistrationRemoved, registrationEvent(b)}); err != nil {
		return false, err
	}
	r.mu.Lock()
	_, ok := r.removeLocked(b.User, id)
	r.mu.Unlock()
	if ok {
		r.s.log.Info("unregistered by operator", "user", b.User, "contact", b.Contact)
	}
	return ok, nil
}
