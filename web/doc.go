// Package web serves Switchboard over HTTP: the REST API under /api/v1 with
// its OpenAPI 3.1 document, Prometheus metrics, health and readiness probes,
// and the same API on the local control socket that `switchboard ctl` uses.
//
// The package declares what it needs from the rest of the server (Service,
// Trunks) and never imports the signalling or media planes; cmd/switchboard
// wires them in.
package web
