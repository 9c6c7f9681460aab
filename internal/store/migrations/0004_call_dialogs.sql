-- 0004: the SIP dialogs of answered calls in progress, so that a server
-- restarted after a crash can end them with BYE: otherwise the phones (and
-- a trunk provider, which bills by the minute) stay in a call whose audio
-- nobody relays any more.
CREATE TABLE call_dialogs (
	call_id TEXT PRIMARY KEY,
	dialogs TEXT NOT NULL -- JSON, written and read by the SIP layer only
);
