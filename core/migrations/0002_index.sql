-- Index tables that screens query. They are rebuilt from the documents whenever
-- this schema changes (the migration is marked as rebuilding the index), so they
-- hold nothing that is not in a document.

CREATE TABLE shops (
    id             TEXT PRIMARY KEY,
    code           TEXT NOT NULL,
    name           TEXT NOT NULL,
    address        TEXT NOT NULL,
    category       TEXT NOT NULL,
    contact_person TEXT NOT NULL,
    contact_phone  TEXT NOT NULL,
    zone           TEXT NOT NULL,
    lat            REAL NOT NULL,  -- zone centroid, WGS-84
    lon            REAL NOT NULL,
    letter_version TEXT,
    letter_signed  TEXT,
    street         TEXT NOT NULL,
    lane           TEXT,
    tags           TEXT NOT NULL,  -- comma-separated, sorted
    status         TEXT NOT NULL
);
CREATE INDEX shops_by_street ON shops (street, lane);

-- Substring search over names and addresses in Chinese: each text is indexed as
-- overlapping character bigrams (plus its last character), and a query becomes a
-- phrase of its bigrams. rowid = shops.rowid. See docs/adr/0003-bigram-search.md.
CREATE VIRTUAL TABLE shop_search USING fts5 (
    name, address,
    content = '', contentless_delete = 1, prefix = '1',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TABLE templates (
    id          TEXT PRIMARY KEY,  -- tmpl/<template>@<version>
    template_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    body        TEXT NOT NULL,     -- the template as JSON, what the checklist screen renders
    UNIQUE (template_id, version)
);

CREATE TABLE categories (
    id            TEXT PRIMARY KEY,
    code          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    grp           TEXT NOT NULL,
    national_code TEXT,
    local         INTEGER NOT NULL
);

CREATE TABLE inspections (
    id               TEXT PRIMARY KEY,
    shop_id          TEXT NOT NULL,
    template_id      TEXT NOT NULL,
    template_version INTEGER NOT NULL,
    inspector        TEXT NOT NULL,
    started_at       INTEGER NOT NULL,  -- ms since the Unix epoch
    ended_at         INTEGER,
    fix_lat          REAL,
    fix_lon          REAL,
    fix_accuracy_m   REAL,
    fix_at           INTEGER,
    applicable       TEXT NOT NULL,     -- item codes, comma-separated, template order
    score            INTEGER,
    verdict          TEXT               -- NULL until submitted
);
CREATE INDEX inspections_by_shop ON inspections (shop_id, started_at);
CREATE INDEX inspections_by_inspector ON inspections (inspector, started_at);

CREATE TABLE inspection_items (
    inspection_id TEXT NOT NULL,
    code          TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    note          TEXT,
    photos        TEXT NOT NULL,  -- comma-separated ids
    PRIMARY KEY (inspection_id, code)
) WITHOUT ROWID;

CREATE TABLE cases (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    category    TEXT NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    shop_id     TEXT,
    description TEXT NOT NULL,
    photos      TEXT NOT NULL,
    deadline    INTEGER,
    reported_by TEXT NOT NULL,
    reported_at INTEGER NOT NULL,
    status      TEXT NOT NULL,
    status_at   INTEGER NOT NULL
);
CREATE INDEX cases_by_status ON cases (status, reported_at);
CREATE INDEX cases_by_shop ON cases (shop_id);

CREATE TABLE case_history (
    case_id TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    status  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    by      TEXT NOT NULL,
    note    TEXT,
    PRIMARY KEY (case_id, idx)
) WITHOUT ROWID;

CREATE TABLE patrols (
    id         TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    points     INTEGER NOT NULL,
    track      TEXT NOT NULL  -- the encoded points, in time order
);
CREATE INDEX patrols_by_user ON patrols (user, started_at);
