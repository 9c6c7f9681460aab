package sip

import (
	"context"
	"errors"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/digest"
	"github.com/switchboard/switchboard/internal/store"
)

// dummyHA1 is verified against when the user does not exist, so that an
// unknown user costs the same work and gets the same answer as a wrong
// password (no user enumeration).
var dummyHA1 = digest.HA1(digest.SHA256, "nobody", "nowhere", "nothing")

// authenticate checks the digest credentials of req (RFC 3261 §22, RFC 8760).
// Registrars challenge with 401/WWW-Authenticate; calls with
// 407/Proxy-Authenticate (proxy=true). When the credentials are missing,
// stale or wrong it answers the request itself and returns ok=false.
func (s *Server) authenticate(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, proxy bool) (store.User, bool) {
	u, ok, _ := s.authenticateWith(ctx, req, tx, proxy, s.users.get)
	return u, ok
}

// userLookup finds a user for authentication: found=false when there is
// no such user, errWouldWait when it cannot tell without waiting.
type userLookup func(ctx context.Context, name string) (u store.User, found bool, err error)

// errWouldWait is returned by a userLookup that does not wait
// (userCache.cached) for a user it would have to read from the store.
var errWouldWait = errors.New("sip: user not cached")

// authenticateWith is authenticate with the given user lookup. It reports
// wait, having answered nothing, when lookup returns errWouldWait.
func (s *Server) authenticateWith(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, proxy bool,
	lookup userLookup) (_ store.User, ok, wait bool) {
	hdrName := "Authorization"
	if proxy {
		hdrName = "Proxy-Authorization"
	}
	var creds digest.Credentials
	var found bool
	given := headersNamed(req, hdrName)
	for _, h := range given {
		c, err := digest.Parse(h.Value())
		if err != nil {
			continue
		}
		if c.Realm != s.cfg.Domain {
			continue // credentials for another realm (RFC 3261 §22.3)
		}
		creds, found = c, true
		break
	}
	if !found {
		if len(given) > 0 {
			s.log.Debug("unusable credentials", "method", string(req.Method), "source", req.Source())
		}
		s.challenge(req, tx, proxy, false)
		return store.User{}, false, false
	}
	if !s.offers(creds.Algorithm) {
		s.challenge(req, tx, proxy, false)
		return store.User{}, false, false
	}
	u, exists, err := lookup(ctx, creds.Username)
	if errors.Is(err, errWouldWait) {
		return store.User{}, false, true
	}
	if err != nil {
		s.respondErr(tx, req, err)
		return store.User{}, false, false
	}
	ha1 := dummyHA1
	if exists && u.Realm == s.cfg.Domain {
		if creds.Algorithm == digest.SHA256 {
			ha1 = u.HA1SHA256
		} else {
			ha1 = u.HA1MD5
		}
	}
	if !creds.Verify(string(req.Method), ha1) || !exists {
		if exists && u.Realm != s.cfg.Domain {
			// Digest hashes hold the realm: after a change of sip.domain
			// no password set before it can match.
			s.log.Warn("authentication failed: the user's password was set for another sip.domain; set it again (switchboard ctl users passwd NAME)",
				"user", creds.Username, "password_realm", u.Realm, "sip_domain", s.cfg.Domain, "source", req.Source())
		} else {
			s.log.Info("authentication failed", "method", string(req.Method), "user", creds.Username, "source", req.Source())
		}
		s.guard.authFailed(sourceAddr(req), creds.Username)
		s.challenge(req, tx, proxy, false)
		return store.User{}, false, false
	}
	if s.nonces.Check(creds.Nonce) != digest.NonceValid {
		// The password was right but the nonce is old or from before a
		// restart: the client may retry at once (RFC 7616 §3.3 stale).
		s.challenge(req, tx, proxy, true)
		return store.User{}, false, false
	}
	if proxy && !s.nonceUses.fresh(creds.Nonce, creds.NC, s.now()) {
		// The same answer as before: a copy of an earlier request. A
		// client that really reused its count can retry with a new nonce.
		s.log.Info("credentials used before refused", "method", string(req.Method), "user", creds.Username, "source", req.Source())
		s.challenge(req, tx, proxy, true)
		return store.User{}, false, false
	}
	return u, true, false
}

func (s *Server) offers(alg string) bool {
	for _, a := range s.cfg.AuthAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// challenge answers with one challenge per offered algorithm, the
// preferred first, sharing one fresh nonce (RFC 8760 §2.4).
func (s *Server) challenge(req *sip.Request, tx sip.ServerTransaction, proxy, stale bool) {
	code, reason, name := 401, "Unauthorized", "WWW-Authenticate"
	if proxy {
		code, reason, name = 407, "Proxy Authentication Required", "Proxy-Authenticate"
	}
	nonce := s.nonces.Issue()
	hdrs := make([]sip.Header, 0, len(s.cfg.AuthAlgorithms))
	for _, alg := range s.algorithmsFor(req) {
		hdrs = append(hdrs, sip.NewHeader(name, digest.Challenge(s.cfg.Domain, nonce, alg, stale)))
	}
	s.respond(tx, req, code, reason, hdrs...)
}

// algorithmsFor returns the challenges to offer req. RFC 8760 §2.4 has the
// client answer the topmost challenge it supports, but some clients fail
// when any challenge is not MD5 (baresip 1.x) or take only the first one
// (SIPp). Those that announce no User-Agent or one of
// Config.LegacyDigestAgents are offered MD5 alone; everyone else gets the
// configured list.
func (s *Server) algorithmsFor(req *sip.Request) []string {
	algs := s.cfg.AuthAlgorithms
	if len(algs) < 2 || !s.offers(digest.MD5) || !s.legacyAgent(req) {
		return algs
	}
	return md5Only
}

var md5Only = []string{digest.MD5}

func (s *Server) legacyAgent(req *sip.Request) bool {
	h := req.GetHeader("User-Agent")
	if h == nil || strings.TrimSpace(h.Value()) == "" {
		return true
	}
	ua := strings.ToLower(h.Value())
	for _, p := range s.cfg.LegacyDigestAgents {
		if strings.HasPrefix(ua, strings.ToLower(p)) {
			return true
		}
	}
	return false
}
