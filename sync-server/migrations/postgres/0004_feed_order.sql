-- The sequencer places committed changes in the order they were written
-- (`id`), no longer by the id of the transaction that wrote them (issue 17).
-- Both keep a change after the changes it depends on: a push takes its
-- documents' locks before it writes, so a change made on another is written
-- after that one committed. But transaction ids are the cluster's own: a
-- logical backup (`pg_dump`) restored into another cluster keeps its rows'
-- old ids while the new cluster numbers its transactions afresh, lower, so a
-- change restored without a position went after the changes made on it.
-- Row ids travel with the backup (the identity's sequence is restored too).
DROP INDEX feed_unsequenced;
ALTER TABLE feed DROP COLUMN xid;
CREATE INDEX feed_unsequenced ON feed (id) WHERE pos IS NULL;
