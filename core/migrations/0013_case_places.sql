-- Issue 17. The triggers that kept the R*Tree `case_places` in step with
-- `cases` (migration 0008) made every write of a case a statement with a
-- trigger, which SQLite runs under a statement journal: each page the
-- statement touched that the transaction had already changed was copied to
-- memory first. In a group commit's transaction, where every page is one the
-- transaction has changed, that copying was a tenth of what a push cost the
-- station. The statement that indexes a case now writes its place itself
-- (`index::case`). Deleting a case still removes its place by trigger:
-- deletes are rare.
DROP TRIGGER case_places_insert;
DROP TRIGGER case_places_update;
