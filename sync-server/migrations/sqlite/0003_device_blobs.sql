-- The photos and thumbnails each device may upload: those that records it
-- pushed refer to (issue 13). Written with every accepted push.
CREATE TABLE device_blobs (
    device_id TEXT NOT NULL REFERENCES devices (id),
    hash      TEXT NOT NULL,
    PRIMARY KEY (device_id, hash)
) WITHOUT ROWID;
