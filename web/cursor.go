package web

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
)

// Cursors are opaque to clients: the key of the last item of a page and a
// short checksum of it, base64url-encoded so that keys with '|' or '/' need
// no escaping. The checksum tells a cursor this server issued from any
// other string, which would otherwise decode to some key and quietly give
// a wrong page.

// cursorSum is the length of a cursor's checksum.
const cursorSum = 4

func cursorChecksum(key []byte) []byte {
	sum := sha256.Sum256(key)
	return sum[:cursorSum]
}

func encodeCursor(key string) string {
	b := append([]byte(key), cursorChecksum([]byte(key))...)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errCursor = errors.New("cursor is not one this server issued")

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) <= cursorSum {
		return "", errCursor
	}
	key, sum := b[:len(b)-cursorSum], b[len(b)-cursorSum:]
	if !bytes.Equal(sum, cursorChecksum(key)) {
		return "", errCursor
	}
	return string(key), nil
}

// pageOf returns the page of items that follows the item keyed after
// (all of them from the start when after is ""), sorted by key.
func pageOf[T any](items []T, key func(T) string, limit int, after string) Page[T] {
	slices.SortFunc(items, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	start := 0
	if after != "" {
		start, _ = slices.BinarySearchFunc(items, after, func(it T, k string) int {
			if key(it) <= k {
				return -1
			}
			return 1
		})
	}
	rest := items[start:]
	p := Page[T]{Items: rest[:min(limit, len(rest))]}
	if len(rest) > limit {
		p.NextCursor = encodeCursor(key(p.Items[len(p.Items)-1]))
	}
	if p.Items == nil {
		p.Items = []T{}
	}
	return p
}
