package sip

import (
	"strings"
	"unicode"
)

// quotedDisplayName returns an account's display name as the inside of a
// SIP quoted-string (RFC 3261 §25.1), which is how sipgo writes a From or
// To display name: backslashes and double quotes are escaped as quoted
// pairs, and control characters, which no quoted-string may carry (a line
// break would start a new header), are left out. Display names parsed from
// a phone's request are already in this form and are passed on as they
// came.
func quotedDisplayName(name string) string {
	if !strings.ContainsFunc(name, func(r rune) bool { return r == '"' || r == '\\' || unicode.IsControl(r) }) {
		return name
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case unicode.IsControl(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
