package web

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/jsontime"
)

// fakeService is an in-memory Service. err, when set, fails every call.
type fakeService struct {
	mu      sync.Mutex
	users   map[string]User
	regs    []Registration
	calls   []Call
	records []Record // newest first
	err     error
}

var _ Service = (*fakeService)(nil)

func newFake() *fakeService { return &fakeService{users: map[string]User{}} }

func (f *fakeService) Users(context.Context) ([]User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := make([]User, 0, len(f.users))
	for _, u := range f.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeService) User(_ context.Context, name string) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return User{}, f.err
	}
	u, ok := f.users[name]
	if !ok {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return u, nil
}

func (f *fakeService) CreateUser(_ context.Context, nu NewUser) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return User{}, f.err
	}
	if _, ok := f.users[nu.Name]; ok {
		return User{}, ErrExists
	}
	now := time.Now().UTC()
	u := User{Name: nu.Name, DisplayName: nu.DisplayName, CreatedAt: jsontime.Millis(now), UpdatedAt: jsontime.Millis(now)}
	f.users[nu.Name] = u
	return u, nil
}

func (f *fakeService) UpdateUser(_ context.Context, name string, ch UserChange) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[name]
	if !ok {
		return User{}, ErrNotFound
	}
	if ch.DisplayName != nil {
		u.DisplayName = *ch.DisplayName
	}
	f.users[name] = u
	return u, nil
}

func (f *fakeService) DeleteUser(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[name]; !ok {
		return ErrNotFound
	}
	delete(f.users, name)
	return nil
}

func (f *fakeService) Registrations(context.Context) ([]Registration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.regs), f.err
}

func (f *fakeService) RemoveRegistration(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.regs, func(r Registration) bool { return r.ID == id })
	if i < 0 {
		return ErrNotFound
	}
	f.regs = slices.Delete(f.regs, i, i+1)
	return nil
}

func (f *fakeService) Calls(context.Context) ([]Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), f.err
}

func (f *fakeService) Call(_ context.Context, id string) (Call, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.ID == id {
			return c, nil
		}
	}
	return Call{}, ErrNotFound
}

func (f *fakeService) Hangup(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.calls, func(c Call) bool { return c.ID == id })
	if i < 0 {
		return ErrNotFound
	}
	f.calls = slices.Delete(f.calls, i, i+1)
	return nil
}

func (f *fakeService) Originate(_ context.Context, from, to string) (Originate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[from]; !ok {
		return Originate{}, ErrNotFound
	}
	return Originate{ID: "orig-1", From: from, To: to, State: "ringing", StartedAt: jsontime.Millis(time.Now())}, nil
}

func (f *fakeService) Records(_ context.Context, flt RecordFilter) ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := 0
	if flt.Before != "" {
		i := slices.IndexFunc(f.records, func(r Record) bool { return r.ID == flt.Before })
		if i < 0 {
			return nil, ErrBadCursor
		}
		start = i + 1
	}
	var out []Record
	for _, r := range f.records[start:] {
		if (flt.User == "" || r.Caller == flt.User || r.Callee == flt.User) && (flt.Result == "" || r.Result == flt.Result) &&
			(flt.Since.IsZero() || !r.StartedAt.Time().Before(flt.Since)) && (flt.Until.IsZero() || r.StartedAt.Time().Before(flt.Until)) {
			out = append(out, r)
		}
		if len(out) == flt.Limit {
			break
		}
	}
	return out, nil
}

func (f *fakeService) Record(_ context.Context, id string) (Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.records {
		if r.ID == id {
			return r, nil
		}
	}
	return Record{}, ErrNotFound
}

// fakeResults is a CallResults with fixed counts.
type fakeResults map[string]uint64

func (r fakeResults) CallResults(context.Context) (map[string]uint64, error) { return r, nil }
