-- Issue 16. A citizen's report from a signboard page: the receipt link's
-- token (its SHA-256) leads to the case without an account; the phone number
-- the citizen may leave is for staff only, never on a public page.
CREATE TABLE receipts (
    token_hash BLOB PRIMARY KEY,
    case_id TEXT NOT NULL,
    phone TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX receipts_by_case ON receipts (case_id);
