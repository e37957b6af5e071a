-- Issue 16. Cameras and sensors: the sources an administrator registered
-- (with the secret their alerts are signed with), every alert once by its
-- source's own id, and the reminders they made to shops.
CREATE TABLE alert_sources (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    shop_id TEXT,
    lat REAL,
    lon REAL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE reminders (
    id INTEGER PRIMARY KEY,
    shop_id TEXT NOT NULL,
    category TEXT NOT NULL,
    source TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    alerts INTEGER NOT NULL,
    -- The case it became when seen again after its deadline.
    case_id TEXT
);
CREATE INDEX reminders_open ON reminders (shop_id, category) WHERE case_id IS NULL;
CREATE TABLE alerts (
    source TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    reminder_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (source, alert_id)
);
