-- Users, the devices they enrolled, and one-time enrollment codes.
-- Secrets are stored only as SHA-256 hashes.
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    area       TEXT NOT NULL,  -- district / subdistrict / lanes the user works in
    created_at INTEGER NOT NULL
);

CREATE TABLE enrollment_codes (
    code_hash  BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    actor       TEXT NOT NULL UNIQUE,  -- the Automerge actor id bound to this device
    token_hash  BLOB NOT NULL UNIQUE,
    enrolled_at INTEGER NOT NULL,
    revoked_at  INTEGER
);
