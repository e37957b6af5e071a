-- Sync bookkeeping on the change log.
-- local: 1 for changes made by this store (the ones a device pushes), 0 for
-- changes it received. received_at: when the sync server accepted the change
-- (ms since the Unix epoch); the server's clock, never a device's, orders work.
ALTER TABLE changes ADD COLUMN local INTEGER NOT NULL DEFAULT 0;
ALTER TABLE changes ADD COLUMN received_at INTEGER;
CREATE INDEX changes_made_here ON changes (seq) WHERE local = 1;
