-- 0002: the event outbox and the webhook deliveries it feeds.
-- Times are Unix milliseconds (UTC).

-- Every event, in the order it was written. AUTOINCREMENT: a seq is never
-- reused, even after pruning, so it can serve as a resume cursor.
CREATE TABLE events (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    id   TEXT    NOT NULL UNIQUE,
    type TEXT    NOT NULL,
    time INTEGER NOT NULL,
    data TEXT    NOT NULL -- JSON
) STRICT;

-- Retention pruning.
CREATE INDEX events_by_time ON events (time);

-- One row per (event, webhook) the event is to be sent to. webhook is the
-- webhook's URL. next_attempt_at 0 means "as soon as possible".
CREATE TABLE deliveries (
    seq             INTEGER NOT NULL REFERENCES events (seq),
    webhook         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    delivered_at    INTEGER,
    PRIMARY KEY (seq, webhook)
) STRICT, WITHOUT ROWID;

-- The delivery queue of each webhook, in order: its head is the next to send.
CREATE INDEX deliveries_pending ON deliveries (webhook, seq) WHERE state = 'pending';
