package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
)

// openAPIPath is where the OpenAPI document is served, without extension:
// .json (3.1), .yaml, -3.0.json and -3.0.yaml.
const openAPIPath = "/api/v1/openapi"

const apiDescription = `The Switchboard REST API: users, registrations, calls in progress, call
records, trunks and server status.

**Authentication.** Every request under /api/v1 (except this document) needs
` + "`Authorization: Bearer <token>`" + ` with one of the tokens in the config file's
` + "`web.api_tokens`" + `. On the local control socket (` + "`control.socket`" + `, used by
` + "`switchboard ctl`" + `) no token is needed: the socket's file permissions (0600)
are the access control.

**Errors** are RFC 9457 problem details (` + "`application/problem+json`" + `): 400 for a
body that is not JSON, 401 without a valid token, 404 for an unknown id or
path, 405 for a method the path does not have (` + "`Allow`" + ` lists those it has),
409 when a user exists, 415 for a body whose Content-Type is not JSON, 422
when a field or query parameter is invalid (` + "`errors[].location`" + ` names it).

**Lists** are paginated by cursor: ` + "`?limit=`" + ` (default 100, at most 1000) and
` + "`?cursor=`" + ` with the ` + "`next_cursor`" + ` of the previous page; the last page has no
` + "`next_cursor`" + `. Cursors are opaque.

**Users from the config file** (` + "`from_config: true`" + `) can be changed or deleted
here, but the file is authoritative: the next start syncs them back from it.
Passwords are write-only and never stored: only their digest hashes (HA1,
MD5 and SHA-256) for the server's realm.

**Calls** in progress are ended with ` + "`DELETE /api/v1/calls/{id}`" + ` (BYE to both
sides). ` + "`POST /api/v1/calls`" + ` places one (click-to-call): it rings the
devices of ` + "`from`" + ` and, when one answers, calls ` + "`to`" + ` from it.

**Events** stream live at ` + "`GET /api/v1/events`" + ` (Server-Sent Events): the same
events, with the same bodies, as the webhooks receive.`

const (
	tagUsers   = "Users"
	tagRegs    = "Registrations"
	tagCalls   = "Calls"
	tagRecords = "Call records"
	tagTrunks  = "Trunks"
	tagServer  = "Server"
	tagEvents  = "Events"
)

// newAPI builds the huma API on the server's mux and registers every
// operation; the OpenAPI document is generated from them.
func newAPI(s *Server) huma.API {
	cfg := huma.DefaultConfig("Switchboard API", s.cfg.Version)
	cfg.Info.Description = apiDescription
	cfg.OpenAPIPath = openAPIPath
	// The bundled reference pages load their scripts from a CDN: none, so
	// that nothing depends on the internet. No $schema links either.
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	cfg.CreateHooks = nil
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "One of web.api_tokens. Not needed on the control socket."},
	}
	cfg.Security = []map[string][]string{{"bearer": {}}}
	// Relative to the address the document was fetched from: the same
	// document serves every web.listen.
	cfg.Servers = []*huma.Server{{URL: "/", Description: "This Switchboard server (web.listen)."}}
	cfg.Tags = []*huma.Tag{
		{Name: tagUsers, Description: "SIP accounts: extensions, display names and passwords (stored as digest hashes)."},
		{Name: tagRegs, Description: "Devices registered now, one binding per device."},
		{Name: tagCalls, Description: "Calls in progress: list, hang up, and click-to-call."},
		{Name: tagRecords, Description: "Finished and current calls, kept in the database."},
		{Name: tagTrunks, Description: "External SIP providers and their state."},
		{Name: tagEvents, Description: "Registration, call and trunk events as they happen, and webhook delivery."},
		{Name: tagProtection, Description: "Abuse protection: banned addresses and counters."},
		{Name: tagServer, Description: "Version, uptime, counts and configuration reload."},
	}
	api := humago.New(s.mux, cfg)
	s.registerUsers(api)
	s.registerRegistrations(api)
	s.registerCalls(api)
	s.registerOriginate(api)
	s.registerRecords(api)
	s.registerServer(api)
	s.registerEvents(api)
	s.registerWebhooks(api)
	return api
}

// op describes an operation; every one of them may answer 401.
func op(id, method, path, tag, summary string, errs ...int) huma.Operation {
	return huma.Operation{
		OperationID: id,
		Method:      method,
		Path:        path,
		Tags:        []string{tag},
		Summary:     summary,
		Errors:      append([]int{http.StatusUnauthorized}, errs...),
	}
}

// problem turns a Service error into the API's answer; unexpected errors
// are logged and hidden.
func (s *Server) problem(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return huma.Error404NotFound(what + " not found")
	case errors.Is(err, ErrExists):
		return huma.Error409Conflict(what + " already exists")
	case errors.Is(err, ErrBadCursor):
		return badCursor()
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody reads the answer.
		return huma.NewError(499, "client closed request")
	}
	s.log.Error("api request failed", "what", what, "error", err)
	return huma.Error500InternalServerError("internal error: see the server log")
}

func badCursor() error {
	return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
		Message: "unknown cursor: pass back the next_cursor of the previous page", Location: "query.cursor",
	})
}

// PageParams are the query parameters of a paginated list.
type PageParams struct {
	Limit  int    `query:"limit" default:"100" minimum:"1" maximum:"1000" doc:"Most items to return."`
	Cursor string `query:"cursor" doc:"next_cursor of the previous page."`
}

func (p PageParams) after() (string, error) {
	k, err := decodeCursor(p.Cursor)
	if err != nil {
		return "", badCursor()
	}
	return k, nil
}
