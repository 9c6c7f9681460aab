-- 0003: the trunk a call went out or came in through, and the number (DID)
-- an inbound call dialled. Empty for calls that used no trunk.

ALTER TABLE calls ADD COLUMN trunk TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN did   TEXT NOT NULL DEFAULT '';
