package main

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Bencode (the encoding of rtpengine's ng control protocol): integers
// i42e, strings 4:spam, lists l…e and dictionaries d…e with sorted keys.
// Values are int64, string, []any and map[string]any.

// maxBencodeDepth bounds nesting so that hostile input cannot exhaust the
// stack.
const maxBencodeDepth = 32

var errBencode = errors.New("bencode")

// bencode appends the encoding of v to b.
func bencode(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case int:
		return bencode(b, int64(v))
	case int64:
		b = strconv.AppendInt(append(b, 'i'), v, 10)
		return append(b, 'e'), nil
	case string:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		return append(append(b, ':'), v...), nil
	case []any:
		b = append(b, 'l')
		for _, e := range v {
			var err error
			if b, err = bencode(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, 'd')
		for _, k := range keys {
			b, _ = bencode(b, k)
			var err error
			if b, err = bencode(b, v[k]); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	default:
		return nil, fmt.Errorf("%w: cannot encode %T", errBencode, v)
	}
}

// bdecode decodes one value from the start of b and returns the rest.
func bdecode(b []byte) (v any, rest []byte, err error) {
	return bdecodeDepth(b, 0)
}

func bdecodeDepth(b []byte, depth int) (any, []byte, error) {
	if depth > maxBencodeDepth {
		return nil, nil, fmt.Errorf("%w: nested deeper than %d", errBencode, maxBencodeDepth)
	}
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: unexpected end", errBencode)
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 0 {
			return nil, nil, fmt.Errorf("%w: unterminated integer", errBencode)
		}
		n, err := strconv.ParseInt(string(b[1:end]), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: integer %q", errBencode, b[1:end])
		}
		return n, b[end+1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 0 {
			return nil, nil, fmt.Errorf("%w: string without length", errBencode)
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || n > len(b)-colon-1 {
			return nil, nil, fmt.Errorf("%w: string length %q", errBencode, b[:colon])
		}
		return string(b[colon+1 : colon+1+n]), b[colon+1+n:], nil
	case c == 'l':
		var list []any
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			var e any
			var err error
			if e, b, err = bdecodeDepth(b, depth+1); err != nil {
				return nil, nil, err
			}
			list = append(list, e)
		}
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("%w: unterminated list", errBencode)
		}
		return list, b[1:], nil
	case c == 'd':
		dict := map[string]any{}
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			k, rest, err := bdecodeDepth(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("%w: dictionary key is %T", errBencode, k)
			}
			var e any
			if e, b, err = bdecodeDepth(rest, depth+1); err != nil {
				return nil, nil, err
			}
			dict[key] = e
		}
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("%w: unterminated dictionary", errBencode)
		}
		return dict, b[1:], nil
	default:
		return nil, nil, fmt.Errorf("%w: unexpected byte %q", errBencode, c)
	}
}
