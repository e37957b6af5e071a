-- The console (issue 14): supervisors and administrators sign in with a
-- password (an Argon2id PHC string; NULL: cannot sign in) and hold a session
-- (only the token's SHA-256 is kept, as for device tokens).
ALTER TABLE users ADD COLUMN password_hash TEXT;
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_id);
