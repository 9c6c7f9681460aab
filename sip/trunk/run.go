package trunk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/icholy/digest"
)

// Run keeps the registration (when configured) and pings the provider
// until ctx ends; then it removes the registration. It returns nil.
func (p *Provider) Run(ctx context.Context, host Host) error {
	p.mu.Lock()
	p.notify = host.Notify
	p.mu.Unlock()
	var wg sync.WaitGroup
	if p.cfg.Register {
		wg.Go(func() { p.registerLoop(ctx, host) })
	}
	if p.cfg.PingInterval > 0 {
		wg.Go(func() { p.pingLoop(ctx, host) })
	}
	wg.Wait()
	return nil
}

// registerLoop registers, refreshes before expiry, and retries with
// exponential back-off while the provider fails (RFC 3261 §10.2.4).
func (p *Provider) registerLoop(ctx context.Context, host Host) {
	reg := &registration{callID: uuid.NewString(), tag: sip.GenerateTagN(16)}
	backoff := p.cfg.RetryMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			p.unregister(ctx, host, reg)
			return
		case <-timer.C:
		case <-p.kick:
		}
		granted, err := p.register(ctx, host, reg, p.cfg.RegisterExpires)
		if ctx.Err() != nil {
			continue // unregister above
		}
		var wait time.Duration
		if err != nil {
			p.failure("register", err)
			wait = jitter(backoff)
			backoff = min(2*backoff, p.cfg.RetryMax)
		} else {
			backoff = p.cfg.RetryMin
			until := p.now().Add(granted)
			p.log.Info("registered", "expires_in", int(granted/time.Second))
			p.setRegistered(true, until)
			p.success("register")
			wait = refreshAfter(granted)
			if reg.again {
				reg.again = false
				wait = 0
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// refreshAfter is when to refresh a registration granted for d: well
// before it lapses, leaving time for a retry or two.
func refreshAfter(d time.Duration) time.Duration {
	r := d * 8 / 10
	if d-r > time.Minute {
		r = d - time.Minute
	}
	return max(r, 500*time.Millisecond)
}

// registration is the state REGISTERs share: one Call-ID and increasing
// CSeq numbers (RFC 3261 §10.2.4).
type registration struct {
	callID string
	tag    string
	cseq   uint32
	ok     bool // the provider holds a binding of ours
	// public is the address the provider sees us at, when a NAT makes it
	// differ from ours; again asks for a new REGISTER with it at once.
	public netip.AddrPort
	again  bool
}

// register sends one REGISTER asking for expires, answering digest
// challenges, and returns the lifetime the provider granted.
func (p *Provider) register(ctx context.Context, host Host, reg *registration, expires time.Duration) (time.Duration, error) {
	p.resolve(ctx)
	local := host.Contact(p.cfg.Transport)
	contact := local
	contact.User = p.cfg.Username
	if reg.public.IsValid() {
		contact.Host, contact.Port = reg.public.Addr().String(), int(reg.public.Port())
	}
	var res *sip.Response
	var err error
	var authz sip.Header
	for attempt := 0; attempt < 4; attempt++ {
		req := p.newRegister(reg, local, contact, expires)
		if authz != nil {
			req.AppendHeader(authz)
		}
		res, err = p.do(ctx, host, req)
		if err != nil {
			return 0, err
		}
		switch res.StatusCode {
		case 401, 407:
			if authz != nil && !staleChallenge(res) {
				return 0, fmt.Errorf("REGISTER: credentials refused (%d %s): check username and password", res.StatusCode, res.Reason)
			}
			if authz, err = p.authorize(req, res); err != nil {
				return 0, fmt.Errorf("REGISTER: %w", err)
			}
			continue
		case 423:
			// RFC 3261 §10.2.8: ask again for at least Min-Expires.
			if h := res.GetHeader("Min-Expires"); h != nil {
				if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 && time.Duration(n)*time.Second > expires {
					expires = time.Duration(n) * time.Second
					continue
				}
			}
		}
		break
	}
	if !res.IsSuccess() {
		return 0, fmt.Errorf("REGISTER: provider answered %d %s", res.StatusCode, res.Reason)
	}
	p.learnSource(res)
	reg.ok = expires > 0
	granted := grantedExpiry(res, contact, expires)
	// RFC 3581: the provider saw the REGISTER come from another address (a
	// NAT): register the address it can reach us at. Over TCP and TLS the
	// provider calls us over our connection, whose port is not one we
	// listen on, so the Contact stays.
	if pub := publicAddr(res, local); p.cfg.Transport == "udp" && expires > 0 && pub != reg.public {
		p.log.Info("provider sees another address: registering it", "public", pub.String(), "local", local.HostPort())
		reg.public = pub
		reg.again = true
		// Calls name it too (Route), from now on.
		p.mu.Lock()
		p.public = pub
		p.mu.Unlock()
	}
	return granted, nil
}

// publicAddr is the address the provider saw our request come from, from
// the received and rport parameters of the response's Via (RFC 3581), or
// the zero value when that is our own address.
func publicAddr(res *sip.Response, local sip.Uri) netip.AddrPort {
	via := res.Via()
	if via == nil || via.Params == nil {
		return netip.AddrPort{}
	}
	recv, hasRecv := via.Params.Get("received")
	rport, _ := via.Params.Get("rport")
	if !hasRecv && rport == "" {
		return netip.AddrPort{}
	}
	host, port := local.Host, local.Port
	if hasRecv {
		host = recv
	}
	if n, err := strconv.Atoi(rport); err == nil && n > 0 && n < 65536 {
		port = n
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || port == 0 {
		return netip.AddrPort{}
	}
	pub := netip.AddrPortFrom(ip.Unmap(), uint16(port))
	if l, err := netip.ParseAddr(local.Host); err == nil && netip.AddrPortFrom(l.Unmap(), uint16(local.Port)) == pub {
		return netip.AddrPort{}
	}
	return pub
}

// unregister removes our binding at the provider as the server stops.
func (p *Provider) unregister(ctx context.Context, host Host, reg *registration) {
	if !reg.ok {
		return
	}
	p.mu.Lock()
	live := p.registeredLocked(p.now())
	p.mu.Unlock()
	if !live {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if _, err := p.register(ctx, host, reg, 0); err != nil {
		p.log.Info("unregister failed", "error", err)
	}
	p.setRegistered(false, time.Time{})
}

// newRegister builds a REGISTER from local (our socket) binding contact.
// Its Via asks the provider for the address it sees (rport, RFC 3581).
func (p *Provider) newRegister(reg *registration, local, contact sip.Uri, expires time.Duration) *sip.Request {
	ruri := sip.Uri{Scheme: "sip", Host: p.host, Port: p.port}
	if p.cfg.Transport != "udp" {
		ruri.UriParams = sip.NewParams()
		ruri.UriParams.Add("transport", p.cfg.Transport)
	}
	req := sip.NewRequest(sip.REGISTER, ruri)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(p.cfg.Transport),
		Host: local.Host, Port: local.Port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	aor := sip.Uri{Scheme: "sip", User: p.cfg.Username, Host: p.host}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", reg.tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	cid := sip.CallIDHeader(reg.callID)
	req.AppendHeader(&cid)
	reg.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: reg.cseq, MethodName: sip.REGISTER})
	req.AppendHeader(&sip.ContactHeader{Address: contact})
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.AppendHeader(sip.NewHeader("User-Agent", p.cfg.UserAgent))
	req.SetDestination(p.cfg.Address)
	req.SetTransport(strings.ToUpper(p.cfg.Transport))
	return req
}

// grantedExpiry reads the lifetime the provider granted our contact: its
// expires parameter in the 200, else the Expires header, else what we
// asked for (RFC 3261 §10.2.4).
func grantedExpiry(res *sip.Response, contact sip.Uri, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok || ch.Params == nil {
			continue
		}
		if ch.Address.Host != contact.Host || ch.Address.Port != contact.Port {
			continue
		}
		if v, ok := ch.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

// authorize answers the first challenge in res we can compute (RFC 8760
// §2.4: the provider lists its preferred algorithm first).
func (p *Provider) authorize(req *sip.Request, res *sip.Response) (sip.Header, error) {
	chName, authName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chName, authName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	if p.cfg.Password == "" {
		return nil, fmt.Errorf("provider asks for credentials (%d) and none are configured", res.StatusCode)
	}
	for _, h := range res.GetHeaders(chName) {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			continue
		}
		chal.Algorithm = strings.ToUpper(chal.Algorithm)
		if !digest.CanDigest(chal) {
			continue
		}
		cred, err := digest.Digest(chal, digest.Options{
			Method: string(req.Method), URI: req.Recipient.Addr(),
			Username: p.authUser(), Password: p.cfg.Password, Count: 1,
		})
		if err != nil {
			continue
		}
		return sip.NewHeader(authName, cred.String()), nil
	}
	return nil, fmt.Errorf("no usable digest challenge in %d", res.StatusCode)
}

func staleChallenge(res *sip.Response) bool {
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		for _, h := range res.GetHeaders(name) {
			if c, err := digest.ParseChallenge(h.Value()); err == nil && c.Stale {
				return true
			}
		}
	}
	return false
}

// do sends req and waits at most Timeout (or until ctx ends, if sooner)
// for its final response.
func (p *Provider) do(ctx context.Context, host Host, req *sip.Request) (*sip.Response, error) {
	limit := p.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl).Round(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	res, err := host.Do(ctx, req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, fmt.Errorf("%s: no answer within %s", req.Method, limit)
		}
		return nil, fmt.Errorf("%s: %w", req.Method, err)
	}
	return res, nil
}

// pingLoop sends OPTIONS every PingInterval (RFC 3261 §11). A provider
// that answers again after failing may have restarted and lost our
// registration: register again at once.
func (p *Provider) pingLoop(ctx context.Context, host Host) {
	t := time.NewTicker(p.cfg.PingInterval)
	defer t.Stop()
	for {
		err := p.ping(ctx, host)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.failure("options", err)
		} else {
			p.mu.Lock()
			wasFailing := p.h.fails > 0
			p.mu.Unlock()
			p.success("options")
			if wasFailing && p.cfg.Register {
				select {
				case p.kick <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Provider) ping(ctx context.Context, host Host) error {
	p.resolve(ctx)
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: p.host, Port: p.port})
	user := p.cfg.Username
	if user == "" {
		user = "switchboard"
	}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: p.host}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", Host: p.host}, Params: sip.NewParams()})
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	req.AppendHeader(&sip.ContactHeader{Address: host.Contact(p.cfg.Transport)})
	req.AppendHeader(sip.NewHeader("User-Agent", p.cfg.UserAgent))
	req.SetDestination(p.cfg.Address)
	req.SetTransport(strings.ToUpper(p.cfg.Transport))
	res, err := p.do(ctx, host, req)
	if err != nil {
		return err
	}
	p.learnSource(res)
	// Any answer but a server failure shows the provider is alive: many
	// answer OPTIONS with 401, 404 or 405.
	if res.StatusCode >= 500 && res.StatusCode != 501 || res.StatusCode == 408 {
		return fmt.Errorf("OPTIONS: provider answered %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// resolve refreshes the provider's addresses, from which inbound calls
// are accepted.
func (p *Provider) resolve(ctx context.Context) {
	if _, err := netip.ParseAddr(p.host); err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", p.host)
	if err != nil {
		p.log.Debug("resolve provider", "host", p.host, "error", err)
		return
	}
	p.mu.Lock()
	for _, ip := range ips {
		p.addrs[ip.Unmap()] = true
	}
	p.mu.Unlock()
}

// learnSource remembers the address a response came from: the provider
// may answer (and call) from an address its name does not resolve to.
func (p *Provider) learnSource(res *sip.Response) {
	ap, err := netip.ParseAddrPort(res.Source())
	if err != nil {
		return
	}
	p.mu.Lock()
	if len(p.addrs) < 64 {
		p.addrs[ap.Addr().Unmap()] = true
	}
	p.mu.Unlock()
}
