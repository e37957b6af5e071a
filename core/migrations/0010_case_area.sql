-- Issue 14. Where a case lies, for who may see it: its shop's subdistrict and
-- lane while the shop is in the registry, else the place it was reported.
-- Kept in two columns by triggers (a case is indexed, a shop is indexed,
-- moved or removed), so a subdistrict's or a lane's cases are one index range
-- instead of a set rebuilt from the shops for every query
-- (`access::visible_doc`, `Visibility::cases_sql`).
ALTER TABLE cases ADD COLUMN area_sub TEXT;
ALTER TABLE cases ADD COLUMN area_lane TEXT;

UPDATE cases SET
    area_sub = CASE WHEN EXISTS (SELECT 1 FROM shops s WHERE s.id = cases.shop_id)
        THEN (SELECT s.subdistrict FROM shops s WHERE s.id = cases.shop_id) ELSE subdistrict END,
    area_lane = CASE WHEN EXISTS (SELECT 1 FROM shops s WHERE s.id = cases.shop_id)
        THEN (SELECT s.lane FROM shops s WHERE s.id = cases.shop_id) ELSE lane END;

CREATE TRIGGER case_area_on_insert AFTER INSERT ON cases BEGIN
    UPDATE cases SET
        area_sub = CASE WHEN EXISTS (SELECT 1 FROM shops s WHERE s.id = NEW.shop_id)
            THEN (SELECT s.subdistrict FROM shops s WHERE s.id = NEW.shop_id) ELSE NEW.subdistrict END,
        area_lane = CASE WHEN EXISTS (SELECT 1 FROM shops s WHERE s.id = NEW.shop_id)
            THEN (SELECT s.lane FROM shops s WHERE s.id = NEW.shop_id) ELSE NEW.lane END
    WHERE id = NEW.id;
END;

CREATE TRIGGER case_area_on_update AFTER UPDATE OF shop_id, subdistrict, lane ON cases BEGIN
    UPDATE cases SET
        area_sub = CASE WHEN EXISTS (SELECT 1 FROM shops s WHERE s.id = NEW.shop_id)
            THEN (SELECT s.subdistrict FROM shops s WHERE s.id = NEW.shop_id) ELSE NEW.subdistrict END,
        area_lane = CASE WHEN EXISTS (SELECT 1 FROM shops s WHERE s.id = NEW.shop_id)
            THEN (SELECT s.lane FROM shops s WHERE s.id = NEW.shop_id) ELSE NEW.lane END
    WHERE id = NEW.id;
END;

CREATE TRIGGER case_area_on_shop_insert AFTER INSERT ON shops BEGIN
    UPDATE cases SET area_sub = NEW.subdistrict, area_lane = NEW.lane WHERE shop_id = NEW.id;
END;

CREATE TRIGGER case_area_on_shop_move AFTER UPDATE OF subdistrict, lane ON shops BEGIN
    UPDATE cases SET area_sub = NEW.subdistrict, area_lane = NEW.lane WHERE shop_id = NEW.id;
END;

CREATE TRIGGER case_area_on_shop_delete AFTER DELETE ON shops BEGIN
    UPDATE cases SET area_sub = subdistrict, area_lane = lane WHERE shop_id = OLD.id;
END;

-- A reader's cases, newest first, from the index.
CREATE INDEX cases_by_area_sub ON cases (area_sub, reported_at, id);
CREATE INDEX cases_by_area_lane ON cases (area_lane, reported_at, id);
DROP INDEX IF EXISTS cases_by_subdistrict;
DROP INDEX IF EXISTS cases_by_lane;
