-- Issue 16. A resident asks, on a lane's page, to become its steward (小巷管家);
-- an administrator approves the request, which creates the user.
CREATE TABLE steward_requests (
    id INTEGER PRIMARY KEY,
    lane TEXT NOT NULL,
    name TEXT NOT NULL,
    phone TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- The user made when it was approved.
    user_id TEXT
);
