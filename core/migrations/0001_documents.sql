-- The truth: one Automerge document per entity, and the local change log that
-- feeds `changes_since`. Everything else in this database is derived from these.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE documents (
    id   TEXT PRIMARY KEY,  -- "<kind>/<key>", e.g. shop/110106000123X
    data BLOB NOT NULL      -- Automerge save() of the whole document
);

-- Every change this store has (made here or received), in the order it got it.
-- A change's bytes are read from its document when a peer asks for it.
CREATE TABLE changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    hash   BLOB NOT NULL
);
