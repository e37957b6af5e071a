-- Cases and scores (issue 6): the district's rules, the workflow's view of each
-- case (who moved it in which role, which steps took effect, where it was
-- dispatched), reports linked to a case they duplicate, and indexes the
-- rectification ledger and the scores read. The index is rebuilt afterwards.

-- The district's rules document as JSON (one row, `rules/district`).
CREATE TABLE rules (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
);

ALTER TABLE cases ADD COLUMN department TEXT;       -- the last effective dispatch
ALTER TABLE cases ADD COLUMN whistle TEXT;
ALTER TABLE cases ADD COLUMN dispatched_at INTEGER;
ALTER TABLE cases ADD COLUMN rectification TEXT;    -- `<inspection>#<item>` it escalates
ALTER TABLE cases ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;  -- ever accepted
ALTER TABLE cases ADD COLUMN closed_at INTEGER;
CREATE INDEX cases_by_category ON cases (category, reported_at);
CREATE INDEX cases_by_reporter ON cases (reported_by, reported_at);
CREATE INDEX cases_by_rectification ON cases (rectification) WHERE rectification IS NOT NULL;

ALTER TABLE case_history ADD COLUMN role TEXT;
ALTER TABLE case_history ADD COLUMN department TEXT;
ALTER TABLE case_history ADD COLUMN whistle TEXT;
ALTER TABLE case_history ADD COLUMN effective INTEGER NOT NULL DEFAULT 1;

-- Later reports of the same problem, kept on the case they duplicate.
CREATE TABLE case_links (
    case_id     TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    source      TEXT NOT NULL,
    reported_by TEXT NOT NULL,
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (case_id, idx)
) WITHOUT ROWID;
CREATE INDEX case_links_by_reporter ON case_links (reported_by, reported_at);

-- Each result of a submitted inspection knows its shop and submission time, so
-- the ledger walks a shop's results of one item in time order from an index:
-- its failures (`failed_results`) and, after each, the next result that passed
-- (`results_by_shop`). Scores and plans read submitted inspections by shop and
-- end time. The indexes cover what those queries read, the columns their
-- conditions test included (or SQLite reads the row to test them again).
ALTER TABLE inspection_items ADD COLUMN shop_id TEXT;
ALTER TABLE inspection_items ADD COLUMN submitted_at INTEGER;  -- NULL until submitted
CREATE INDEX failed_results
    ON inspection_items (shop_id, code, submitted_at, inspection_id, outcome, photos)
    WHERE outcome = 'fail' AND submitted_at IS NOT NULL;
CREATE INDEX results_by_shop
    ON inspection_items (shop_id, code, submitted_at, inspection_id, outcome)
    WHERE submitted_at IS NOT NULL;
CREATE INDEX inspections_by_shop_end
    ON inspections (shop_id, ended_at, verdict, score)
    WHERE verdict IS NOT NULL;
CREATE INDEX inspections_by_end ON inspections (ended_at, verdict, shop_id, score)
    WHERE verdict IS NOT NULL;
