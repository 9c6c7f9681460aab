package sip

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// userCache keeps accounts in memory so that digest authentication does not
// read the database for every request: under REGISTER load that read was
// the largest single cost (docs/benchmarks.md). The cache is filled at start
// (warm) and entries are dropped at once when an account changes through
// this server (invalidate); the time-to-live only bounds how long a change
// made elsewhere (another host sharing the database) can go unseen.
// Unknown names are remembered briefly, so that a scanner trying endless
// names cannot hammer the database nor grow the cache for long.
type userCache struct {
	src Users
	now func() time.Time
	ttl time.Duration // accounts that exist
	neg time.Duration // names that do not

	mu sync.RWMutex
	m  map[string]cachedUser
}

type cachedUser struct {
	u       store.User
	found   bool
	fetched time.Time
}

const (
	maxCachedUsers = 100_000
	userTTL        = 10 * time.Minute
	missingUserTTL = 30 * time.Second
)

// userLister is implemented by user stores that can list every account, so
// that the cache can be filled before the first request.
type userLister interface {
	Users(ctx context.Context) ([]store.User, error)
}

func newUserCache(src Users, now func() time.Time) *userCache {
	return &userCache{src: src, now: now, ttl: userTTL, neg: missingUserTTL, m: map[string]cachedUser{}}
}

// warm loads every account (up to maxCachedUsers) if the store can list
// them. A failure only leaves the cache cold.
func (c *userCache) warm(ctx context.Context) (int, error) {
	l, ok := c.src.(userLister)
	if !ok {
		return 0, nil
	}
	users, err := l.Users(ctx)
	if err != nil {
		return 0, err
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, u := range users {
		if len(c.m) >= maxCachedUsers {
			break
		}
		c.m[u.Name] = cachedUser{u: u, found: true, fetched: now}
		n++
	}
	return n, nil
}

// get returns the user, ok=false when there is no such user.
func (c *userCache) get(ctx context.Context, name string) (store.User, bool, error) {
	now := c.now()
	if e, ok := c.fresh(name, now); ok {
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

// cached is get without reading the store: errWouldWait when name is not
// cached (or its entry is too old) and get would read it.
func (c *userCache) cached(_ context.Context, name string) (store.User, bool, error) {
	if e, ok := c.fresh(name, c.now()); ok {
		return e.u, e.found, nil
	}
	return store.User{}, false, errWouldWait
}

// fresh returns name's entry if it is cached and young enough to use.
func (c *userCache) fresh(name string, now time.Time) (cachedUser, bool) {
	c.mu.RLock()
	e, hit := c.m[name]
	c.mu.RUnlock()
	ok := hit && ((e.found && now.Sub(e.fetched) < c.ttl) || (!e.found && now.Sub(e.fetched) < c.neg))
	return e, ok
}

func (c *userCache) invalidate(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}
