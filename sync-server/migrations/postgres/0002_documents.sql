-- The authoritative documents and the change feed on PostgreSQL (issue 17).
--
-- A push writes its changes here with the id of the transaction that wrote
-- them (`xid`). Row ids are taken at insert but become visible at commit, so
-- a reader that followed `id` could pass a change whose transaction committed
-- late, and never see it. The feed's position (`pos`) is therefore given
-- after commit, by one sequencer run at a time, to the committed changes
-- that have none, in transaction order. Pulls follow `pos`.
-- docs/adr/0013-city-storage.md explains why.
CREATE TABLE documents (
    id   TEXT PRIMARY KEY,
    data BYTEA NOT NULL
);

CREATE TABLE feed (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    pos         BIGINT UNIQUE,
    doc_id      TEXT NOT NULL,
    hash        BYTEA NOT NULL,
    change      BYTEA NOT NULL,
    received_at BIGINT
);
CREATE INDEX feed_unsequenced ON feed (xid, id) WHERE pos IS NULL;

-- Every actor with changes in the feed: none is bound to a new device.
CREATE TABLE actors (
    actor BYTEA PRIMARY KEY
);
