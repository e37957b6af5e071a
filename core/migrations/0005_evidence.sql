-- Evidence (issue 5): photos captured on this device, the blobs waiting to be
-- uploaded, which records refer to which photo, and each record's clock and
-- geofence evidence. The index is rebuilt from the documents afterwards.

-- Photos taken here, with the metadata their record will carry (JSON).
CREATE TABLE photos (
    hash TEXT PRIMARY KEY,
    meta TEXT NOT NULL
);

-- Blobs to upload, oldest first; `uploaded` once the server has all of it.
CREATE TABLE blob_queue (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    hash     TEXT NOT NULL UNIQUE,
    bytes    INTEGER NOT NULL,
    uploaded INTEGER NOT NULL DEFAULT 0
);

-- Which record refers to which photo (index, from the documents).
CREATE TABLE evidence_refs (
    hash   TEXT NOT NULL,
    thumb  TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (hash, doc_id)
);
CREATE INDEX evidence_by_thumb ON evidence_refs (thumb);
CREATE INDEX evidence_by_doc ON evidence_refs (doc_id);

-- A record's photo metadata by hash (JSON), device time and clock evidence
-- (RecordTime JSON).
ALTER TABLE inspections ADD COLUMN evidence TEXT;
ALTER TABLE cases ADD COLUMN evidence TEXT;
ALTER TABLE inspections ADD COLUMN time TEXT;
ALTER TABLE cases ADD COLUMN time TEXT;
ALTER TABLE patrols ADD COLUMN time TEXT;
-- Geofence (Geofence JSON as the document holds it), and its flag for queries.
ALTER TABLE inspections ADD COLUMN geofence TEXT;
ALTER TABLE inspections ADD COLUMN off_site INTEGER;

-- A record's server receive time is the first received_at of its changes.
CREATE INDEX changes_by_doc ON changes (doc_id, received_at);
