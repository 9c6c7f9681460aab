// Package webhook delivers outbox events to HTTP receivers, signed per the
// Standard Webhooks specification (https://www.standardwebhooks.com/), in
// order per receiver, retried with exponential backoff until delivered or
// expired.
//
// The events and their delivery rows are in the store (see
// store.AppendEvents): the Deliverer only reads the queue of each webhook
// and records the outcome of each attempt, so a restart, even after kill -9,
// loses nothing that was committed. Delivery is at least once: a receiver
// may see an event again (after a crash between its 2xx and the record of
// it) and should dedupe on webhook-id.
package webhook
