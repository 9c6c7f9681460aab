// Package events carries Switchboard's events from where they happen to
// their consumers: the Recorder writes them to the store's outbox (for
// webhooks) without blocking the signalling plane, and the Hub fans them out
// in memory to live subscribers such as the Server-Sent Events stream of
// /api/v1/events.
package events
