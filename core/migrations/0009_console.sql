-- Issue 14. The console lists and pages every case of a reader, newest (or
-- oldest) report first, and counts a period's reports for the overview: an
-- index in report order spares sorting 100,000 cases for each page.
CREATE INDEX cases_by_time ON cases (reported_at, id);
-- A reader's area: the cases reported in it without a shop in the registry
-- (`access::visible_doc`).
CREATE INDEX cases_by_subdistrict ON cases (subdistrict);
CREATE INDEX cases_by_lane ON cases (lane);
