-- Issue 17. Writing a new case's index rows was most of what a push costs
-- the station. Two things there did nothing useful:
-- - `case_area_on_insert` and `case_area_on_update` rewrote the row just
--   written to fill `area_sub` and `area_lane`: the statement that indexes a
--   case now writes them itself (`index::case`, from the shop as the index
--   holds it, else where the case was reported). The triggers on `shops`
--   stay: a shop that moves or goes still moves its cases.
-- - `duplicate_search` served no query: the duplicate searches read the
--   R*Tree `case_places` (migration 0008), and a partial index cannot serve
--   the console's filters, which do not say `rectification IS NULL`.
DROP TRIGGER case_area_on_insert;
DROP TRIGGER case_area_on_update;
DROP INDEX duplicate_search;
