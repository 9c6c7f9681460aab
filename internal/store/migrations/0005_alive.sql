-- 0005: when the server was last known to be running. A running server
-- writes the time every few seconds; after a crash, the next start ends
-- the calls left open at that time rather than at its own start, so a
-- crashed call's duration does not count the time the server was down.
CREATE TABLE alive (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	at INTEGER NOT NULL -- Unix milliseconds
);
