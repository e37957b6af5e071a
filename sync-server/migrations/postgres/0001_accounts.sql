-- The station's accounts on PostgreSQL (issue 17): the same tables as the
-- embedded store's accounts.sqlite after its migration 0010, in one step.
-- Times are Unix milliseconds, as there; secrets only as SHA-256 hashes.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    area          TEXT NOT NULL,
    area_epoch    BIGINT NOT NULL DEFAULT 0,
    password_hash TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE enrollment_codes (
    code_hash  BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    actor        TEXT NOT NULL UNIQUE,
    token_hash   BYTEA NOT NULL UNIQUE,
    enrolled_at  BIGINT NOT NULL,
    revoked_at   BIGINT,
    area_epoch   BIGINT NOT NULL DEFAULT 0,
    last_seen_at BIGINT
);

CREATE TABLE device_blobs (
    device_id TEXT NOT NULL REFERENCES devices (id),
    hash      TEXT NOT NULL,
    PRIMARY KEY (device_id, hash)
);

CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE receipts (
    token_hash BYTEA PRIMARY KEY,
    case_id    TEXT NOT NULL,
    phone      TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX receipts_by_case ON receipts (case_id);

CREATE TABLE steward_requests (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lane       TEXT NOT NULL,
    name       TEXT NOT NULL,
    phone      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    user_id    TEXT
);

CREATE TABLE alert_sources (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    shop_id    TEXT,
    lat        DOUBLE PRECISION,
    lon        DOUBLE PRECISION,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE reminders (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id  TEXT NOT NULL,
    category TEXT NOT NULL,
    source   TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at  BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    alerts   BIGINT NOT NULL,
    case_id  TEXT
);
CREATE INDEX reminders_open ON reminders (shop_id, category) WHERE case_id IS NULL;

CREATE TABLE alerts (
    source      TEXT NOT NULL,
    alert_id    TEXT NOT NULL,
    reminder_id BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    photo       TEXT,
    PRIMARY KEY (source, alert_id)
);
CREATE INDEX alerts_reminder ON alerts (reminder_id) WHERE photo IS NOT NULL;

CREATE TABLE open311_keys (
    key_hash   BYTEA PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Bumped by every change to who a token belongs to (users' areas, devices): an instance's remembered
-- authentications are good while it stays the same (SQLite's data_version).
CREATE TABLE accounts_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL);
INSERT INTO accounts_version VALUES (TRUE, 0);
CREATE FUNCTION bump_accounts_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts_version SET version = version + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER users_changed AFTER INSERT OR DELETE OR UPDATE OF role, area, area_epoch ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_accounts_version();
CREATE TRIGGER devices_changed AFTER INSERT OR DELETE OR UPDATE OF user_id, revoked_at, area_epoch ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION bump_accounts_version();
