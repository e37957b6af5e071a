-- Issue 16. A camera's snapshot with its alert: the evidence photo's hash in
-- the station's store, which the case an escalation makes carries.
ALTER TABLE alerts ADD COLUMN photo TEXT;
CREATE INDEX alerts_reminder ON alerts (reminder_id) WHERE photo IS NOT NULL;
