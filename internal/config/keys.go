package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// checkKeys walks the YAML tree beside the Go type of v and reports the first
// mapping key that no field of the struct claims, with its full dotted path,
// e.g. "config: unknown key sip.listn (line 3)".
func checkKeys(n *yaml.Node, path string, v any) error {
	return walk(n, path, reflect.TypeOf(v))
}

func walk(n *yaml.Node, path string, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := walk(c, path, t); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		return walk(n.Alias, path, t)
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return nil // maps (such as trunk inbound) accept any key
		}
		if t == reflect.TypeOf(Duration(0)) {
			return nil
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("config: unknown key %s (line %d)%s", key, k.Line, suggest(k.Value, fields))
			}
			if err := walk(val, key, ft); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		return checkScalar(n, path, t)
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			return nil
		}
		for i, c := range n.Content {
			if err := walk(c, fmt.Sprintf("%s[%d]", path, i), t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = f.Type
	}
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names the closest known key when the unknown one looks like a typo.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for name := range fields {
		if d := distance(key, name); d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Duration is a time.Duration written in YAML as "90s", "5m" or a number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts a Go duration string or a whole number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 30s or 5m", n.Line)
	}
	var secs int64
	if err := n.Decode(&secs); err == nil {
		*d = Duration(time.Duration(secs) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 30s or 5m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// checkScalar decodes a scalar into a value of type t, so that a value of
// the wrong kind is reported with its key, e.g.
// `config: media.port_min "abc" (line 9) must be a whole number`.
func checkScalar(n *yaml.Node, path string, t reflect.Type) error {
	if path == "" || n.Tag == "!!null" {
		return nil
	}
	v := reflect.New(t)
	err := n.Decode(v.Interface())
	if err == nil {
		return nil
	}
	var want string
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "must be a whole number"
		if t == reflect.TypeOf(Duration(0)) {
			want = "is not a duration such as 30s or 5m"
		}
	case reflect.Bool:
		want = "must be true or false"
	case reflect.Float32, reflect.Float64:
		want = "must be a number"
	case reflect.Slice:
		want = "must be a list"
	case reflect.Struct, reflect.Map:
		want = "must be a mapping of keys"
	default:
		want = "is not valid here: " + err.Error()
	}
	return fmt.Errorf("config: %s %q (line %d) %s", path, n.Value, n.Line, want)
}
