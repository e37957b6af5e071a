-- Areas become structured (`district`, `subdistrict:<name>`, `lanes:<a>,<b>`) and
-- carry an epoch: moving a user to another area bumps it, and a device whose
-- epoch is behind reloads from a snapshot of the new area.
UPDATE users SET area = CASE
    WHEN area = 'district' OR area LIKE 'subdistrict:%' OR area LIKE 'lanes:%' THEN area
    WHEN instr(area, '/') > 0 THEN 'subdistrict:' || substr(area, instr(area, '/') + 1)
    WHEN area LIKE '%区' THEN 'district'
    ELSE 'lanes:' || area
END;
ALTER TABLE users ADD COLUMN area_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN area_epoch INTEGER NOT NULL DEFAULT 0;
