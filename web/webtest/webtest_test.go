package webtest

import (
	"strings"
	"testing"
)

const doc = `{
  "openapi": "3.1.0",
  "paths": {
    "/things/{id}": {
      "get": {"responses": {
        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
        "204": {"description": "none"}
      }}
    },
    "/things/special": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"type": "string", "enum": ["special"]}}}}}}},
    "/odd": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"oneOf": [{"type": "string"}]}}}}}}}
  },
  "components": {"schemas": {
    "Thing": {
      "type": "object", "additionalProperties": false, "required": ["id", "tags"],
      "properties": {
        "id": {"type": "string", "pattern": "^t[0-9]+$"},
        "count": {"type": "integer", "minimum": 0},
        "at": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "state": {"type": "string", "enum": ["a", "b"]}
      }
    }
  }}
}`

func TestCheck(t *testing.T) {
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path   string
		status int
		body   string
		want   string // error substring; empty means valid
	}{
		"valid":              {"/things/t1", 200, `{"id":"t1","tags":[],"count":3,"at":"2026-01-02T03:04:05Z","state":"a"}`, ""},
		"extra property":     {"/things/t1", 200, `{"id":"t1","tags":[],"secret":"x"}`, `property "secret" not in the schema`},
		"missing required":   {"/things/t1", 200, `{"id":"t1"}`, `required property "tags" missing`},
		"wrong type":         {"/things/t1", 200, `{"id":"t1","tags":[1]}`, "integer where the schema wants string"},
		"null array":         {"/things/t1", 200, `{"id":"t1","tags":null}`, "null where the schema wants array"},
		"not integer":        {"/things/t1", 200, `{"id":"t1","tags":[],"count":1.5}`, "number where the schema wants integer"},
		"below minimum":      {"/things/t1", 200, `{"id":"t1","tags":[],"count":-1}`, "below the minimum"},
		"bad date":           {"/things/t1", 200, `{"id":"t1","tags":[],"at":"yesterday"}`, "not an RFC 3339"},
		"bad enum":           {"/things/t1", 200, `{"id":"t1","tags":[],"state":"c"}`, "is not one of"},
		"bad pattern":        {"/things/t1", 200, `{"id":"x","tags":[]}`, "does not match"},
		"undocumented":       {"/things/t1", 404, `{}`, "status not documented"},
		"unknown path":       {"/nothing", 200, `{}`, "no such path"},
		"body where none":    {"/things/t1", 204, `{}`, "without a body"},
		"literal wins":       {"/things/special", 200, `"special"`, ""},
		"unsupported schema": {"/odd", 200, `"x"`, `keyword "oneOf" not supported`},
	} {
		t.Run(name, func(t *testing.T) {
			err := d.Check("GET", tc.path, tc.status, "application/json", []byte(tc.body))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if got := d.Unexercised(); len(got) != 1 || got[0] != "GET /odd" {
		t.Fatalf("unexercised %v", got)
	}
}
