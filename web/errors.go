package web

import (
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// Problems never echo what could be a secret: huma puts the offending value
// in each error detail, which for a body that does not parse is the whole
// body (a new user's password with it), and for a bad password field the
// password. Those values are dropped; the message and location stay.
func init() {
	next := huma.NewError
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		err := next(status, msg, errs...)
		if m, ok := err.(*huma.ErrorModel); ok {
			for _, d := range m.Errors {
				if d != nil && secretValue(d.Location) {
					d.Value = nil
				}
			}
		}
		return err
	}
}

// secretValue reports whether the value at location may hold a secret: a
// whole body, or a field whose name says so.
func secretValue(location string) bool {
	l := strings.ToLower(location)
	return l == "body" || strings.Contains(l, "password") || strings.Contains(l, "secret") || strings.Contains(l, "token")
}
