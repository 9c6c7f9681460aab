// Package store keeps Switchboard's state in SQLite: users (as digest HA1
// hashes, never passwords), registrar bindings and call records.
//
// The database runs in WAL mode with synchronous=NORMAL: a committed
// transaction survives the process being killed (a power cut may lose the
// last few commits, which is the trade-off that makes commits cheap). Reads go
// to a pool of read-only connections; every write goes through one writer
// goroutine that owns the only write connection, so writers never fight over
// the database lock, and concurrent writes are committed together in one
// transaction (group commit). That is what lets the registrar acknowledge
// thousands of REGISTERs per second only after their bindings are durable.
//
// The schema is versioned by the SQL files under migrations/, applied in
// order at Open and recorded in the schema_migrations table.
package store
