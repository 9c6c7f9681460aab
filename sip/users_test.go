package sip

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// fakeUsers is a user store that counts its lookups.
type fakeUsers struct {
	users   map[string]store.User
	lookups int
	listErr error
}

func (f *fakeUsers) User(_ context.Context, name string) (store.User, error) {
	f.lookups++
	if u, ok := f.users[name]; ok {
		return u, nil
	}
	return store.User{}, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
}

func (f *fakeUsers) Users(context.Context) ([]store.User, error) {
	var out []store.User
	for _, u := range f.users {
		out = append(out, u)
	}
	return out, f.listErr
}

// onlyUser hides the fake's Users method: a store that cannot list.
type onlyUser struct{ f *fakeUsers }

func (o onlyUser) User(ctx context.Context, name string) (store.User, error) {
	return o.f.User(ctx, name)
}

func TestUserCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	src := &fakeUsers{users: map[string]store.User{"1001": {Name: "1001", HA1MD5: "a"}, "1002": {Name: "1002", HA1MD5: "b"}}}
	c := newUserCache(src, clock)
	ctx := t.Context()

	if n, err := c.warm(ctx); err != nil || n != 2 {
		t.Fatalf("warm = %d, %v; want 2 users", n, err)
	}
	for _, name := range []string{"1001", "1002", "1001"} {
		if u, ok, err := c.get(ctx, name); err != nil || !ok || u.Name != name {
			t.Fatalf("get(%s) = %+v, %v, %v", name, u, ok, err)
		}
	}
	if src.lookups != 0 {
		t.Fatalf("%d store lookups after warm, want 0", src.lookups)
	}

	// An unknown name is looked up once, then remembered for missingUserTTL.
	for range 3 {
		if _, ok, err := c.get(ctx, "9999"); err != nil || ok {
			t.Fatalf("get(9999) = %v, %v; want not found", ok, err)
		}
	}
	if src.lookups != 1 {
		t.Fatalf("%d lookups for an unknown name, want 1", src.lookups)
	}
	now = now.Add(missingUserTTL + time.Second)
	src.users["9999"] = store.User{Name: "9999"}
	if _, ok, _ := c.get(ctx, "9999"); !ok || src.lookups != 2 {
		t.Fatalf("after the miss TTL: found=%v lookups=%d, want a new lookup that finds the user", ok, src.lookups)
	}

	// A change through this server is seen at once.
	src.users["1001"] = store.User{Name: "1001", HA1MD5: "changed"}
	c.invalidate("1001")
	if u, _, _ := c.get(ctx, "1001"); u.HA1MD5 != "changed" {
		t.Fatalf("after invalidate: HA1 %q, want the new one", u.HA1MD5)
	}
	// A change made elsewhere is seen after userTTL.
	src.users["1002"] = store.User{Name: "1002", HA1MD5: "elsewhere"}
	if u, _, _ := c.get(ctx, "1002"); u.HA1MD5 != "b" {
		t.Fatalf("within the TTL: HA1 %q, want the cached one", u.HA1MD5)
	}
	now = now.Add(userTTL)
	if u, _, _ := c.get(ctx, "1002"); u.HA1MD5 != "elsewhere" {
		t.Fatalf("after the TTL: HA1 %q, want the store's", u.HA1MD5)
	}

	// A store that cannot list leaves the cache cold; a listing error is
	// reported and leaves it cold too.
	if n, err := newUserCache(onlyUser{src}, clock).warm(ctx); n != 0 || err != nil {
		t.Fatalf("warm without a lister = %d, %v", n, err)
	}
	src.listErr = errors.New("disk on fire")
	if _, err := newUserCache(src, clock).warm(ctx); err == nil {
		t.Fatal("warm hid the listing error")
	}
}
