-- Areas: which subdistrict (街道) a shop belongs to, and where a report lies when
-- it is not at a shop. The sync server chooses what each reader receives by
-- these columns (docs/adr/0006-partial-replication.md). The index is rebuilt
-- from the documents after this migration.

ALTER TABLE shops ADD COLUMN subdistrict TEXT;
CREATE INDEX shops_by_subdistrict ON shops (subdistrict);
CREATE INDEX shops_by_lane ON shops (lane);

ALTER TABLE cases ADD COLUMN subdistrict TEXT;
ALTER TABLE cases ADD COLUMN lane TEXT;
