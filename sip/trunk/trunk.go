package trunk

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Trunk is an external SIP provider as the call core uses it.
type Trunk interface {
	// Name is the trunk's configured name.
	Name() string
	// Run registers (when configured) and checks the provider's health
	// until ctx ends, then removes the registration.
	Run(ctx context.Context, host Host) error
	// Route reports whether user's call to number may leave through this
	// trunk, and how to send it.
	Route(user, number string) (Route, bool)
	// Ready returns nil when a call may be placed through the trunk now,
	// or why not (ErrDown, ErrUnregistered), so that the caller can fail
	// fast or try the next trunk.
	Ready() error
	// CallResult tells the trunk how an outbound call attempt ended: the
	// final status (0 when none came) and the error, if any. Timeouts,
	// 408 and 5xx count against the trunk's health.
	CallResult(status int, err error)
	// Inbound reports whether a request from source comes from this
	// provider and, if so, which user the dialled number did maps to
	// (user is "" when did is not one of the trunk's numbers). From the
	// provider's address but another port than its own, only a request
	// for one of the trunk's numbers is the provider's; port 0 asks about
	// the address alone.
	Inbound(source netip.AddrPort, did string) (user string, ours bool)
	// Status is the trunk's current state.
	Status() Status
}

// Host is what a trunk needs from the server it belongs to.
type Host interface {
	// Do sends req from the server's SIP socket and returns the final
	// response.
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	// Contact is the server's own address for requests over transport.
	Contact(transport string) sip.Uri
	// Notify publishes an event (trunk.up, trunk.down); it must not block.
	Notify(eventType string, data any)
}

// Route is how one outbound call leaves through a trunk.
type Route struct {
	Trunk string
	// URI is the request URI: the normalised number at the provider.
	URI sip.Uri
	// Destination is the provider's host:port and Transport its
	// transport ("udp", "tcp", "tls").
	Destination string
	Transport   string
	// From is the caller's address as the provider should see it (the
	// configured caller ID); AssertedIdentity is the value of the
	// P-Asserted-Identity header (RFC 3325), empty for none.
	From             sip.Uri
	AssertedIdentity string
	// Number is the dialled number after normalisation.
	Number string
	// Username and Password answer the provider's digest challenges.
	Username, Password string
	// Timeout bounds the wait for the provider's first response.
	Timeout time.Duration
	// Public is the address the provider sees us at when a NAT between
	// makes it differ from ours, as its answers to REGISTER told
	// (RFC 3581 received and rport); zero otherwise. The INVITE's Contact
	// names it, as the REGISTER's does, so that the provider's requests
	// in the dialog (BYE, re-INVITE) reach us through the NAT.
	Public netip.AddrPort
}

// State is a trunk's health as an operator reads it.
type State string

// States of a trunk.
const (
	// StateStarting: nothing has been heard from the provider yet.
	StateStarting State = "starting"
	// StateRegistered: registered and answering.
	StateRegistered State = "registered"
	// StateUp: answering (a trunk that does not register).
	StateUp State = "up"
	// StateFailing: recent attempts failed; calls are still tried.
	StateFailing State = "failing"
	// StateDown: the circuit breaker is open; calls fail fast.
	StateDown State = "down"
)

// Status is a snapshot of a trunk.
type Status struct {
	Name          string    `json:"name"`
	Address       string    `json:"address"`
	Transport     string    `json:"transport"`
	Register      bool      `json:"register"`
	State         State     `json:"state"`
	Registered    bool      `json:"registered"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	// RegisteredUntil is when the provider's registration lapses.
	RegisteredUntil time.Time `json:"registered_until,omitzero"`
}

var (
	// ErrDown means the trunk's circuit breaker is open.
	ErrDown = errors.New("trunk down")
	// ErrUnregistered means a registering trunk has no registration.
	ErrUnregistered = errors.New("trunk not registered")
)
