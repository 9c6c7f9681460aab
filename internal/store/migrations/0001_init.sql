-- 0001: users, registrar bindings and call records.
-- Times are Unix milliseconds (UTC). NULL in answered_at/ended_at means "not yet".

CREATE TABLE users (
    name         TEXT    NOT NULL PRIMARY KEY,
    display_name TEXT    NOT NULL DEFAULT '',
    realm        TEXT    NOT NULL DEFAULT '',
    ha1_md5      TEXT    NOT NULL DEFAULT '',
    ha1_sha256   TEXT    NOT NULL DEFAULT '',
    from_config  INTEGER NOT NULL DEFAULT 0 CHECK (from_config IN (0, 1)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

-- Registrar bindings (RFC 3261 §10). Deleting a user deletes its bindings.
CREATE TABLE bindings (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_name  TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    contact    TEXT    NOT NULL,
    instance   TEXT    NOT NULL DEFAULT '',
    reg_id     INTEGER NOT NULL DEFAULT 0,
    source     TEXT    NOT NULL DEFAULT '',
    transport  TEXT    NOT NULL DEFAULT '',
    user_agent TEXT    NOT NULL DEFAULT '',
    call_id    TEXT    NOT NULL DEFAULT '',
    cseq       INTEGER NOT NULL DEFAULT 0,
    q          REAL    NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX bindings_by_user ON bindings (user_name);
CREATE INDEX bindings_by_expiry ON bindings (expires_at);

-- One row per call, written when the call starts and updated when it ends.
CREATE TABLE calls (
    id          TEXT    NOT NULL PRIMARY KEY,
    caller      TEXT    NOT NULL DEFAULT '',
    callee      TEXT    NOT NULL DEFAULT '',
    caller_uri  TEXT    NOT NULL DEFAULT '',
    callee_uri  TEXT    NOT NULL DEFAULT '',
    direction   TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER NOT NULL,
    answered_at INTEGER,
    ended_at    INTEGER,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    result      TEXT    NOT NULL DEFAULT '',
    status      INTEGER NOT NULL DEFAULT 0,
    hangup_by   TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT '',
    legs        TEXT -- JSON array of LegStats, NULL when there are none
) STRICT;

-- Newest-first listing and its (started_at, id) cursor.
CREATE INDEX calls_by_start ON calls (started_at, id);
CREATE INDEX calls_by_caller ON calls (caller, started_at);
CREATE INDEX calls_by_callee ON calls (callee, started_at);
-- Start-up sweep of calls that were up when the process died.
CREATE INDEX calls_open ON calls (started_at) WHERE ended_at IS NULL;
