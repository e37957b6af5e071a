-- The authoritative documents and the change feed on PostgreSQL (issue 17).
--
-- A push writes its changes with the id of the transaction that wrote them
-- (`xid`). Row ids are taken at insert but become visible at commit, so a
-- reader that followed `id` could pass a change whose transaction committed
-- late, and never see it. The feed's position (`pos`) is therefore given
-- after commit, by one sequencer run at a time, to the committed changes
-- that have none, in transaction order. Pulls follow `pos`.
-- docs/adr/0013-city-storage.md explains why.
CREATE TABLE documents (
    id   TEXT PRIMARY KEY,
    data BYTEA NOT NULL
);

-- A push writes into the inbox; the sequencer moves the inbox's committed
-- rows into the feed with their positions, in transaction order. The feed is
-- only ever inserted into (no dead rows for readers to step over); the inbox
-- stays small. `id` is the insert-time sequence value, kept for diagnosis.
CREATE TABLE feed_inbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    doc_id      TEXT NOT NULL,
    hash        BYTEA NOT NULL,
    change      BYTEA NOT NULL,
    received_at BIGINT
);
CREATE INDEX feed_inbox_order ON feed_inbox (xid, id);

CREATE TABLE feed (
    pos         BIGINT PRIMARY KEY,
    id          BIGINT NOT NULL,
    doc_id      TEXT NOT NULL,
    hash        BYTEA NOT NULL,
    change      BYTEA NOT NULL,
    received_at BIGINT
);

-- The last position given: one row, written by the sequencer under its lock.
CREATE TABLE feed_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    pos BIGINT NOT NULL
);
INSERT INTO feed_head VALUES (TRUE, 0);

-- Every actor with changes in the feed: none is bound to a new device.
CREATE TABLE actors (
    actor BYTEA PRIMARY KEY
);
