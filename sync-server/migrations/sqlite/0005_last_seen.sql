-- When each device last reached the station (Unix ms), written from memory
-- every half minute (issue 14: 人员与设备 shows it).
ALTER TABLE devices ADD COLUMN last_seen_at INTEGER;
