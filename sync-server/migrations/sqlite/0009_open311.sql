-- Issue 16. Keys an administrator issues to other city systems that post
-- service requests through Open311 (only their SHA-256 is kept).
CREATE TABLE open311_keys (
    key_hash BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
