-- Issue 13. The duplicate search reads only a report's neighbours: an R*Tree
-- over place and time (hours since the Unix epoch) of every case that can be
-- folded or folded into (not rectification escalations), kept in step with
-- `cases` by triggers. Cases are written with an upsert, so a case keeps its
-- rowid, the tree's key.
CREATE VIRTUAL TABLE case_places USING rtree(key, lat0, lat1, lon0, lon1, h0, h1);
INSERT INTO case_places
    SELECT rowid, lat, lat, lon, lon, reported_at / 3600000.0, reported_at / 3600000.0
    FROM cases WHERE rectification IS NULL;
CREATE TRIGGER case_places_insert AFTER INSERT ON cases WHEN new.rectification IS NULL
BEGIN
    INSERT OR REPLACE INTO case_places VALUES (new.rowid, new.lat, new.lat, new.lon, new.lon,
        new.reported_at / 3600000.0, new.reported_at / 3600000.0);
END;
CREATE TRIGGER case_places_update AFTER UPDATE OF lat, lon, reported_at, rectification ON cases
BEGIN
    DELETE FROM case_places WHERE key = old.rowid;
    INSERT INTO case_places SELECT new.rowid, new.lat, new.lat, new.lon, new.lon,
        new.reported_at / 3600000.0, new.reported_at / 3600000.0
        WHERE new.rectification IS NULL;
END;
CREATE TRIGGER case_places_delete AFTER DELETE ON cases
BEGIN
    DELETE FROM case_places WHERE key = old.rowid;
END;

-- Every Automerge actor whose changes this store holds: the station refuses to
-- bind one of them to a newly enrolled device. Filled by the index rebuild
-- this migration asks for, then as changes arrive.
CREATE TABLE actors (actor BLOB PRIMARY KEY) WITHOUT ROWID;
