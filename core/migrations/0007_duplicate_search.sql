-- The duplicate search (a report of the same category within the rules'
-- radius and window of an open case) ran on `cases_by_category` and read each
-- candidate's row for its place and status: about a hundred rows per report
-- in a busy district, most of the station's sweep. This index carries what the
-- search tests, for the cases it can match (not rectification escalations).
DROP INDEX cases_by_category;
CREATE INDEX duplicate_search
    ON cases (category, reported_at, lat, lon, status, shop_id, id)
    WHERE rectification IS NULL;
