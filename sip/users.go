package sip

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// userCache keeps recently used accounts in memory so that a REGISTER burst
// does not read the database for every request. Entries live for a short
// time and are dropped at once when the account changes (invalidate).
type userCache struct {
	src Users
	now func() time.Time
	ttl time.Duration

	mu sync.Mutex
	m  map[string]cachedUser
}

type cachedUser struct {
	u       store.User
	found   bool
	fetched time.Time
}

const maxCachedUsers = 100_000

func newUserCache(src Users, now func() time.Time) *userCache {
	return &userCache{src: src, now: now, ttl: 30 * time.Second, m: map[string]cachedUser{}}
}

// get returns the user, ok=false when there is no such user.
func (c *userCache) get(ctx context.Context, name string) (store.User, bool, error) {
	now := c.now()
	c.mu.Lock()
	e, hit := c.m[name]
	c.mu.Unlock()
	if hit && now.Sub(e.fetched) < c.ttl {
		return e.u, e.found, nil
	}
	u, err := c.src.User(ctx, name)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.User{}, false, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedUsers {
		// Scanners try endless names: start afresh rather than grow.
		clear(c.m)
	}
	c.m[name] = cachedUser{u: u, found: found, fetched: now}
	c.mu.Unlock()
	return u, found, nil
}

func (c *userCache) invalidate(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}
