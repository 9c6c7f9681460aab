package sip

import (
	"container/heap"
	"context"
	"fmt"
	"hash/maphash"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/store"
)

// registrar keeps the location service (RFC 3261 §10): every user's
// bindings, in memory for routing and in the store for restarts. A binding
// is acknowledged with 200 OK only after the store has committed it.
type registrar struct {
	s *Server

	// userLocks serialise changes to one user's bindings, across the store
	// commit, so that the store and memory never disagree. Users share
	// them by hash; with 4096, two REGISTERs in flight rarely share one (a
	// UDP REGISTER that finds its lock taken goes to a worker,
	// stateless.go).
	seed      maphash.Seed
	userLocks [4096]sync.Mutex

	// byUser holds each user's bindings: a short slice (at most
	// MaxContacts), which costs far less memory per registration than a
	// map per user.
	mu     sync.RWMutex
	byUser map[string][]*entry
	exp    expiryHeap
	wake   chan struct{}
	// udpSources counts the UDP bindings registered from each address,
	// which stays pinned to the listening socket while any does
	// (udppin.go).
	udpSources map[string]int

	stopOnce sync.Once
	stopped  chan struct{}
}

type entry struct {
	b   store.Binding
	idx int // position in the expiry heap
}

func newRegistrar(s *Server) *registrar {
	return &registrar{
		s:          s,
		seed:       maphash.MakeSeed(),
		byUser:     map[string][]*entry{},
		wake:       make(chan struct{}, 1),
		udpSources: map[string]int{},
		stopped:    make(chan struct{}),
	}
}

// load restores the bindings kept by the store; those that expired while the
// server was down are deleted.
func (r *registrar) load(ctx context.Context) error {
	all, err := r.s.store.Bindings(ctx)
	if err != nil {
		return fmt.Errorf("sip: load bindings: %w", err)
	}
	now := r.s.now()
	var stale []string
	r.mu.Lock()
	for _, b := range all {
		// A WebSocket binding died with its connection.
		if !b.Expires.After(now) || isConnectionTransport(b.Transport) {
			stale = append(stale, b.ID)
			continue
		}
		r.insertLocked(b)
	}
	n := r.exp.Len()
	r.mu.Unlock()
	if len(stale) > 0 {
		if err := r.s.store.ApplyBindings(ctx, nil, stale); err != nil {
			return fmt.Errorf("sip: drop expired bindings: %w", err)
		}
	}
	r.s.log.Info("registrations restored", "bindings", n, "expired_while_down", len(stale))
	return nil
}

func (r *registrar) lockUser(user string) *sync.Mutex {
	m := r.userLock(user)
	m.Lock()
	return m
}

// userLock is the lock that serialises changes to user's bindings.
func (r *registrar) userLock(user string) *sync.Mutex {
	return &r.userLocks[maphash.String(r.seed, user)%uint64(len(r.userLocks))]
}

// findLocked returns the binding id of user, nil if there is none.
func (r *registrar) findLocked(user, id string) *entry {
	for _, e := range r.byUser[user] {
		if e.b.ID == id {
			return e
		}
	}
	return nil
}

func (r *registrar) insertLocked(b store.Binding) {
	if e := r.findLocked(b.User, b.ID); e != nil {
		if e.b.Source != b.Source || e.b.Transport != b.Transport {
			r.sourceGoneLocked(e.b)
			r.sourceAddedLocked(b)
		}
		e.b = b
		heap.Fix(&r.exp, e.idx)
		return
	}
	r.sourceAddedLocked(b)
	e := &entry{b: b}
	r.byUser[b.User] = append(r.byUser[b.User], e)
	heap.Push(&r.exp, e)
}

// sourceAddedLocked counts a UDP binding's source and pins it.
func (r *registrar) sourceAddedLocked(b store.Binding) {
	if !isUDP(b.Transport) || b.Source == "" {
		return
	}
	r.udpSources[b.Source]++
	r.s.pinUDP(b.Source)
}

// sourceGoneLocked uncounts a UDP binding's source, unpinning it when no
// binding is left there.
func (r *registrar) sourceGoneLocked(b store.Binding) {
	if !isUDP(b.Transport) || b.Source == "" {
		return
	}
	if n := r.udpSources[b.Source] - 1; n > 0 {
		r.udpSources[b.Source] = n
		return
	}
	delete(r.udpSources, b.Source)
	r.s.unpinUDP(b.Source)
}

func (r *registrar) removeLocked(user, id string) (store.Binding, bool) {
	es := r.byUser[user]
	for i, e := range es {
		if e.b.ID != id {
			continue
		}
		es = slices.Delete(es, i, i+1)
		if len(es) == 0 {
			delete(r.byUser, user)
		} else {
			r.byUser[user] = es
		}
		heap.Remove(&r.exp, e.idx)
		r.sourceGoneLocked(e.b)
		return e.b, true
	}
	return store.Binding{}, false
}

func (r *registrar) current(user string) []store.Binding {
	r.mu.RLock()
	defer r.mu.RUnlock()
	es := r.byUser[user]
	out := make([]store.Binding, 0, len(es))
	for _, e := range es {
		out = append(out, e.b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (r *registrar) snapshot(user string) []store.Binding {
	if user != "" {
		return r.current(user)
	}
	r.mu.RLock()
	out := make([]store.Binding, 0, r.exp.Len())
	for _, e := range r.exp {
		out = append(out, e.b)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// run removes bindings the moment they expire: it sleeps until the earliest
// expiry in the heap, not on a fixed sweep.
func (r *registrar) run(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := r.expireDue(ctx)
		if next > 0 {
			t.Reset(next)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.stopped:
			return nil
		case <-r.wake:
		case <-t.C:
		}
	}
}

func (r *registrar) stop() { r.stopOnce.Do(func() { close(r.stopped) }) }

// expireDue deletes every binding whose time has come and returns how long
// to sleep until the next one (an hour when there is none).
func (r *registrar) expireDue(ctx context.Context) time.Duration {
	for {
		now := r.s.now()
		r.mu.RLock()
		var due *store.Binding
		wait := time.Hour
		if r.exp.Len() > 0 {
			b := r.exp[0].b
			if !b.Expires.After(now) {
				due = &b
			} else {
				wait = b.Expires.Sub(now)
			}
		}
		r.mu.RUnlock()
		if due == nil {
			return wait
		}
		r.expire(ctx, *due)
	}
}

func (r *registrar) expire(ctx context.Context, b store.Binding) {
	l := r.lockUser(b.User)
	defer l.Unlock()
	r.mu.RLock()
	e := r.findLocked(b.User, b.ID)
	still := e != nil && !e.b.Expires.After(r.s.now())
	r.mu.RUnlock()
	if !still {
		return // refreshed meanwhile
	}
	ev := pendingEvent{EventRegistrationExpired, registrationEvent(b)}
	if err := r.s.applyBindings(context.WithoutCancel(ctx), nil, []string{b.ID}, ev); err != nil {
		r.s.log.Error("delete expired binding", "user", b.User, "error", err)
		// Drop it from memory anyway; the next start-up deletes it.
		r.s.notify([]pendingEvent{ev})
	}
	r.mu.Lock()
	r.removeLocked(b.User, b.ID)
	r.mu.Unlock()
	r.s.log.Info("registration expired", "user", b.User, "contact", b.Contact, "source", b.Source)
}

func (r *registrar) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *registrar) removeUser(ctx context.Context, user string) error {
	l := r.lockUser(user)
	defer l.Unlock()
	cur := r.current(user)
	if len(cur) == 0 {
		return nil
	}
	ids := make([]string, len(cur))
	evs := make([]pendingEvent, len(cur))
	for i, b := range cur {
		ids[i] = b.ID
		evs[i] = pendingEvent{EventRegistrationRemoved, registrationEvent(b)}
	}
	if err := r.s.applyBindings(ctx, nil, ids, evs...); err != nil {
		return err
	}
	r.mu.Lock()
	for _, id := range ids {
		r.removeLocked(user, id)
	}
	r.mu.Unlock()
	return nil
}

// handleRegister implements RFC 3261 §10.3.
func (s *Server) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, ok, _ := s.registerAuth(ctx, req, tx, s.users.get)
	if !ok {
		return
	}
	bindings, err := s.reg.register(ctx, req, u.Name)
	s.registerAnswer(req, tx, bindings, err)
}

// registerOnReader is handleRegister for the goroutine that read req from
// a UDP socket, which must not wait: it answers at once (a refusal or a
// challenge), or queues the binding's write and answers from the store's
// writer goroutine once it is committed. Either way it calls after once
// done and returns true. It returns false, having answered nothing, when
// handling req would wait: its user is not in the user cache, or another
// REGISTER of the user is being committed, or the store cannot write
// without waiting; then a worker handles it (handleRegister).
func (s *Server) registerOnReader(req *sip.Request, tx sip.ServerTransaction, after func()) bool {
	u, ok, wait := s.registerAuth(context.Background(), req, tx, s.users.cached)
	if wait {
		return false
	}
	if !ok {
		after()
		return true
	}
	// The REGISTER counts as pending (Limits.MaxPending) until answered,
	// as it does while a worker waits for its commit.
	s.guard.pending.Add(1)
	return s.reg.registerThen(req, u.Name, func(bindings []store.Binding, err error) {
		s.registerAnswer(req, tx, bindings, err)
		s.guard.pending.Add(-1)
		after()
	}, func() { s.guard.pending.Add(-1) })
}

// registerAuth checks what handleRegister checks before changing bindings:
// the mandatory headers, the domain and the credentials, which must be the
// user's own address. It answers a request that fails them. It reports
// wait, having answered nothing, when lookup does (errWouldWait).
func (s *Server) registerAuth(ctx context.Context, req *sip.Request, tx sip.ServerTransaction,
	lookup userLookup) (u store.User, ok, wait bool) {
	to := req.To()
	if to == nil || req.From() == nil || req.CallID() == nil || req.CSeq() == nil {
		s.respond(tx, req, 400, "Missing Mandatory Header")
		return u, false, false
	}
	if !s.isOurHost(req.Recipient.Host) || !s.isOurHost(to.Address.Host) {
		s.respond(tx, req, 403, "Domain Not Served")
		return u, false, false
	}
	u, ok, wait = s.authenticateWith(ctx, req, tx, false, lookup)
	if !ok {
		return u, false, wait
	}
	if to.Address.User != u.Name {
		s.log.Info("registration refused: user may only register their own address",
			"user", u.Name, "to", to.Address.User, "source", req.Source())
		s.respond(tx, req, 403, "Forbidden: Not Your Address")
		return u, false, false
	}
	return u, true, false
}

// registerAnswer answers a REGISTER with the user's bindings after the
// change, or with err.
func (s *Server) registerAnswer(req *sip.Request, tx sip.ServerTransaction, bindings []store.Binding, err error) {
	if err != nil {
		s.respondErr(tx, req, err)
		return
	}
	s.respond(tx, req, 200, "OK", s.contactHeaders(bindings)...)
}

// change is the effect of one REGISTER on a user's bindings.
type change struct {
	put     []store.Binding
	del     []string
	created map[string]bool
}

// register applies the request's contacts to the user's bindings and
// returns the bindings after the change.
func (r *registrar) register(ctx context.Context, req *sip.Request, user string) ([]store.Binding, error) {
	hdrExpires, contacts, err := registerHeaders(req)
	if err != nil {
		return nil, err
	}
	l := r.lockUser(user)
	defer l.Unlock()
	cur := r.current(user)
	p, err := r.plan(req, user, cur, contacts, hdrExpires)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return cur, nil
	}
	if err := r.s.applyBindings(ctx, p.ch.put, p.ch.del, p.evs...); err != nil {
		return nil, fmt.Errorf("save bindings of %s: %w", user, err)
	}
	r.applied(user, p)
	return r.current(user), nil
}

// registerThen is register without waiting for the store: it queues the
// change and calls done with the outcome, once, on the store's writer
// goroutine once the change is committed, or at once when there is
// nothing to write. It returns false, having done nothing but call
// declined, when it would have to wait: the user's lock is held (another
// change of the user's bindings is being committed) or the store cannot
// write without waiting. The user's lock is held until done is called.
func (r *registrar) registerThen(req *sip.Request, user string, done func([]store.Binding, error), declined func()) bool {
	st, ok := r.s.store.(bindingThenStore)
	if !ok {
		declined()
		return false
	}
	hdrExpires, contacts, err := registerHeaders(req)
	if err != nil {
		done(nil, err)
		return true
	}
	l := r.userLock(user)
	if !l.TryLock() {
		declined()
		return false
	}
	cur := r.current(user)
	p, err := r.plan(req, user, cur, contacts, hdrExpires)
	if err != nil || p == nil {
		l.Unlock()
		if err != nil {
			cur = nil
		}
		done(cur, err)
		return true
	}
	r.s.applyBindingsThen(st, p.ch.put, p.ch.del, p.evs, func(err error) {
		if err != nil {
			l.Unlock()
			done(nil, fmt.Errorf("save bindings of %s: %w", user, err))
			return
		}
		r.applied(user, p)
		after := r.current(user)
		l.Unlock()
		done(after, nil)
	})
	return true
}

// registerHeaders reads the Expires header (-1 when absent) and the
// Contact headers of a REGISTER.
func registerHeaders(req *sip.Request) (int, []sip.Header, error) {
	hdrExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		v, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
		if err != nil {
			return 0, nil, statusErr(400, "Bad Expires Header")
		}
		hdrExpires = int(min(v, 1<<31-1))
	}
	return hdrExpires, headersNamed(req, "Contact"), nil
}

// registerPlan is what one REGISTER changes: the bindings to write and
// delete, and the events that go with them.
type registerPlan struct {
	ch       change
	existing map[string]store.Binding // the user's bindings before
	evs      []pendingEvent
	now      time.Time
}

// plan works out the change req asks of the user's current bindings cur;
// the user's lock is held. It returns nil when there is nothing to write
// (a query, or nothing changes).
func (r *registrar) plan(req *sip.Request, user string, cur []store.Binding, contacts []sip.Header, hdrExpires int) (*registerPlan, error) {
	cfg := r.s.cfg
	if len(contacts) == 0 {
		return nil, nil // a query (RFC 3261 §10.2.3)
	}

	now := r.s.now()
	callID := req.CallID().Value()
	cseq := req.CSeq().SeqNo
	existing := make(map[string]store.Binding, len(cur))
	for _, b := range cur {
		existing[b.ID] = b
	}
	var ch change
	ch.created = map[string]bool{}

	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return nil, statusErr(400, "Bad Contact Header")
		}
		if c.Address.Wildcard {
			// RFC 3261 §10.2.2: "*" only alone and with Expires: 0.
			if len(contacts) != 1 || hdrExpires != 0 {
				return nil, statusErr(400, "Wildcard Contact Needs Expires 0")
			}
			for _, b := range cur {
				if b.CallID == callID && cseq < b.CSeq {
					return nil, statusErr(400, "CSeq Out of Order")
				}
				ch.del = append(ch.del, b.ID)
			}
			break
		}
		scheme := strings.ToLower(c.Address.Scheme)
		if (scheme != "sip" && scheme != "sips") || c.Address.Host == "" {
			return nil, statusErr(400, "Bad Contact URI")
		}
		exp := hdrExpires
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return nil, statusErr(400, "Bad Contact Expires")
			}
			exp = int(min(n, 1<<31-1))
		}
		if exp < 0 {
			exp = int(cfg.DefaultExpires / time.Second)
		}
		b := r.bindingFor(req, user, c)
		if old, ok := existing[b.ID]; ok && old.CallID == callID && cseq < old.CSeq {
			return nil, statusErr(400, "CSeq Out of Order")
		}
		if exp == 0 {
			if _, ok := existing[b.ID]; ok {
				ch.del = append(ch.del, b.ID)
			}
			continue
		}
		if time.Duration(exp)*time.Second < cfg.MinExpires {
			return nil, &StatusError{Code: 423, Reason: "Interval Too Brief",
				Header: [2]string{"Min-Expires", strconv.Itoa(int(cfg.MinExpires / time.Second))}}
		}
		d := min(time.Duration(exp)*time.Second, cfg.MaxExpires)
		b.Expires = now.Add(d)
		b.UpdatedAt = now
		b.CallID = callID
		b.CSeq = cseq
		if _, ok := existing[b.ID]; !ok {
			ch.created[b.ID] = true
		}
		ch.put = append(ch.put, b)
	}

	after := len(cur) - len(ch.del) + len(ch.created)
	if after > cfg.MaxContacts {
		return nil, statusErr(403, fmt.Sprintf("Too Many Contacts (limit %d)", cfg.MaxContacts))
	}
	if len(ch.put) == 0 && len(ch.del) == 0 {
		return nil, nil
	}
	var evs []pendingEvent
	for _, b := range ch.put {
		if ch.created[b.ID] {
			evs = append(evs, pendingEvent{EventRegistrationCreated, registrationEvent(b)})
		}
	}
	for _, id := range ch.del {
		if b, ok := existing[id]; ok {
			evs = append(evs, pendingEvent{EventRegistrationRemoved, registrationEvent(b)})
		}
	}
	return &registerPlan{ch: ch, existing: existing, evs: evs, now: now}, nil
}

// applied brings the bindings in memory in line with p once the store has
// committed it; the user's lock is held.
func (r *registrar) applied(user string, p *registerPlan) {
	ch, now := p.ch, p.now
	removed := make([]store.Binding, 0, len(ch.del))
	r.mu.Lock()
	for _, id := range ch.del {
		if b, ok := r.removeLocked(user, id); ok {
			removed = append(removed, b)
		}
	}
	for _, b := range ch.put {
		r.insertLocked(b)
	}
	r.mu.Unlock()
	r.poke()

	log := r.s.log
	for _, b := range ch.put {
		if ch.created[b.ID] {
			log.Info("registered", "user", user, "contact", b.Contact, "source", b.Source,
				"transport", b.Transport, "expires_in", int(b.Expires.Sub(now)/time.Second), "user_agent", b.UserAgent)
		} else if log.Enabled(context.Background(), -4) {
			log.Debug("registration refreshed", "user", user, "contact", b.Contact, "source", b.Source)
		}
	}
	for _, b := range removed {
		log.Info("unregistered", "user", user, "contact", b.Contact, "source", b.Source)
	}
}

// bindingFor builds the binding a Contact asks for. Its identity is the
// instance and reg-id when the UA sends them (RFC 5626 §6), so a device that
// changes address replaces its old binding; otherwise the contact URI.
func (r *registrar) bindingFor(req *sip.Request, user string, c *sip.ContactHeader) store.Binding {
	b := store.Binding{
		User:      user,
		Contact:   c.Address.String(),
		Source:    req.Source(),
		Transport: r.s.bindingTransport(req),
	}
	if inst, ok := c.Params.Get("+sip.instance"); ok {
		b.Instance = strings.Trim(inst, `"`)
	}
	if rid, ok := c.Params.Get("reg-id"); ok {
		b.RegID, _ = strconv.Atoi(rid)
	}
	if q, ok := c.Params.Get("q"); ok {
		b.Q, _ = strconv.ParseFloat(q, 64)
	}
	if h := req.GetHeader("User-Agent"); h != nil {
		b.UserAgent = h.Value()
		if len(b.UserAgent) > 200 {
			b.UserAgent = b.UserAgent[:200]
		}
	}
	if b.Instance != "" {
		b.ID = user + "|" + b.Instance + "|" + strconv.Itoa(b.RegID)
	} else {
		b.ID = user + "|" + b.Contact
	}
	return b
}

// contactHeaders lists the bindings for a 200 OK, each with the seconds it
// has left (RFC 3261 §10.3 step 8).
func (s *Server) contactHeaders(bs []store.Binding) []sip.Header {
	now := s.now()
	hdrs := make([]sip.Header, 0, len(bs)+1)
	for _, b := range bs {
		left := int((b.Expires.Sub(now) + time.Second/2) / time.Second)
		v := "<" + b.Contact + ">;expires=" + strconv.Itoa(max(left, 0))
		if b.Instance != "" {
			v += `;+sip.instance="` + b.Instance + `"`
			if b.RegID != 0 {
				v += ";reg-id=" + strconv.Itoa(b.RegID)
			}
		}
		hdrs = append(hdrs, sip.NewHeader("Contact", v))
	}
	hdrs = append(hdrs, sip.NewHeader("Date", now.UTC().Format(http.TimeFormat)))
	return hdrs
}

// expiryHeap orders entries by expiry time.
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].b.Expires.Before(h[j].b.Expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}
