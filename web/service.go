package web

import (
	"context"
	"errors"
	"time"
)

// Errors a Service returns, checked with errors.Is; each maps to one HTTP
// status.
var (
	// ErrNotFound reports an unknown user, registration, call or record (404).
	ErrNotFound = errors.New("web: not found")
	// ErrExists reports a user that already exists (409).
	ErrExists = errors.New("web: already exists")
	// ErrBadCursor reports a pagination cursor that names no record (422).
	ErrBadCursor = errors.New("web: unknown cursor")
)

// Service is what the API needs from the application. cmd/switchboard
// implements it over the signalling plane and the store.
type Service interface {
	UserService
	RegistrationService
	CallService
	RecordService
}

// UserService manages SIP accounts. Every change must take effect for SIP
// authentication at once.
type UserService interface {
	// Users returns every account, ordered by name.
	Users(ctx context.Context) ([]User, error)
	// User returns one account or ErrNotFound.
	User(ctx context.Context, name string) (User, error)
	// CreateUser stores a new account (only digest hashes of the password)
	// or fails with ErrExists.
	CreateUser(ctx context.Context, u NewUser) (User, error)
	// UpdateUser applies the non-nil fields of ch, or fails with ErrNotFound.
	UpdateUser(ctx context.Context, name string, ch UserChange) (User, error)
	// DeleteUser removes the account and its registrations, or fails with
	// ErrNotFound.
	DeleteUser(ctx context.Context, name string) error
}

// RegistrationService lists and removes live registrar bindings.
type RegistrationService interface {
	// Registrations returns every live binding, ordered by ID.
	Registrations(ctx context.Context) ([]Registration, error)
	// RemoveRegistration deletes one binding or fails with ErrNotFound.
	RemoveRegistration(ctx context.Context, id string) error
}

// CallService lists and ends calls in progress.
type CallService interface {
	// Calls returns the calls in progress, oldest first.
	Calls(ctx context.Context) ([]Call, error)
	// Call returns one call in progress or ErrNotFound.
	Call(ctx context.Context, id string) (Call, error)
	// Hangup ends a call in progress or fails with ErrNotFound.
	Hangup(ctx context.Context, id string) error
}

// RecordService reads call records.
type RecordService interface {
	// Records returns the records matching f, newest first; an unknown
	// f.Before is ErrBadCursor.
	Records(ctx context.Context, f RecordFilter) ([]Record, error)
	// Record returns one record or ErrNotFound.
	Record(ctx context.Context, id string) (Record, error)
}

// Trunks lists the external SIP providers. It is optional: without one the
// API reports no trunks.
type Trunks interface {
	Trunks(ctx context.Context) ([]Trunk, error)
}

// CallResults counts finished calls by result for the metrics. It is
// optional: without one the calls-by-result metric is absent.
type CallResults interface {
	// CallResults returns how many recorded calls ended with each result.
	CallResults(ctx context.Context) (map[string]uint64, error)
}

// RecordFilter selects call records. Zero fields do not filter.
type RecordFilter struct {
	User   string    // caller or callee
	Since  time.Time // started at or after
	Until  time.Time // started before
	Result string
	Limit  int
	// Before is the ID of the last record of the previous page: only
	// records that sort after it are returned.
	Before string
}
