package web

import (
	"github.com/switchboard/switchboard/internal/jsontime"
)

// User is a SIP account as the API shows it: never its password or hashes.
type User struct {
	Name        string          `json:"name" doc:"SIP user part (the extension), e.g. 1001."`
	DisplayName string          `json:"display_name" doc:"Name shown to the people it calls."`
	FromConfig  bool            `json:"from_config" doc:"The account is declared in the config file: API changes to it last until the next start, when the file is synced again."`
	CreatedAt   jsontime.Millis `json:"created_at"`
	UpdatedAt   jsontime.Millis `json:"updated_at"`
}

// NewUser is the body of a request to create an account. Names are what a
// phone can type and digest authentication can carry unquoted.
type NewUser struct {
	Name        string `json:"name" pattern:"^[A-Za-z0-9._+-]{1,64}$" doc:"SIP user part (the extension): 1 to 64 letters, digits or . _ + -."`
	DisplayName string `json:"display_name,omitempty" maxLength:"128" pattern:"^[^\\x00-\\x1f\\x7f-\\x9f]*$" doc:"Name shown to the people it calls: no line breaks or other control characters."`
	Password    string `json:"password" minLength:"4" maxLength:"256" writeOnly:"true" doc:"SIP password. Write-only: only its digest hashes (HA1, MD5 and SHA-256, for the server's realm) are stored."`
}

// UserChange is the body of a request to change an account; absent fields
// keep their value.
type UserChange struct {
	DisplayName *string `json:"display_name,omitempty" maxLength:"128" pattern:"^[^\\x00-\\x1f\\x7f-\\x9f]*$" doc:"New display name: no line breaks or other control characters."`
	Password    *string `json:"password,omitempty" minLength:"4" maxLength:"256" writeOnly:"true" doc:"New SIP password (write-only)."`
}

// Registration is one live registrar binding of a user to a device.
type Registration struct {
	ID        string          `json:"id" doc:"Binding ID. It contains '|': URL-escape it (%7C) in paths."`
	User      string          `json:"user"`
	Contact   string          `json:"contact" doc:"Contact URI as the device registered it."`
	Source    string          `json:"source" doc:"ip:port the REGISTER came from: where calls to the device go (NAT)."`
	Transport string          `json:"transport" doc:"UDP, TCP, TLS, WS or WSS."`
	UserAgent string          `json:"user_agent"`
	ExpiresAt jsontime.Millis `json:"expires_at"`
	ExpiresIn int64           `json:"expires_in" doc:"Seconds until the binding expires."`
}

// MediaCounters are one call leg's media statistics.
type MediaCounters struct {
	PacketsIn  uint64  `json:"packets_in"`
	PacketsOut uint64  `json:"packets_out"`
	BytesIn    uint64  `json:"bytes_in"`
	BytesOut   uint64  `json:"bytes_out"`
	Lost       uint64  `json:"lost" doc:"Packets lost, from RTP sequence numbers."`
	JitterMS   float64 `json:"jitter_ms" doc:"Interarrival jitter in milliseconds (RFC 3550 §6.4.1)."`
}

// CallLeg is one leg of a call in progress.
type CallLeg struct {
	Name      string `json:"name" enum:"caller,callee"`
	RelayPort int    `json:"relay_port" doc:"Local RTP port of the media relay for this leg."`
	Remote    string `json:"remote,omitempty" doc:"ip:port the relay sends this leg's audio to; absent until media arrives."`
	MediaCounters
}

// Call is a call in progress.
type Call struct {
	ID         string          `json:"id"`
	Caller     string          `json:"caller"`
	Callee     string          `json:"callee"`
	State      string          `json:"state" enum:"ringing,answered"`
	StartedAt  jsontime.Millis `json:"started_at"`
	AnsweredAt jsontime.Millis `json:"answered_at,omitzero" doc:"Absent until the call is answered."`
	Legs       []CallLeg       `json:"legs" nullable:"false"`
	Codecs     []string        `json:"codecs" nullable:"false" doc:"Audio formats: offered while ringing, in use once answered, e.g. PCMU/8000."`
	Trunk      string          `json:"trunk,omitempty" doc:"The trunk the call goes out or came in through; absent for internal calls."`
	DID        string          `json:"did,omitempty" doc:"The provider's number (DID) an inbound call dialled; absent for other calls."`
}

// RecordLeg is the media summary of one leg of a recorded call.
type RecordLeg struct {
	Name string `json:"name"`
	MediaCounters
}

// Record is the record of a call, finished or not.
type Record struct {
	ID         string          `json:"id"`
	Caller     string          `json:"caller"`
	Callee     string          `json:"callee"`
	CallerURI  string          `json:"caller_uri"`
	CalleeURI  string          `json:"callee_uri"`
	Direction  string          `json:"direction" doc:"internal, outbound or inbound."`
	Trunk      string          `json:"trunk,omitempty" doc:"The trunk an outbound call left through, or an inbound call came in through; absent for internal calls and for outbound calls no trunk carried."`
	DID        string          `json:"did,omitempty" doc:"The provider's number (DID) an inbound call dialled; absent for other calls."`
	StartedAt  jsontime.Millis `json:"started_at"`
	AnsweredAt jsontime.Millis `json:"answered_at,omitzero" doc:"Absent when the call was never answered."`
	EndedAt    jsontime.Millis `json:"ended_at,omitzero" doc:"Absent while the call is up."`
	DurationMS int64           `json:"duration_ms" doc:"Answered to ended, in milliseconds; 0 when not answered."`
	Result     string          `json:"result" doc:"answered, busy, no_answer, cancelled, failed, unavailable, not_found, crashed, …; empty while the call is up."`
	Status     int             `json:"status" doc:"Final SIP status of the call setup, e.g. 200, 486, 487."`
	HangupBy   string          `json:"hangup_by" doc:"caller, callee, system, or empty."`
	Reason     string          `json:"reason"`
	Legs       []RecordLeg     `json:"legs" nullable:"false"`
}

// Trunk is an external SIP provider and its state.
type Trunk struct {
	Name          string          `json:"name"`
	Address       string          `json:"address"`
	Transport     string          `json:"transport" doc:"udp, tcp or tls."`
	Register      bool            `json:"register" doc:"Whether Switchboard registers to the provider (false: the provider knows us by IP address)."`
	State         string          `json:"state" enum:"starting,registered,up,failing,down" doc:"starting: nothing heard yet; registered: registered and answering; up: answering (a trunk that does not register); failing: recent requests failed, calls are still tried; down: the circuit breaker is open and calls fail at once with 503."`
	Registered    bool            `json:"registered"`
	LastError     string          `json:"last_error,omitempty" doc:"The last failure, such as a timeout or a refused registration."`
	LastErrorAt   jsontime.Millis `json:"last_error_at,omitzero"`
	LastSuccessAt jsontime.Millis `json:"last_success_at,omitzero" doc:"When the provider last answered."`
}

// Status describes the running server.
type Status struct {
	Version       string          `json:"version"`
	StartedAt     jsontime.Millis `json:"started_at"`
	UptimeSeconds int64           `json:"uptime_seconds"`
	Ready         bool            `json:"ready" doc:"The server accepts calls (what /readyz reports)."`
	Users         int             `json:"users"`
	Registrations int             `json:"registrations"`
	ActiveCalls   int             `json:"active_calls"`
}

// Page is one page of a list. NextCursor is set when more items may
// follow: pass it back as ?cursor= for the next page.
type Page[T any] struct {
	Items      []T    `json:"items" nullable:"false"`
	NextCursor string `json:"next_cursor,omitempty" doc:"Opaque cursor for the next page; absent on the last page."`
}

// List is a complete, unpaginated list.
type List[T any] struct {
	Items []T `json:"items" nullable:"false"`
}
