// Package webtest checks real HTTP responses against the OpenAPI 3.1
// document the server publishes, for tests: a response passes only if its
// status is documented for the operation and its body matches the
// documented schema, with no property the schema lacks and every property
// it requires.
//
// It implements the part of JSON Schema 2020-12 that the document uses and
// rejects any keyword it does not know, so that it can never pass a body by
// ignoring a rule.
package webtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"mime"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Doc is a parsed OpenAPI document. It is safe for concurrent use.
type Doc struct {
	paths   map[string]map[string]map[string]any // path template → method → operation
	schemas map[string]any

	mu   sync.Mutex
	seen map[string]bool // "METHOD template" answered with a 2xx
}

// Parse reads an OpenAPI 3.1 document in JSON.
func Parse(data []byte) (*Doc, error) {
	var raw struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("webtest: parse document: %w", err)
	}
	if !strings.HasPrefix(raw.OpenAPI, "3.1") {
		return nil, fmt.Errorf("webtest: openapi %q, want 3.1", raw.OpenAPI)
	}
	if len(raw.Paths) == 0 {
		return nil, fmt.Errorf("webtest: document has no paths")
	}
	return &Doc{paths: raw.Paths, schemas: raw.Components.Schemas, seen: map[string]bool{}}, nil
}

// Operations lists "METHOD template" for every operation in the document.
func (d *Doc) Operations() []string {
	var out []string
	for tpl, ops := range d.paths {
		for m := range ops {
			if isMethod(m) {
				out = append(out, strings.ToUpper(m)+" "+tpl)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Unexercised lists the operations that no checked response answered with
// a 2xx status.
func (d *Doc) Unexercised() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, op := range d.Operations() {
		if !d.seen[op] {
			out = append(out, op)
		}
	}
	return out
}

func isMethod(m string) bool {
	switch m {
	case "get", "put", "post", "delete", "options", "head", "patch", "trace":
		return true
	}
	return false
}

// Check validates one response to method on rawPath (the request's
// escaped path, with or without query) against the document.
func (d *Doc) Check(method, rawPath string, status int, contentType string, body []byte) error {
	rawPath, _, _ = strings.Cut(rawPath, "?")
	tpl, ok := d.match(rawPath)
	if !ok {
		return fmt.Errorf("%s %s: no such path in the document", method, rawPath)
	}
	op, ok := d.paths[tpl][strings.ToLower(method)]
	if !ok {
		return fmt.Errorf("%s %s: method not in the document", method, tpl)
	}
	where := fmt.Sprintf("%s %s → %d", method, tpl, status)
	responses, _ := op["responses"].(map[string]any)
	resp, ok := responses[strconv.Itoa(status)].(map[string]any)
	if !ok {
		if resp, ok = responses["default"].(map[string]any); !ok {
			return fmt.Errorf("%s: status not documented", where)
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return fmt.Errorf("%s: documented without a body, got %q", where, body)
		}
	} else {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return fmt.Errorf("%s: content type %q: %w", where, contentType, err)
		}
		media, ok := content[mt].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: content type %s not documented", where, mt)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("%s: body is not JSON: %w", where, err)
		}
		if dec.More() {
			return fmt.Errorf("%s: trailing data after the JSON body", where)
		}
		if err := d.Validate(media["schema"], v); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if status >= 200 && status < 300 {
		d.mu.Lock()
		d.seen[strings.ToUpper(method)+" "+tpl] = true
		d.mu.Unlock()
	}
	return nil
}

// CheckStream validates a streamed response (such as Server-Sent Events),
// whose body is not one JSON document: its status and content type must be
// documented. It marks the operation exercised like Check.
func (d *Doc) CheckStream(method, rawPath string, status int, contentType string) error {
	rawPath, _, _ = strings.Cut(rawPath, "?")
	tpl, ok := d.match(rawPath)
	if !ok {
		return fmt.Errorf("%s %s: no such path in the document", method, rawPath)
	}
	op, ok := d.paths[tpl][strings.ToLower(method)]
	if !ok {
		return fmt.Errorf("%s %s: method not in the document", method, tpl)
	}
	where := fmt.Sprintf("%s %s → %d", method, tpl, status)
	responses, _ := op["responses"].(map[string]any)
	resp, ok := responses[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return fmt.Errorf("%s: status not documented", where)
	}
	content, _ := resp["content"].(map[string]any)
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%s: content type %q: %w", where, contentType, err)
	}
	if _, ok := content[mt]; !ok {
		return fmt.Errorf("%s: content type %s not documented", where, mt)
	}
	if status >= 200 && status < 300 {
		d.mu.Lock()
		d.seen[strings.ToUpper(method)+" "+tpl] = true
		d.mu.Unlock()
	}
	return nil
}

// match finds the path template for an escaped request path; the one with
// the most literal segments wins.
func (d *Doc) match(rawPath string) (string, bool) {
	segs := strings.Split(rawPath, "/")
	best, bestLit := "", -1
	for tpl := range d.paths {
		tsegs := strings.Split(tpl, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		lit, ok := 0, true
		for i, ts := range tsegs {
			if strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}") {
				if segs[i] == "" {
					ok = false
					break
				}
				continue
			}
			if ts != segs[i] {
				ok = false
				break
			}
			lit++
		}
		if ok && lit > bestLit {
			best, bestLit = tpl, lit
		}
	}
	return best, bestLit >= 0
}

// Validate checks a decoded JSON value (numbers as json.Number) against a
// schema of the document.
func (d *Doc) Validate(schema, v any) error {
	errs := d.validate(schema, v, "body", 0)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// known are the keywords the validator understands; annotations (no effect
// on validity) are known too.
var known = map[string]bool{
	"$ref": true, "type": true, "enum": true, "properties": true, "required": true,
	"additionalProperties": true, "items": true, "format": true, "pattern": true,
	"minLength": true, "maxLength": true, "minimum": true, "maximum": true,
	"minItems": true, "maxItems": true,
	// annotations
	"description": true, "examples": true, "default": true, "title": true, "deprecated": true,
	"readOnly": true, "writeOnly": true, "$schema": true,
}

func (d *Doc) validate(schema, v any, at string, depth int) []string {
	if depth > 64 {
		return []string{at + ": schema nesting too deep"}
	}
	s, ok := schema.(map[string]any)
	if !ok {
		if b, ok := schema.(bool); ok {
			if b {
				return nil
			}
			return []string{at + ": not allowed by schema false"}
		}
		return []string{fmt.Sprintf("%s: schema is %T, not an object", at, schema)}
	}
	for k := range s {
		if !known[k] {
			return []string{fmt.Sprintf("%s: schema keyword %q not supported by the validator", at, k)}
		}
	}
	if ref, ok := s["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		target, found := d.schemas[name]
		if !ok || !found {
			return []string{fmt.Sprintf("%s: unresolvable $ref %q", at, ref)}
		}
		if len(s) > 1 {
			return []string{fmt.Sprintf("%s: keywords beside $ref %q not supported", at, ref)}
		}
		return d.validate(target, v, at, depth+1)
	}
	if t, ok := s["type"]; ok {
		if err := checkType(t, v); err != "" {
			return []string{at + ": " + err}
		}
	}
	if enum, ok := s["enum"].([]any); ok {
		if !slices.ContainsFunc(enum, func(e any) bool { return jsonEqual(e, v) }) {
			return []string{fmt.Sprintf("%s: %v is not one of %v", at, v, enum)}
		}
	}
	var errs []string
	switch v := v.(type) {
	case map[string]any:
		errs = append(errs, d.validateObject(s, v, at, depth)...)
	case []any:
		if n, ok := num(s["minItems"]); ok && float64(len(v)) < n {
			errs = append(errs, fmt.Sprintf("%s: %d items, fewer than %v", at, len(v), n))
		}
		if n, ok := num(s["maxItems"]); ok && float64(len(v)) > n {
			errs = append(errs, fmt.Sprintf("%s: %d items, more than %v", at, len(v), n))
		}
		if items, ok := s["items"]; ok {
			for i, e := range v {
				errs = append(errs, d.validate(items, e, fmt.Sprintf("%s[%d]", at, i), depth+1)...)
			}
		}
	case string:
		errs = append(errs, validateString(s, v, at)...)
	case json.Number:
		f, _ := v.Float64()
		if n, ok := num(s["minimum"]); ok && f < n {
			errs = append(errs, fmt.Sprintf("%s: %v is below the minimum %v", at, v, n))
		}
		if n, ok := num(s["maximum"]); ok && f > n {
			errs = append(errs, fmt.Sprintf("%s: %v is above the maximum %v", at, v, n))
		}
	}
	return errs
}

func (d *Doc) validateObject(s map[string]any, v map[string]any, at string, depth int) []string {
	var errs []string
	props, _ := s["properties"].(map[string]any)
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			name, _ := r.(string)
			if _, ok := v[name]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required property %q missing", at, name))
			}
		}
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ps, ok := props[k]; ok {
			errs = append(errs, d.validate(ps, v[k], at+"."+k, depth+1)...)
			continue
		}
		addl, has := s["additionalProperties"]
		if !has && props == nil && s["type"] == nil {
			continue // a schema for any value
		}
		if !has {
			// JSON Schema allows anything; the API must say so explicitly.
			errs = append(errs, fmt.Sprintf("%s: property %q not in the schema, which does not set additionalProperties", at, k))
			continue
		}
		if addl == false {
			errs = append(errs, fmt.Sprintf("%s: property %q not in the schema (additionalProperties false)", at, k))
			continue
		}
		errs = append(errs, d.validate(addl, v[k], at+"."+k, depth+1)...)
	}
	return errs
}

func validateString(s map[string]any, v, at string) []string {
	var errs []string
	n := utf8.RuneCountInString(v)
	if m, ok := num(s["minLength"]); ok && float64(n) < m {
		errs = append(errs, fmt.Sprintf("%s: %q shorter than %v", at, v, m))
	}
	if m, ok := num(s["maxLength"]); ok && float64(n) > m {
		errs = append(errs, fmt.Sprintf("%s: %q longer than %v", at, v, m))
	}
	if p, ok := s["pattern"].(string); ok {
		re, err := regexp.Compile(p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: pattern %q: %v", at, p, err))
		} else if !re.MatchString(v) {
			errs = append(errs, fmt.Sprintf("%s: %q does not match %s", at, v, p))
		}
	}
	switch s["format"] {
	case "date-time":
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %q is not an RFC 3339 date-time", at, v))
		}
	case "uri":
		if u, err := url.Parse(v); err != nil || u.Scheme == "" {
			errs = append(errs, fmt.Sprintf("%s: %q is not an absolute URI", at, v))
		}
	}
	return errs
}

// checkType returns "" when v has one of the types t names.
func checkType(t, v any) string {
	var types []string
	switch t := t.(type) {
	case string:
		types = []string{t}
	case []any:
		for _, e := range t {
			s, _ := e.(string)
			types = append(types, s)
		}
	}
	got := jsonType(v)
	for _, want := range types {
		if want == got || (want == "number" && got == "integer") {
			return ""
		}
	}
	return fmt.Sprintf("%s where the schema wants %s", got, strings.Join(types, " or "))
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if _, ok := new(big.Int).SetString(v.String(), 10); ok {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func num(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
