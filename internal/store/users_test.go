package store

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestUsersCRUD(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	s.now = func() time.Time { return baseTime }

	alice := User{
		Name: "1001", DisplayName: "Alice", Realm: "switchboard.local",
		HA1MD5: "0123456789abcdef0123456789abcdef", HA1SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		CreatedAt: baseTime.Add(-time.Hour), UpdatedAt: baseTime.Add(-time.Minute),
	}
	if err := s.CreateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	got, err := s.User(ctx, "1001")
	if err != nil {
		t.Fatal(err)
	}
	want := alice
	want.CreatedAt, want.UpdatedAt = storedTime(alice.CreatedAt), storedTime(alice.UpdatedAt)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("User = %+v\nwant   %+v", got, want)
	}

	if err := s.CreateUser(ctx, User{Name: "1001"}); !errors.Is(err, ErrExists) {
		t.Errorf("second CreateUser = %v, want ErrExists", err)
	}
	if err := s.CreateUser(ctx, User{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateUser without a name = %v, want ErrInvalid", err)
	}
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(nobody) = %v, want ErrNotFound", err)
	}

	// Zero timestamps are the store's clock.
	if err := s.CreateUser(ctx, User{Name: "1000", Realm: "r"}); err != nil {
		t.Fatal(err)
	}
	bob, err := s.User(ctx, "1000")
	if err != nil {
		t.Fatal(err)
	}
	if !bob.CreatedAt.Equal(storedTime(baseTime)) || !bob.UpdatedAt.Equal(storedTime(baseTime)) {
		t.Errorf("zero timestamps stored as %v/%v, want %v", bob.CreatedAt, bob.UpdatedAt, baseTime)
	}

	// Update replaces everything but CreatedAt.
	upd := User{Name: "1001", DisplayName: "Alice B", Realm: "other", HA1MD5: "m", HA1SHA256: "s", FromConfig: true,
		CreatedAt: baseTime.Add(time.Hour)}
	if err := s.UpdateUser(ctx, upd); err != nil {
		t.Fatal(err)
	}
	got, err = s.User(ctx, "1001")
	if err != nil {
		t.Fatal(err)
	}
	want = upd
	want.CreatedAt, want.UpdatedAt = storedTime(alice.CreatedAt), storedTime(baseTime)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after UpdateUser = %+v\nwant           %+v", got, want)
	}
	if err := s.UpdateUser(ctx, User{Name: "nobody"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateUser(nobody) = %v, want ErrNotFound", err)
	}

	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Name != "1000" || users[1].Name != "1001" {
		t.Errorf("Users = %+v, want 1000 then 1001", users)
	}

	// Delete takes the user's bindings with it, and only those.
	b1, b2 := testBinding("1001", 1), testBinding("1000", 2)
	if err := s.ApplyBindings(ctx, []Binding{b1, b2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "1001"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "1001"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User after delete = %v, want ErrNotFound", err)
	}
	bs := bindingMap(t, s)
	if _, ok := bs[b1.ID]; ok || len(bs) != 1 {
		t.Errorf("bindings after DeleteUser = %v, want only %s", bs, b2.ID)
	}
	if err := s.DeleteUser(ctx, "1001"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteUser = %v, want ErrNotFound", err)
	}
}

func TestSyncConfigUsers(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	clock := baseTime
	s.now = func() time.Time { return clock }

	cfg := func(name, display string) User {
		return User{Name: name, DisplayName: display, Realm: "switchboard.local", HA1MD5: "md5-" + name, HA1SHA256: "sha-" + name}
	}
	// An API user, and a config user that will go away, both with bindings.
	if err := s.CreateUser(ctx, User{Name: "2001", DisplayName: "API user"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncConfigUsers(ctx, []User{cfg("1001", "Alice"), cfg("1002", "Bob")}); err != nil {
		t.Fatal(err)
	}
	bAPI, bAlice, bBob := testBinding("2001", 1), testBinding("1001", 2), testBinding("1002", 3)
	if err := s.ApplyBindings(ctx, []Binding{bAPI, bAlice, bBob}, nil); err != nil {
		t.Fatal(err)
	}
	alice, err := s.User(ctx, "1001")
	if err != nil {
		t.Fatal(err)
	}
	if !alice.FromConfig || alice.DisplayName != "Alice" || alice.HA1SHA256 != "sha-1001" {
		t.Fatalf("config user = %+v", alice)
	}

	// Same list again: nothing changes, not even UpdatedAt.
	clock = baseTime.Add(time.Hour)
	if err := s.SyncConfigUsers(ctx, []User{cfg("1001", "Alice"), cfg("1002", "Bob")}); err != nil {
		t.Fatal(err)
	}
	again, _ := s.User(ctx, "1001")
	if !reflect.DeepEqual(again, alice) {
		t.Errorf("unchanged config user rewritten: %+v, was %+v", again, alice)
	}

	// Bob leaves the config, Alice changes, the API user 2001 is untouched,
	// and an API user of the same name as a new config user is taken over.
	if err := s.CreateUser(ctx, User{Name: "1003", DisplayName: "was API"}); err != nil {
		t.Fatal(err)
	}
	clock = baseTime.Add(2 * time.Hour)
	if err := s.SyncConfigUsers(ctx, []User{cfg("1001", "Alice B"), cfg("1003", "Carol")}); err != nil {
		t.Fatal(err)
	}
	users, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]User{}
	for _, u := range users {
		byName[u.Name] = u
	}
	if _, ok := byName["1002"]; ok {
		t.Error("stale config user 1002 kept")
	}
	if u, ok := byName["2001"]; !ok || u.FromConfig || u.DisplayName != "API user" {
		t.Errorf("API user 2001 = %+v, %v; want kept as is", u, ok)
	}
	if u := byName["1001"]; u.DisplayName != "Alice B" || !u.UpdatedAt.Equal(storedTime(clock)) || !u.CreatedAt.Equal(alice.CreatedAt) {
		t.Errorf("changed config user = %+v", u)
	}
	if u := byName["1003"]; !u.FromConfig || u.DisplayName != "Carol" {
		t.Errorf("config user 1003 = %+v, want taken over from the API", u)
	}
	bs := bindingMap(t, s)
	if _, ok := bs[bBob.ID]; ok {
		t.Error("binding of removed config user kept")
	}
	for _, id := range []string{bAPI.ID, bAlice.ID} {
		if _, ok := bs[id]; !ok {
			t.Errorf("binding %s lost", id)
		}
	}

	// An empty config removes every config user, and only those.
	if err := s.SyncConfigUsers(ctx, nil); err != nil {
		t.Fatal(err)
	}
	users, _ = s.Users(ctx)
	if len(users) != 1 || users[0].Name != "2001" {
		t.Errorf("after syncing no users: %+v, want only 2001", users)
	}
	if err := s.SyncConfigUsers(ctx, []User{{Name: ""}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("SyncConfigUsers with an empty name = %v, want ErrInvalid", err)
	}
}
